/**
 * What a workflow engine relies on, one step at a time, in one process: effects on carried spans
 * commit with the step, collectors let go of committed spans, the snapshot does not depend on the
 * collector composition, ids are the host's and deterministic, every step joins the workflow trace.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FmtCollector } from '../host/collectors/fmt-collector.js';
import { TeeCollector } from '../host/collectors/tee-collector.js';
import { PipelineCollector, SPAN_STARTED, hex } from '../host/pipeline/pipeline-collector.js';
import type { LogRecord, SpanRecord } from '../host/pipeline/telemetry-records.js';
import type { PersistedExecution, RunOptions, RunResult } from '../host/sandbox/execution.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';

function pipeline() {
  const spans: SpanRecord[] = [];
  const logs: LogRecord[] = [];
  const collector = new PipelineCollector({ eventsAs: 'both', handlers: { onSpan: (s) => spans.push(s), onLog: (l) => logs.push(l) } });
  return { collector, spans, logs };
}

/** State as storage hands it back (JSON). */
const stored = (r: RunResult): PersistedExecution => JSON.parse(JSON.stringify(r.state)) as PersistedExecution;

const OPEN = `const wf = tracing.span('wf', { order: 'A-1', status: undefined }); wf.inSpan(() => tracing.info('received')); 'opened'`;
const CLOSE_THEN_FAIL = `const wf = tracing.resume('wf'); wf.inSpan(() => tracing.info('charged')); wf.record('status', 'paid'); wf.close(); throw new Error('card service down')`;
const CLOSE = `const wf = tracing.resume('wf'); wf.inSpan(() => tracing.info('charged')); wf.record('status', 'paid'); wf.close(); 'closed'`;

async function step(source: string, options: RunOptions): Promise<RunResult> {
  return runQuickJS(source, { persist: true, ...options });
}

