/**
 * The OpenTelemetry bridge and workflows: spans carried between executions, each execution with a
 * tracer provider of its own (as separate processes would have), the state passed as JSON.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { SpanStatusCode, type Tracer } from '@opentelemetry/api';
import { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { OpenTelemetryCollector, SandtraceIdGenerator } from '../host/opentelemetry.js';
import { TeeCollector } from '../host/collectors/tee-collector.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import type { SpanRecord } from '../host/pipeline/telemetry-records.js';
import { ReceiveError } from '../host/receiver/receive-error.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import type { PersistedExecution, RunResult } from '../host/sandbox/execution.js';

const STEP_1 = `
  const wf = tracing.span('wf', { order: 'A-1', status: undefined });
  wf.enter();
  tracing.info('reserved stock');
  tracing.inSpan('reserve', {}, () => {});
  wf.exit();
  'step 1'`;
const STEP_2 = `
  const wf = tracing.resume('wf');
  wf.enter();
  tracing.inSpan('charge', { amount: 12 }, () => {});
  tracing.info('charged card');
  wf.exit();
  'step 2'`;
const STEP_3 = `
  const wf = tracing.resume('wf');
  wf.record('status', 'shipped');
  wf.close();
  'step 3'`;
const STEP_3_FAILS = `
  const wf = tracing.resume('wf');
  wf.record('status', 'lost');
  wf.close();
  throw new Error('the courier API failed after wf was closed');`;

const nanos = (t: [number, number]) => BigInt(t[0]) * 1_000_000_000n + BigInt(t[1]);
const idOf = (s: ReadableSpan) => s.spanContext().spanId;
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

/** One "process": a provider, an in-memory exporter, and a bridge on the provider's tracer. */
function processFor(withGenerator: boolean) {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)], ...(withGenerator && { idGenerator: new SandtraceIdGenerator() }) });
  const collector = new OpenTelemetryCollector({ tracer: provider.getTracer('sandtrace') });
  return { exporter, provider, collector };
}

/** Runs one step in a fresh "process"; returns what it exported and the state as storage hands it back. */
async function step(source: string, executionId: string, state: PersistedExecution | undefined, withGenerator = true) {
  const p = processFor(withGenerator);
  const result: RunResult = await runQuickJS(source, { collector: p.collector, persist: true, executionId, ...(state && { state }) });
  await p.provider.forceFlush();
  const exported = p.exporter.getFinishedSpans().slice();
  await p.provider.shutdown();
  return {
    result,
    exported,
    collector: p.collector,
    state: result.state === undefined ? undefined : (JSON.parse(JSON.stringify(result.state)) as PersistedExecution),
  };
}

/** Every parent is exported, one trace, no span id twice. */
function assertConnected(spans: ReadableSpan[]) {
  const ids = new Set(spans.map(idOf));
  assert.equal(ids.size, spans.length, 'no span id exported twice');
  assert.equal(new Set(spans.map((s) => s.spanContext().traceId)).size, 1, 'one trace');
  for (const s of spans) if (parentOf(s) !== undefined) assert.ok(ids.has(parentOf(s)!), `the parent of ${s.name} is exported`);
  assert.equal(spans.filter((s) => parentOf(s) === undefined).length, 1, 'one root');
}

