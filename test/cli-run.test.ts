import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { OtlpTestServer, partialSuccess } from './helpers/otlp-test-server.js';

const CLI = fileURLToPath(new URL('../host/cli/main.js', import.meta.url));
const guest = (name: string) => fileURLToPath(new URL(`../../examples/${name}`, import.meta.url));
let dir = '';

interface Run {
  code: number;
  stdout: string;
}

/**
 * Runs the CLI; it is killed after 180 s, a bound for a hang only: compiling an AssemblyScript
 * guest takes about 5 s of CPU, and on a machine loaded ten times over its cores it took 114 s.
 */
function sandtrace(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env }, timeout: 180_000 }, (error, stdout) => {
      resolve({ code: error === null ? 0 : ((error as { code?: number }).code ?? -1), stdout });
    });
  });
}

/** Every span in a store's traces.jsonl. */
async function storedSpans(folder: string): Promise<Array<Record<string, any>>> {
  const text = await readFile(join(folder, 'traces.jsonl'), 'utf8');
  return text
    .trim()
    .split('\n')
    .flatMap((line) => JSON.parse(line).resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans)));
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sandtrace-cli-'));
});
after(() => rm(dir, { recursive: true }));

describe('sandtrace run', () => {
  test('a QuickJS guest: the tree as it is rebuilt, a summary, and OTLP JSON lines in the local store', async () => {
    const out = join(dir, 'store-1');
    const r = await sandtrace(['run', guest('guests/plugin.js'), '--out', out, '--execution-id', 'cli-1']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /┌ handle request user=alice/);
    assert.match(r.stdout, /✔ completed → 3/);
    assert.match(r.stdout, /3 spans, 5 events, 1 metric points/);
    assert.match(r.stdout, new RegExp(`export: 3 spans, 0 logs, 1 metric series to ${out}`), 'events inside spans are span events (the conventions), not log records');
    const spans = await storedSpans(out);
    assert.deepEqual(spans.map((s) => s.name).sort(), ['handle request', 'query orders', 'sandtrace.execution']);
    const handle = spans.find((s) => s.name === 'handle request')!;
    assert.match(handle.traceId, /^[0-9a-f]{32}$/);
    assert.ok(handle.attributes.some((a: any) => a.key === 'sandtrace.execution.id' && a.value.stringValue === 'cli-1'));
    assert.deepEqual(handle.events.map((e: any) => e.name), ['request received', 'large result']);
  });

  test('a guest that dies: exit code 1, after its spans were exported with the cause', async () => {
    const out = join(dir, 'store-2');
    // 1 s rather than 100 ms: the deadline counts from when the worker starts the guest, and a
    // worker starved of CPU may take longer than 100 ms to reach its first line.
    const r = await sandtrace(['run', guest('guests/crashing-plugin.js'), '--out', out, '--timeout-ms', '1000', '--quiet']);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /✖ deadline exceeded/);
    assert.doesNotMatch(r.stdout, /┌/, '--quiet prints no tree');
    const stuck = (await storedSpans(out)).find((s) => s.name === 'resize images');
    assert.ok(stuck, `the span the guest was stuck in was exported: ${r.stdout}`);
    assert.equal(stuck.status.code, 2);
    assert.ok(stuck.attributes.some((a: any) => a.key === 'sandtrace.termination.cause' && a.value.stringValue === 'deadline'));
  });

  test('an AssemblyScript source file is compiled with the project setup and run', async () => {
    const out = join(dir, 'store-3');
    const r = await sandtrace(['run', guest('guests-as/plugin.ts'), '--arg', '1000', '--out', out]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /┌ checksum bytes=1000/);
    assert.ok((await storedSpans(out)).some((s) => s.name === 'checksum'));
  });

  test('--state carries a workflow span across two runs: it is exported once, with its real start', async () => {
    const out = join(dir, 'store-4');
    const state = join(dir, 'workflow.json');
    const first = await sandtrace(['run', guest('guests/workflow-step.js'), '--out', out, '--state', state, '--quiet']);
    assert.equal(first.code, 0);
    assert.match(first.stdout, /state: started fresh; 1 open span\(s\) committed/);
    assert.equal((await storedSpans(out)).filter((s) => s.name === 'order workflow').length, 0, 'still open after step 1');
    const second = await sandtrace(['run', guest('guests/workflow-step.js'), '--out', out, '--state', state, '--quiet']);
    assert.equal(second.code, 0);
    const wf = (await storedSpans(out)).filter((s) => s.name === 'order workflow');
    assert.equal(wf.length, 1);
    const steps = (await storedSpans(out)).filter((s) => s.name === 'sandtrace.execution').sort((a, b) => (BigInt(a.startTimeUnixNano) < BigInt(b.startTimeUnixNano) ? -1 : 1));
    assert.ok(BigInt(wf[0]!.startTimeUnixNano) < BigInt(steps[1]!.startTimeUnixNano), 'started in the first run');
    assert.deepEqual(wf[0]!.events.map((e: any) => e.name), ['stock reserved', 'card charged']);
  });

  test('--quiet on for one step and off for the next reads the same state: nothing of the step is lost', async () => {
    const out = join(dir, 'store-4q');
    const state = join(dir, 'workflow-quiet.json');
    const first = await sandtrace(['run', guest('guests/workflow-step.js'), '--out', out, '--state', state]); // a tee: terminal + pipeline
    assert.equal(first.code, 0);
    const second = await sandtrace(['run', guest('guests/workflow-step.js'), '--out', out, '--state', state, '--quiet']); // the pipeline alone
    assert.equal(second.code, 0);
    const wf = (await storedSpans(out)).filter((s) => s.name === 'order workflow');
    assert.equal(wf.length, 1);
    assert.deepEqual(wf[0]!.events.map((e: any) => e.name), ['stock reserved', 'card charged'], 'the span events of the step run with the terminal');
    const ids = new Set((await storedSpans(out)).map((s) => s.spanId));
    assert.ok((await storedSpans(out)).every((s) => !s.parentSpanId || ids.has(s.parentSpanId)), 'one connected trace');
  });

  test('--trace-per-step: the resumed step is a trace of its own, linked to the workflow span', async () => {
    const out = join(dir, 'store-4t');
    const state = join(dir, 'workflow-linked.json');
    assert.equal((await sandtrace(['run', guest('guests/workflow-step.js'), '--out', out, '--state', state, '--quiet'])).code, 0);
    assert.equal((await sandtrace(['run', guest('guests/workflow-step.js'), '--out', out, '--state', state, '--quiet', '--trace-per-step'])).code, 0);
    const spans = await storedSpans(out);
    const wf = spans.find((s) => s.name === 'order workflow')!;
    const steps = spans.filter((s) => s.name === 'sandtrace.execution');
    const second = steps.find((s) => s.traceId !== wf.traceId)!;
    assert.ok(second, 'step 2 has a trace of its own');
    assert.equal(second.parentSpanId ?? '', '');
    assert.deepEqual(second.links.map((l: any) => [l.traceId, l.spanId]), [[wf.traceId, wf.spanId]]);
  });

  test('with --endpoint, telemetry goes to the OTLP endpoint instead of the store', async () => {
    const server = new OtlpTestServer();
    const url = await server.start();
    try {
      const out = join(dir, 'store-5');
      const r = await sandtrace(['run', guest('guests/plugin.js'), '--endpoint', url, '--out', out, '--quiet']);
      assert.equal(r.code, 0);
      assert.deepEqual(server.requests.map((q) => q.path).sort(), ['/v1/metrics', '/v1/traces'], 'the plugin logs only inside spans: span events, no log records');
      await assert.rejects(readFile(join(out, 'traces.jsonl')));
      const viaEnv = await sandtrace(['run', guest('guests/plugin.js'), '--quiet'], { OTEL_EXPORTER_OTLP_ENDPOINT: url });
      assert.equal(viaEnv.code, 0);
      assert.equal(server.requests.length, 4, 'OTEL_EXPORTER_OTLP_ENDPOINT works as well');
    } finally {
      await server.close();
    }
  });

  test('a collector that refuses or rejects: exit 3 and the summary says what was lost and why', async () => {
    const server = new OtlpTestServer();
    const url = await server.start();
    try {
      server.script.push({ status: 400, body: Buffer.from('invalid resource') }, { status: 200, body: partialSuccess('logs', 2, 'log body too long') }, { status: 200 });
      const r = await sandtrace(['run', guest('guests/plugin.js'), '--endpoint', url, '--quiet']);
      assert.equal(r.code, 3);
      assert.match(r.stdout, / lost\n  export lost: .*(rejected by the collector 2|nonRetryable \d+)/);
      assert.match(r.stdout, /last failure: \w+ (nonRetryable \(HTTP 400\): collector answered 400: invalid resource|rejected: log body too long)/);
    } finally {
      await server.close();
    }
  });

  test('a bad --endpoint is refused before the guest runs', async () => {
    for (const endpoint of ['not-a-url', 'ftp://collector:4318']) {
      const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, [CLI, 'run', guest('guests/plugin.js'), '--endpoint', endpoint], { env: { PATH: process.env.PATH }, timeout: 30_000 }, (error, stdout, stderr) => resolve({ code: error === null ? 0 : ((error as { code?: number }).code ?? -1), stdout, stderr }));
      });
      assert.equal(r.code, 2, endpoint);
      assert.match(r.stderr, /invalid OTLP traces endpoint/);
      // Not timed (a loaded machine starts node in seconds): a guest that ran would have printed its tree.
      assert.equal(r.stdout, '', 'the guest did not run');
    }
  });

  test('--help documents every option; bad arguments exit 2', async () => {
    const help = await sandtrace(['--help']);
    assert.equal(help.code, 0);
    for (const option of ['--level', '--timeout-ms', '--memory-mb', '--execution-id', '--endpoint', '--out', '--state', '--entry', '--arg', '--quiet']) assert.match(help.stdout, new RegExp(option));
    assert.equal((await sandtrace(['run'])).code, 2);
    assert.equal((await sandtrace(['run', 'x.txt'])).code, 2);
    assert.equal((await sandtrace(['run', guest('guests/plugin.js'), '--level', 'loud'])).code, 2);
  });
});

test('sandtrace run into a pipe closed early (… | head -1) finishes the run and its export, exit 0', async () => {
  const out = await mkdtemp(join(tmpdir(), 'sandtrace-epipe-'));
  const plugin = fileURLToPath(new URL('../../examples/guests/plugin.js', import.meta.url));
  const child = spawn(process.execPath, [CLI, 'run', plugin, '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.once('data', () => child.stdout.destroy()); // the reader reads one chunk and goes away
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 0, stderr);
  assert.doesNotMatch(stderr, /EPIPE|Unhandled/);
  assert.ok((await readFile(join(out, 'traces.jsonl'), 'utf8')).length > 0, 'the export was written');
});
