import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { hostPlugins } from '../examples/plugin-host.js';
import { startHandler } from '../examples/serverless-handler.js';
import { runWorkflowTo } from '../examples/workflow-engine.js';
import { OtlpHttpExporter } from '../host/export/otlp-http-exporter.js';
import { FileExporter } from '../host/export/otlp-json.js';
import { OtlpTestServer } from './helpers/otlp-test-server.js';

describe('examples', () => {
  test('every example imports sandtrace only through its package entries, so a user can copy it', async () => {
    const folder = fileURLToPath(new URL('../../examples', import.meta.url));
    for (const file of (await readdir(folder)).filter((f) => f.endsWith('.ts'))) {
      const source = await readFile(join(folder, file), 'utf8');
      const specifiers = [...source.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]!);
      const internal = specifiers.filter((s) => s.startsWith('.') && !/^\.\/[\w-]+\.js$/.test(s));
      assert.deepEqual(internal, [], `${file} imports internal paths`);
      assert.ok(specifiers.some((s) => s === 'sandtrace' || s.startsWith('sandtrace/')), `${file} imports sandtrace`);
    }
  });

  test('plugin host: runs each plugin under a deadline and exports to the collector', async () => {
    const server = new OtlpTestServer();
    const url = await server.start();
    try {
      // 1 s rather than the example's 100 ms: the deadline counts from when the worker starts the
      // guest, and a worker starved of CPU may take longer than 100 ms to reach its first line.
      const reports = await hostPlugins(fileURLToPath(new URL('../../examples/guests', import.meta.url)), new OtlpHttpExporter({ endpoint: url }, {}), 1_000);
      const byName = Object.fromEntries(reports.map((r) => [r.plugin, r]));
      assert.equal(byName['plugin.js']!.ok, true);
      assert.equal(byName['crashing-plugin.js']!.ok, false);
      assert.match(byName['crashing-plugin.js']!.outcome, /^deadline exceeded/);
      const traces = server.requests.map((r, i) => [r.path, i] as const).filter(([p]) => p === '/v1/traces');
      const names = traces.flatMap(([, i]) => server.decoded(i).resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans.map((x: any) => x.name))));
      assert.ok(names.includes('handle request') && names.includes('resize images'), names.join(', '));
    } finally {
      await server.close();
    }
  });

  test('workflow engine: three steps, one retried; the workflow span is exported once, whole, and the workflow is one trace', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sandtrace-wf-example-'));
    try {
      const outcomes = await runWorkflowTo(join(dir, 'state.json'), new FileExporter(dir));
      assert.deepEqual(outcomes, [
        'step 1, attempt 1: ok, 1 span(s) carried over',
        'step 2, attempt 1: uncaught exception: Error: stock service unavailable; retried from the last commit',
        'step 2, attempt 2: ok, 1 span(s) carried over',
        'step 3, attempt 1: ok, 0 span(s) carried over',
      ]);
      const spans = (await readFile(join(dir, 'traces.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .flatMap((l) => JSON.parse(l).resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans)));
      const wf = spans.filter((s) => s.name === 'order workflow');
      assert.equal(wf.length, 1);
      const charge = spans.find((s) => s.name === 'charge card');
      const reserve = spans.filter((s) => s.name === 'reserve stock');
      assert.equal(reserve.length, 2, 'one per attempt');
      assert.ok(BigInt(wf[0].startTimeUnixNano) < BigInt(reserve[0].startTimeUnixNano));
      assert.ok(BigInt(wf[0].endTimeUnixNano) >= BigInt(charge.endTimeUnixNano));
      assert.ok(spans.every((s) => s.traceId === wf[0].traceId), 'one trace');
      const ids = new Set(spans.map((s) => s.spanId));
      assert.ok(spans.every((s) => !s.parentSpanId || ids.has(s.parentSpanId)), 'every parent exported');
      assert.deepEqual(wf[0].events.map((e: any) => e.name), ['order received']);
      assert.ok(!wf[0].attributes.some((a: any) => a.key === 'error'), "the failed attempt's error on the workflow span was taken back");
      assert.deepEqual(reserve.map((r: any) => r.status?.code ?? 0), [2, 0], 'the failed attempt is an error, the retry is not');
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  test("serverless handler: each request runs a guest whose spans sit inside the request's span", async () => {
    const spans = new InMemorySpanExporter();
    const handler = await startHandler(spans);
    try {
      const res = await fetch(`${handler.url}?name=alice`);
      assert.equal(await res.text(), 'Hello, alice!');
      const finished = spans.getFinishedSpans();
      const request = finished.find((s) => s.name === 'GET /')!;
      const exec = finished.find((s) => s.name === 'sandtrace.execution')!;
      const render = finished.find((s) => s.name === 'render greeting')!;
      assert.equal(exec.parentSpanContext?.spanId, request.spanContext().spanId);
      assert.equal(render.parentSpanContext?.spanId, exec.spanContext().spanId);
      assert.equal(render.spanContext().traceId, request.spanContext().traceId);
    } finally {
      await handler.close();
    }
  });
});