describe('OpenTelemetry bridge: a three-step workflow, one provider per step', () => {
  test('with SandtraceIdGenerator: wf is exported once, whole, under the id its step-1 children point at', async () => {
    const s1 = await step(STEP_1, 'wf-A-1/step-1', undefined);
    assert.equal(s1.result.ok, true);
    assert.equal(s1.collector.openSpans, 0, 'nothing of the persisted span stays in the bridge');
    assert.deepEqual(s1.exported.map((s) => s.name).sort(), ['reserve', 'sandtrace.execution'], 'wf is not exported by step 1');
    const entry = s1.state!.spans.spans[0]!.collector!.opentelemetry as { spanId: string; traceId: string; start: string; events: unknown[] };
    assert.equal(entry.events.length, 1, 'the event step 1 recorded under wf is in the snapshot');

    const s2 = await step(STEP_2, 'wf-A-1/step-2', s1.state);
    assert.equal(s2.result.ok, true);
    assert.equal(s2.collector.openSpans, 0);
    assert.deepEqual(s2.exported.map((s) => s.name).sort(), ['charge', 'sandtrace.execution']);

    const s3 = await step(STEP_3, 'wf-A-1/step-3', s2.state);
    assert.equal(s3.result.ok, true);
    assert.equal(s3.collector.openSpans, 0);
    assert.equal(s3.result.state!.spans.spans.length, 0, 'nothing carried past the last step');
    for (const s of [s1, s2, s3]) assert.deepEqual([s.collector.idsNotHonoured, s.collector.carriedIdsNotHonoured], [0, 0]);

    const all = [...s1.exported, ...s2.exported, ...s3.exported];
    const wfs = all.filter((s) => s.name === 'wf');
    assert.equal(wfs.length, 1, 'exactly one wf');
    const wf = wfs[0]!;
    assert.equal(idOf(wf), entry.spanId);
    assert.equal(nanos(wf.startTime), BigInt(entry.start), 'the step-1 start');
    const exec = (s: { exported: ReadableSpan[] }) => s.exported.find((x) => x.name === 'sandtrace.execution')!;
    // Guest times come from the guest's clock, execution spans from the host's: compare guest to guest.
    const charge = s2.exported.find((s) => s.name === 'charge')!;
    assert.ok(nanos(wf.endTime) > nanos(charge.endTime), 'the step-3 end (after everything step 2 did)');
    assert.equal(parentOf(s1.exported.find((s) => s.name === 'reserve')!), idOf(wf), 'the step-1 child points at the exported wf');
    assert.equal(parentOf(s2.exported.find((s) => s.name === 'charge')!), idOf(wf), 'the step-2 child too');
    assert.equal(parentOf(wf), idOf(exec(s1)), 'wf is a child of the step-1 execution span');
    assert.equal(parentOf(exec(s2)), idOf(wf), 'the step-2 execution span is a child of the carried span');
    assert.equal(parentOf(exec(s3)), idOf(wf), 'the step-3 execution span is a child of the carried span');
    assertConnected(all);
    assert.deepEqual(wf.events.map((e) => e.name), ['reserved stock', 'charged card'], 'events of every step, the step-1 one from the snapshot');
    assert.deepEqual([wf.attributes.order, wf.attributes.status, wf.attributes['sandtrace.execution.id']], ['A-1', 'shipped', 'wf-A-1/step-1']);
    assert.equal(wf.status.code, SpanStatusCode.UNSET);
  });

  test('a step that fails after closing wf, then is retried, exports wf once', async () => {
    const s1 = await step(STEP_1, 'wf-B/step-1', undefined);
    const s2 = await step(STEP_2, 'wf-B/step-2', s1.state);
    const failed = await step(STEP_3_FAILS, 'wf-B/step-3', s2.state);
    assert.equal(failed.result.ok, false);
    assert.equal(failed.result.state, undefined);
    assert.equal(failed.collector.openSpans, 0, 'the restored wf was discarded');
    assert.deepEqual(failed.exported.map((s) => s.name), ['sandtrace.execution'], 'the close of wf did not take effect');
    const retried = await step(STEP_3, 'wf-B/step-3', s2.state);
    assert.equal(retried.result.ok, true);
    const all = [...s1.exported, ...s2.exported, ...failed.exported, ...retried.exported];
    const wfs = all.filter((s) => s.name === 'wf');
    assert.equal(wfs.length, 1);
    assert.equal(wfs[0]!.attributes.status, 'shipped', 'the retry, not the failed attempt');
    const failedExec = failed.exported[0]!;
    const retriedExec = retried.exported.find((s) => s.name === 'sandtrace.execution')!;
    assert.equal(failedExec.status.code, SpanStatusCode.ERROR);
    assert.equal(parentOf(failedExec), idOf(wfs[0]!), 'the failed attempt hangs under wf too');
    assert.equal(parentOf(retriedExec), idOf(wfs[0]!));
    assert.equal(idOf(failedExec), idOf(retriedExec), 'a re-run of the same execution id emits the same ids (a backend deduplicates)');
    assertConnected([...s1.exported, ...s2.exported, ...retried.exported]);
  });

  test('a replayed step re-emits the same ids', async () => {
    const s1 = await step(STEP_1, 'wf-C/step-1', undefined);
    const a = await step(STEP_2, 'wf-C/step-2', s1.state);
    const b = await step(STEP_2, 'wf-C/step-2', s1.state);
    const ids = (s: typeof a) => s.exported.map((x) => [x.name, x.spanContext().traceId, idOf(x), parentOf(x)]).sort();
    assert.deepEqual(ids(a), ids(b));
  });

  test('the bridge gives the ids the pipeline collector gives (one trace whichever collector exports)', async () => {
    const records: SpanRecord[] = [];
    const pipeline = new PipelineCollector({ handlers: { onSpan: (s) => records.push(s) } });
    const p = processFor(true);
    const collector = new TeeCollector([pipeline, p.collector]);
    const first = await runQuickJS(STEP_1, { collector, persist: true, executionId: 'wf-D/step-1' });
    const state = JSON.parse(JSON.stringify(first.state)) as PersistedExecution;
    await runQuickJS(STEP_3, { collector, persist: true, executionId: 'wf-D/step-3', state });
    const hex = (b: Uint8Array | undefined) => (b === undefined ? undefined : Buffer.from(b).toString('hex'));
    const fromPipeline = records.map((r) => [r.name, hex(r.traceId), hex(r.spanId), hex(r.parentSpanId)]).sort();
    const fromBridge = p.exporter.getFinishedSpans().map((s) => [s.name, s.spanContext().traceId, idOf(s), parentOf(s)]).sort();
    assert.equal(fromBridge.length, 4);
    assert.deepEqual(fromBridge, fromPipeline);
    await p.provider.shutdown();
  });

  test('without SandtraceIdGenerator the counters say so: the carried span gets a new id each time it is restored', async () => {
    const s1 = await step(STEP_1, 'wf-E/step-1', undefined, false);
    assert.ok(s1.collector.idsNotHonoured >= 3, 'every span had a random id');
    assert.equal(s1.collector.carriedIdsNotHonoured, 0);
    const s2 = await step(STEP_2, 'wf-E/step-2', s1.state, false);
    assert.equal(s2.collector.carriedIdsNotHonoured, 1);
    const s3 = await step(STEP_3, 'wf-E/step-3', s2.state, false);
    assert.equal(s3.collector.carriedIdsNotHonoured, 1);
    const all = [...s1.exported, ...s2.exported, ...s3.exported];
    const wf = all.filter((s) => s.name === 'wf');
    assert.equal(wf.length, 1, 'still exported once, with its start and end');
    const reserve = all.find((s) => s.name === 'reserve')!;
    assert.notEqual(parentOf(reserve), idOf(wf[0]!), 'the documented consequence: step-1 children point at an id no exported span has');
    assert.equal(parentOf(wf[0]!), idOf(s1.exported.find((s) => s.name === 'sandtrace.execution')!), 'its own parent is still right');
  });

  test('fifty steps on one collector leave nothing open in it between steps', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ idGenerator: new SandtraceIdGenerator(), spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const collector = new OpenTelemetryCollector({ tracer: provider.getTracer('sandtrace') });
    let state: PersistedExecution | undefined;
    for (let i = 1; i <= 50; i++) {
      const source = i === 1 ? STEP_1 : i === 50 ? STEP_3 : STEP_2;
      const r = await runQuickJS(source, { collector, persist: true, executionId: `wf-F/step-${i}`, ...(state && { state }) });
      assert.equal(r.ok, true);
      state = JSON.parse(JSON.stringify(r.state)) as PersistedExecution;
      assert.equal(collector.openSpans, 0, `after step ${i}`);
    }
    const spans = exporter.getFinishedSpans();
    assert.equal(spans.filter((s) => s.name === 'wf').length, 1);
    assert.equal(spans.filter((s) => s.name === 'charge').length, 48);
    assert.equal(spans.find((s) => s.name === 'wf')!.events.length, 49);
    assertConnected(spans);
    await provider.shutdown();
  });

  test('a snapshot entry that is not one persistSpan wrote is refused before the guest runs', async () => {
    const s1 = await step(STEP_1, 'wf-G/step-1', undefined);
    const state = s1.state!;
    (state.spans.spans[0]!.collector!.opentelemetry as Record<string, unknown>).spanId = 'not-a-span-id';
    const p = processFor(true);
    await assert.rejects(
      runQuickJS(STEP_3, { collector: p.collector, persist: true, state }),
      (e: unknown) => e instanceof ReceiveError && e.code === 'MALFORMED' && /spanId must be 16 hex characters/.test(e.message),
    );
    assert.equal(p.exporter.getFinishedSpans().length, 0);
    await p.provider.shutdown();
  });

  for (const kind of ['SimpleSpanProcessor', 'BatchSpanProcessor'] as const) {
    test(`with a ${kind}, a persisted OpenTelemetry span, never ended, is garbage once the bridge lets go of it`, async () => {
      setFlagsFromString('--expose-gc');
      const gc = runInNewContext('gc') as () => void;
      const exporter = new InMemorySpanExporter();
      const processor = kind === 'SimpleSpanProcessor' ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter);
      const provider = new BasicTracerProvider({ idGenerator: new SandtraceIdGenerator(), spanProcessors: [processor] });
      const inner = provider.getTracer('sandtrace');
      const collected: string[] = [];
      const registry = new FinalizationRegistry<string>((name) => collected.push(name));
      // Watches every span the bridge starts (the bridge only calls startSpan).
      const tracer = { startSpan: (...args: Parameters<Tracer['startSpan']>) => {
        const span = inner.startSpan(...args);
        registry.register(span, args[0]);
        return span;
      } } as unknown as Tracer;
      const collector = new OpenTelemetryCollector({ tracer });
      const r = await runQuickJS(STEP_1, { collector, persist: true, executionId: `wf-H/${kind}` });
      assert.equal(r.ok, true);
      for (let i = 0; i < 20 && !collected.includes('wf'); i++) {
        gc();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.ok(collected.includes('wf'), 'the SDK keeps no reference to a started span that is never ended');
      await provider.forceFlush();
      assert.ok(!exporter.getFinishedSpans().some((s) => s.name === 'wf'), 'and never exports it');
      await provider.shutdown();
    });
  }
});
