/**
 * A workflow engine's week, compressed: a three-step order workflow, each step a separate Node
 * process that locks the state file, resumes from it, exports to a real OTLP/HTTP endpoint on
 * 127.0.0.1 and commits. Step 2 fails once and is retried (a new attempt id); the host running
 * step 3 is killed with SIGKILL mid-step and the step re-run with the same execution id (the
 * engine lost the attempt). What reaches the endpoint must be one connected trace holding each
 * logical span once, with its real start and end, the `span started` records of the steps that
 * committed with the workflow span open, and the step-1 event on the workflow span.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, before, after } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { OtlpTestServer } from './helpers/otlp-test-server.js';

const run = promisify(execFile);
const STEP = fileURLToPath(new URL('./fixtures/workflow-process.js', import.meta.url));

interface StepOutcome {
  ok: boolean;
  cause: string | null;
  persisted: number;
  uncommitted: number;
  rejected: number;
}

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: Array<{ key: string; value: Record<string, unknown> }>;
  events?: Array<{ name: string }>;
  status?: { code?: number | string; message?: string };
}

async function step(kind: string, n: number, executionId: string, stateFile: string, endpoint: string, behaviour: 'ok' | 'fail'): Promise<StepOutcome> {
  const { stdout } = await run(process.execPath, [STEP, kind, String(n), executionId, stateFile, endpoint, behaviour]);
  return JSON.parse(stdout.trim().split('\n').pop()!) as StepOutcome;
}

/** Runs a step whose guest hangs, and SIGKILLs its process once the guest is running. */
async function killedStep(kind: string, n: number, executionId: string, stateFile: string, endpoint: string): Promise<void> {
  const child = spawn(process.execPath, [STEP, kind, String(n), executionId, stateFile, endpoint, 'hang'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`the hanging step exited by itself (${code})`)));
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
  });
  child.removeAllListeners('exit');
  const exited = new Promise((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
}

const attr = (s: { attributes?: Array<{ key: string; value: Record<string, unknown> }> }, key: string): unknown => {
  const v = s.attributes?.find((a) => a.key === key)?.value;
  return v === undefined ? undefined : Object.values(v)[0];
};

const NAMES = {
  quickjs: { wf: 'order workflow', steps: ['validate order', 'reserve stock', 'charge card'], event: 'order received' },
  wasm: { wf: 'order workflow', steps: ['validate order', 'reserve stock', 'charge card'], event: 'order received' },
};

describe('durable workflow across processes, with a failed step retried and a killed host re-run', () => {
  const server = new OtlpTestServer();
  let endpoint = '';
  before(async () => {
    endpoint = await server.start();
  });
  after(() => server.close());

  for (const kind of ['quickjs', 'wasm'] as const) {
    test(`${kind}: one connected trace, each logical span exported once, in-progress records, nothing lost or duplicated`, async () => {
      const dir = await mkdtemp(join(tmpdir(), `sandtrace-durable-${kind}-`));
      const first = server.requests.length;
      const wfName = `order-${kind}`;
      try {
        const stateFile = join(dir, 'order.state.json');
        const s1 = await step(kind, 1, `${wfName}/step-1`, stateFile, endpoint, 'ok');
        assert.deepEqual([s1.ok, s1.persisted, s1.rejected], [true, 1, 0], JSON.stringify(s1));
        const s2a = await step(kind, 2, `${wfName}/step-2#1`, stateFile, endpoint, 'fail');
        assert.equal(s2a.ok, false, 'attempt 1 of step 2 fails');
        const s2b = await step(kind, 2, `${wfName}/step-2#2`, stateFile, endpoint, 'ok');
        assert.deepEqual([s2b.ok, s2b.persisted, s2b.rejected], [true, 1, 0], JSON.stringify(s2b));
        await killedStep(kind, 3, `${wfName}/step-3`, stateFile, endpoint);
        const s3 = await step(kind, 3, `${wfName}/step-3`, stateFile, endpoint, 'ok'); // the engine re-runs the lost attempt
        assert.deepEqual([s3.ok, s3.persisted, s3.rejected], [true, 0, 0], JSON.stringify(s3));

        const requests = server.requests.slice(first).map((_, i) => ({ path: server.requests[first + i]!.path, body: server.decoded(first + i) }));
        const spans: ExportedSpan[] = requests.filter((r) => r.path === '/v1/traces').flatMap((r) => r.body.resourceSpans.flatMap((rs: any) => rs.scopeSpans.flatMap((ss: any) => ss.spans)));
        const logs = requests.filter((r) => r.path === '/v1/logs').flatMap((r) => r.body.resourceLogs.flatMap((rl: any) => rl.scopeLogs.flatMap((sl: any) => sl.logRecords)));

        // Nothing duplicated: a span id arrives at most once (the killed attempt exported nothing of its open spans).
        const ids = spans.map((s) => s.spanId);
        assert.equal(new Set(ids).size, ids.length, 'no span id exported twice');

        const names = NAMES[kind];
        const wf = spans.filter((s) => s.name === names.wf);
        assert.equal(wf.length, 1, 'the workflow span is exported exactly once');
        const workflow = wf[0]!;
        const byName = (name: string) => spans.filter((s) => s.name === name);
        assert.equal(byName(names.steps[0]!).length, 1);
        assert.equal(byName(names.steps[2]!).length, 1);
        // Step 2 ran twice: each attempt is its own logical span, the failed one marked as such.
        const reserve = byName(names.steps[1]!);
        assert.equal(reserve.length, 2, 'one reserve span per attempt');
        const executions = spans.filter((s) => s.name === 'sandtrace.execution');
        const execIds = executions.map((e) => attr(e, 'execution.id')).sort();
        assert.deepEqual(execIds, [`${wfName}/step-1`, `${wfName}/step-2#1`, `${wfName}/step-2#2`, `${wfName}/step-3`], 'every execution once, the killed attempt never (it died with its process)');
        const failedExec = executions.find((e) => attr(e, 'execution.id') === `${wfName}/step-2#1`)!;
        assert.equal(Number(failedExec.status?.code), 2, 'the failed attempt is an error');

        // One trace, every step connected: every parent is exported, every span in the workflow's trace.
        assert.ok(spans.every((s) => s.traceId === workflow.traceId), 'one trace');
        const byId = new Map(spans.map((s) => [s.spanId, s]));
        for (const s of spans) if (s.parentSpanId) assert.ok(byId.has(s.parentSpanId), `the parent of ${s.name} is exported`);
        for (const e of executions) {
          if (attr(e, 'execution.id') === `${wfName}/step-1`) assert.ok(!e.parentSpanId, 'step 1 starts the trace');
          else assert.equal(e.parentSpanId, workflow.spanId, `${String(attr(e, 'execution.id'))} hangs under the workflow span`);
        }

        // Real start and end: from step 1's start to step 3's end, and the step-1 event on it.
        const step1 = executions.find((e) => attr(e, 'execution.id') === `${wfName}/step-1`)!;
        const step3 = executions.find((e) => attr(e, 'execution.id') === `${wfName}/step-3`)!;
        assert.ok(BigInt(workflow.startTimeUnixNano) >= BigInt(step1.startTimeUnixNano) && BigInt(workflow.startTimeUnixNano) <= BigInt(step1.endTimeUnixNano), 'starts in step 1');
        assert.ok(BigInt(workflow.endTimeUnixNano) >= BigInt(step3.startTimeUnixNano) && BigInt(workflow.endTimeUnixNano) <= BigInt(step3.endTimeUnixNano), 'ends in the re-run of step 3');
        assert.ok((workflow.events ?? []).some((e) => e.name === names.event), 'the step-1 event is on the workflow span');
        assert.equal(attr(workflow, 'status'), 'paid');

        // In-progress records: the commits of step 1 and of step 2's retry each reported the open workflow span.
        const started = logs.filter((l: any) => l.body?.stringValue === 'span started' && l.spanId === workflow.spanId);
        assert.equal(started.length, 2, 'one span started record per commit with the span open');
        assert.ok(started.every((l: any) => l.timeUnixNano === workflow.startTimeUnixNano));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