describe('durable workflows: effects on carried spans commit with the step', () => {
  test('a carried span closed in a step that fails is not exported; the retry exports it once, whole', async () => {
    const p = pipeline();
    const first = await step(OPEN, { collector: p.collector, executionId: 'wf/1' });
    const state = stored(first);
    const failed = await step(CLOSE_THEN_FAIL, { collector: p.collector, executionId: 'wf/2#1', state });
    assert.equal(failed.ok, false);
    assert.equal(failed.summary.uncommitted, 2, 'the close and the event under the carried span were taken back');
    assert.equal(p.spans.filter((s) => s.name === 'wf').length, 0, 'not exported by the failed step');
    const retry = await step(CLOSE, { collector: p.collector, executionId: 'wf/2#2', state });
    assert.equal(retry.ok, true);
    const wf = p.spans.filter((s) => s.name === 'wf');
    assert.equal(wf.length, 1, 'exported exactly once');
    assert.deepEqual(wf[0]!.events.map((e) => e.name), ['received', 'charged'], 'step 1 event, then the retry, never the failed attempt');
    assert.ok(wf[0]!.attributes.some(([k, v]) => k === 'status' && v === 'paid'));
    assert.equal(wf[0]!.status.code, 'unset');
    assert.equal(p.collector.openSpans, 0, 'the collector holds nothing after the workflow');
    // The failed attempt's log record under the carried span never went out; the retry's did.
    assert.deepEqual(p.logs.filter((l) => l.body === 'charged').map((l) => l.executionId), ['wf/2#2']);
  });

  test('events held for the commit are bounded: past maxPendingEvents an event under a carried span is rejected and counted', async () => {
    const p = pipeline();
    const state = stored(await step(OPEN, { collector: p.collector, executionId: 'flood/1' }));
    const r = await step(`const wf = tracing.resume('wf'); wf.enter(); for (let i = 0; i < 150; i++) tracing.info('tick', { i }); wf.exit(); 1`, {
      collector: p.collector,
      executionId: 'flood/2',
      state,
      limits: { maxPendingEvents: 100 },
    });
    assert.equal(r.ok, true);
    assert.equal(r.summary.rejectedByCode.LIMIT_EXCEEDED, 50);
    assert.equal(p.logs.filter((l) => l.body === 'tick').length, 100, 'the first 100 were committed');
  });

  test('events held for the commit are bounded in bytes too (maxPendingBytes)', async () => {
    const p = pipeline();
    const state = stored(await step(OPEN, { collector: p.collector, executionId: 'bytes/1' }));
    const r = await step(`const wf = tracing.resume('wf'); const big = 'x'.repeat(10000); wf.enter(); for (let i = 0; i < 10; i++) tracing.info(big); wf.exit(); 1`, {
      collector: p.collector,
      executionId: 'bytes/2',
      state,
      limits: { maxPendingBytes: 50_000 },
    });
    assert.equal(r.summary.rejectedByCode.LIMIT_EXCEEDED, 8, 'two events of 20 KB fit in 50 KB, the rest are refused');
  });

  test('the collector lets go of committed spans: 50 steps leave nothing open in it', async () => {
    const p = pipeline();
    let state = stored(await step(OPEN, { collector: p.collector, executionId: 's0' }));
    for (let i = 1; i <= 50; i++) {
      const r = await step(`const wf = tracing.resume('wf'); wf.inSpan(() => tracing.inSpan('work', { i: ${i} }, () => {})); ${i}`, { collector: p.collector, executionId: `s${i}`, state });
      state = stored(r);
      assert.equal(p.collector.openSpans, 0, `after step ${i}`);
    }
    assert.equal(p.spans.filter((s) => s.name === 'work').length, 50);
    assert.equal(p.spans.filter((s) => s.name === 'wf').length, 0, 'still open, so not exported');
  });

  test('every step joins the workflow trace: its execution span is a child of the carried span it resumes', async () => {
    const p = pipeline();
    const s1 = stored(await step(OPEN, { collector: p.collector, executionId: 't/1' }));
    const s2 = stored(await step(`tracing.resume('wf').inSpan(() => tracing.inSpan('reserve', {}, () => {})); 2`, { collector: p.collector, executionId: 't/2', state: s1 }));
    await step(CLOSE, { collector: p.collector, executionId: 't/3', state: s2 });
    const wf = p.spans.find((s) => s.name === 'wf')!;
    const execs = p.spans.filter((s) => s.name === 'sandtrace.execution');
    assert.equal(execs.length, 3);
    assert.ok(p.spans.every((s) => hex(s.traceId) === hex(wf.traceId)), 'one trace');
    const byId = new Map(p.spans.map((s) => [hex(s.spanId), s]));
    for (const s of p.spans) if (s.parentSpanId !== undefined) assert.ok(byId.has(hex(s.parentSpanId)), `${s.name}'s parent is exported`);
    assert.equal(hex(wf.parentSpanId!), hex(execs[0]!.spanId), 'the workflow span hangs under step 1');
    assert.equal(hex(execs[1]!.parentSpanId!), hex(wf.spanId), 'step 2 hangs under the workflow span');
    assert.equal(hex(execs[2]!.parentSpanId!), hex(wf.spanId), 'step 3 too');
  });

  test("traceMode 'step': a resumed step starts a trace of its own, linked to the workflow span", async () => {
    const p = pipeline();
    const s1 = stored(await step(OPEN, { collector: p.collector, executionId: 'l/1' }));
    await step(CLOSE, { collector: p.collector, executionId: 'l/2', state: s1, traceMode: 'step' });
    const wf = p.spans.find((s) => s.name === 'wf')!;
    const exec2 = p.spans.find((s) => s.name === 'sandtrace.execution' && s.executionId === 'l/2')!;
    assert.notEqual(hex(exec2.traceId), hex(wf.traceId));
    assert.equal(exec2.parentSpanId, undefined);
    assert.deepEqual(exec2.links.map((l) => [hex(l.traceId), hex(l.spanId)]), [[hex(wf.traceId), hex(wf.spanId)]]);
  });

  test('a step that commits with spans open reports each as a span started log record; the span itself is exported once, at its close', async () => {
    const p = pipeline();
    const s1 = stored(await step(OPEN, { collector: p.collector, executionId: 'v/1' }));
    const started = p.logs.filter((l) => l.body === SPAN_STARTED);
    assert.equal(started.length, 1);
    const wfStart = BigInt(s1.spans.spans[0]!.start);
    assert.equal(started[0]!.time, wfStart);
    assert.deepEqual(
      started[0]!.attributes.filter(([k]) => k !== 'sandtrace.span.parent_span_id'),
      [['sandtrace.span.name', 'wf'], ['sandtrace.span.start_time_unix_nano', wfStart.toString()], ['order', 'A-1']],
    );
    await step(CLOSE, { collector: p.collector, executionId: 'v/2', state: s1 });
    const wf = p.spans.filter((s) => s.name === 'wf');
    assert.equal(wf.length, 1);
    assert.equal(hex(wf[0]!.spanId), hex(started[0]!.spanId!), 'the log record named the span that was exported later');
    assert.equal(wf[0]!.start, wfStart);
  });
});

