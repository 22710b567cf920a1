/**
 * Tail sampling per execution: failed and force-closed executions always kept, the rest at a
 * ratio, everything held bounded, metrics never sampled.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TailSamplingCollector } from '../host/collectors/tail-sampling-collector.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import type { LogRecord, MetricPoint, SpanRecord } from '../host/pipeline/telemetry-records.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';

function sink() {
  const spans: SpanRecord[] = [];
  const logs: LogRecord[] = [];
  const metrics: MetricPoint[] = [];
  const pipeline = new PipelineCollector({ eventsAs: 'both', handlers: { onSpan: (s) => spans.push(s), onLog: (l) => logs.push(l), onMetric: (m) => metrics.push(m) } });
  return { pipeline, spans, logs, metrics };
}

const OK = `tracing.inSpan('work', { n: 1 }, () => { tracing.info('inside'); tracing.inSpan('child', {}, () => {}); }); tracing.counter('runs', 1); 'ok'`;
const FAILS = `tracing.inSpan('work', { n: 2 }, () => { tracing.info('about to fail'); throw new Error('boom'); })`;
/** Flushed before it spins: a worker starved of CPU may miss the grace and lose what it had not handed over. */
const SPINS = `tracing.inSpan('work', { n: 3 }, () => { tracing.flush(); for (;;) {} })`;

describe('tail sampling: keep what failed, a ratio of the rest', () => {
  test('at ratio 0 executions that ended well leave nothing but their metrics; failed and force-closed ones are kept whole', async () => {
    const s = sink();
    const collector = new TailSamplingCollector(s.pipeline, { ratio: 0 });
    await runQuickJS(OK, { collector, executionId: 'ok' });
    assert.equal(s.spans.length, 0, 'dropped');
    assert.deepEqual(s.metrics.map((m) => m.name), ['runs'], 'metrics are never sampled');
    await runQuickJS(FAILS, { collector, executionId: 'fails' });
    assert.deepEqual(s.spans.map((x) => x.name).sort(), ['sandtrace.execution', 'work']);
    assert.equal(s.spans.find((x) => x.name === 'work')!.status.code, 'error');
    assert.ok(s.logs.some((l) => l.body === 'about to fail'), 'with its events');
    await runQuickJS(SPINS, { collector, executionId: 'spins', deadlineMs: 1_000 }); // 50 ms may end a starved worker before its first line
    assert.equal(s.spans.filter((x) => x.executionId === 'spins' && x.forced?.cause === 'deadline').length, 2);
    assert.deepEqual(collector.stats, { kept: 2, dropped: 1, keptForSize: 0 });
    assert.equal(collector.heldExecutions, 0, 'nothing held after the executions ended');
  });

  test('at ratio r about r of the executions that ended well are kept, each whole with its parentage', async () => {
    const s = sink();
    let draw = 0;
    const draws = [0.1, 0.9, 0.3, 0.7];
    const collector = new TailSamplingCollector(s.pipeline, { ratio: 0.5, random: () => draws[draw++ % draws.length]! });
    for (let i = 0; i < 4; i++) await runQuickJS(OK, { collector, executionId: `r${i}` });
    assert.deepEqual([...new Set(s.spans.map((x) => x.executionId))].sort(), ['r0', 'r2']);
    const child = s.spans.find((x) => x.name === 'child' && x.executionId === 'r0')!;
    const work = s.spans.find((x) => x.name === 'work' && x.executionId === 'r0')!;
    assert.deepEqual(child.parentSpanId, work.spanId, 'parentage survives the hold');
  });

  test('what is held is bounded: an execution past maxHeldOps is kept from then on, counted', async () => {
    const s = sink();
    const collector = new TailSamplingCollector(s.pipeline, { ratio: 0, maxHeldOps: 50 });
    await runQuickJS(`for (let i = 0; i < 100; i++) tracing.inSpan('w', {}, () => {}); 1`, { collector, executionId: 'big' });
    assert.equal(collector.stats.keptForSize, 1);
    assert.equal(s.spans.filter((x) => x.name === 'w').length, 100, 'kept whole: nothing held was lost');
  });

  test('a resumed step is kept as the running execution: its events land on the carried span, it stays in the workflow trace, nothing is left held', async () => {
    for (const ratio of [0, 1]) {
      const s = sink();
      const collector = new TailSamplingCollector(s.pipeline, { ratio });
      const first = await runQuickJS(`tracing.span('wf', {}).inSpan(() => tracing.info('received')); 1`, { collector, executionId: `r${ratio}/1`, persist: true });
      await runQuickJS(`const wf = tracing.resume('wf'); wf.inSpan(() => tracing.info('charged')); wf.close(); 2`, { collector, executionId: `r${ratio}/2`, persist: true, state: JSON.parse(JSON.stringify(first.state)) });
      const wf = s.spans.find((x) => x.name === 'wf')!;
      assert.deepEqual(wf.events.map((e) => e.name), ['received', 'charged'], `ratio ${ratio}`);
      const step2 = s.spans.find((x) => x.name === 'sandtrace.execution' && x.executionId === `r${ratio}/2`)!;
      assert.deepEqual(step2.parentSpanId, wf.spanId, 'step 2 hangs under the workflow span');
      assert.equal(collector.heldExecutions, 0, 'nothing left held');
    }
  });

  test('a workflow step that commits open spans is kept, and its state resumes', async () => {
    const s = sink();
    const collector = new TailSamplingCollector(s.pipeline, { ratio: 0 });
    const first = await runQuickJS(`tracing.span('wf', {}); 1`, { collector, executionId: 'wf/1', persist: true });
    assert.equal(first.summary.persistedSpans, 1);
    await runQuickJS(`tracing.resume('wf').close(); 1`, { collector, executionId: 'wf/2', persist: true, state: JSON.parse(JSON.stringify(first.state)) });
    assert.equal(s.spans.filter((x) => x.name === 'wf').length, 1);
  });
});