describe('durable workflows: ids', () => {
  test('a re-run of a step with the same execution id emits the same span ids (a backend can deduplicate)', async () => {
    const run = async () => {
      const p = pipeline();
      const s1 = stored(await step(OPEN, { collector: p.collector, executionId: 'replay/1' }));
      await step(`const wf = tracing.resume('wf'); wf.inSpan(() => tracing.inSpan('a', {}, () => tracing.inSpan('b', {}, () => {}))); wf.close(); 1`, { collector: p.collector, executionId: 'replay/2', state: s1 });
      return p.spans.map((s) => `${s.name}:${hex(s.traceId)}:${hex(s.spanId)}:${s.parentSpanId === undefined ? '' : hex(s.parentSpanId)}`).sort();
    };
    const a = await run();
    const b = await run();
    assert.equal(a.length, 5, "two execution spans, wf, a, b");
    assert.deepEqual(a, b);
    assert.equal(new Set(a.map((x) => x.split(":")[2])).size, 5, "distinct span ids");
  });

  test('outside workflows ids stay random: two runs that reuse one execution id never share span or trace ids', async () => {
    const p = pipeline();
    await runQuickJS(`tracing.span('x').close(); 1`, { collector: p.collector, executionId: 'handler' });
    await runQuickJS(`tracing.span('x').close(); 1`, { collector: p.collector, executionId: 'handler' });
    assert.equal(p.spans.length, 4);
    assert.equal(new Set(p.spans.map((s) => hex(s.spanId))).size, 4);
    assert.equal(new Set(p.spans.map((s) => hex(s.traceId))).size, 2);
  });

  test('a resumed step allocates span ids above every id of the workflow so far (never a carried or closed one)', async () => {
    const p = pipeline();
    const s1 = stored(await step(`tracing.span('other').close(); const wf = tracing.span('wf'); 1`, { collector: p.collector, executionId: 'ids/1' }));
    assert.equal(s1.spans.nextSpanId, 3);
    const r = await step(`const wf = tracing.resume('wf'); const c = tracing.span('child'); c.close(); wf.close(); 1`, { collector: p.collector, executionId: 'ids/2', state: s1 });
    assert.equal(r.summary.rejected, 0);
    assert.deepEqual(p.spans.map((s) => s.name).sort(), ['child', 'other', 'sandtrace.execution', 'sandtrace.execution', 'wf']);
  });
});

describe('durable workflows: state does not depend on the host configuration', () => {
  test('switching the terminal output on and off between steps (tee vs pipeline alone) keeps the span whole', async () => {
    const p = pipeline();
    const quiet = p.collector;
    const fmt = new FmtCollector({ write: () => {} });
    const s1 = stored(await step(OPEN, { collector: new TeeCollector([fmt, p.collector]), executionId: 'q/1' }));
    const s2 = stored(await step(`tracing.resume('wf').inSpan(() => tracing.info('middle')); 2`, { collector: quiet, executionId: 'q/2', state: s1 }));
    await step(CLOSE, { collector: new TeeCollector([fmt, p.collector]), executionId: 'q/3', state: s2 });
    const wf = p.spans.filter((s) => s.name === 'wf');
    assert.equal(wf.length, 1);
    assert.deepEqual(wf[0]!.events.map((e) => e.name), ['received', 'middle', 'charged']);
  });

  test('a carried span the level filter hides in one step is carried on as it was (never restarted at time 0)', async () => {
    const p = pipeline();
    const s1 = stored(await step(OPEN, { collector: p.collector, executionId: 'lvl/1' }));
    const warnOnly = new PipelineCollector({ level: 'warn', handlers: {} });
    const s2 = stored(await step(`const wf = tracing.resume('wf'); wf.record('status', 'hidden step'); 2`, { collector: warnOnly, executionId: 'lvl/2', state: s1 }));
    assert.equal(s2.spans.spans[0]!.start, s1.spans.spans[0]!.start);
    assert.deepEqual(s2.spans.spans[0]!.collector, s1.spans.spans[0]!.collector, 'the snapshot of the collector that did not see it is kept');
    await step(CLOSE, { collector: p.collector, executionId: 'lvl/3', state: s2 });
    const wf = p.spans.find((s) => s.name === 'wf')!;
    assert.equal(wf.start, BigInt(s1.spans.spans[0]!.start));
    assert.ok(wf.start > 1_600_000_000_000_000_000n, 'a real start time');
  });
});
