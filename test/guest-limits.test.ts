import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { NullCollector } from '../host/collectors/null-collector.js';
import { CallsiteRegistry } from '../host/receiver/callsite-registry.js';
import { DEFAULT_LIMITS } from '../host/receiver/receiver.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';

function execSpanValues(c: CaptureCollector): Record<string, unknown> {
  return Object.fromEntries(c.find('sandtrace.execution')!.values);
}

describe('hostile guests: per-execution limits', () => {
  test('every limit has a sensible default', () => {
    assert.deepEqual(DEFAULT_LIMITS, { maxRecords: 1_000_000, maxFrameBytes: 8 << 20, maxStringBytes: 64 << 10, maxOpenSpans: 10_000, maxDepth: 128, maxCallsites: 1_000, maxEntered: 10_000, maxPendingEvents: 10_000, maxPendingBytes: 16 << 20 });
  });

  test('records per execution: past the limit records are dropped and counted, in the summary and on the execution span', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(`for (let i = 0; i < 5000; i++) tracing.info('flood', { i }); 'survived'`, { collector, limits: { maxRecords: 1000 } });
    assert.equal(r.ok, true);
    assert.equal(r.value, 'survived');
    assert.equal(r.summary.records, 1000);
    assert.ok(r.summary.limitDropped >= 4000, `dropped ${r.summary.limitDropped}`);
    assert.equal(r.summary.rejectedByCode.LIMIT_EXCEEDED, r.summary.limitDropped);
    assert.equal(execSpanValues(collector)['sandtrace.dropped'], r.summary.rejected);
  });

  test('bytes per record: a frame over maxFrameBytes is read record by record; only a record over it is lost, counted with its size', async () => {
    const collector = new CaptureCollector();
    const guest = `for (let i = 0; i < 2000; i++) { tracing.info('bulk', { i }); if (i === 1000) tracing.info('big', { blob: 'x'.repeat(8000) }); } 'ok'`;
    const r = await runQuickJS(guest, { collector, flushBytes: 1 << 20, limits: { maxFrameBytes: 4096, maxStringBytes: 1 << 20 } });
    assert.equal(r.summary.frames, 1);
    assert.equal(r.summary.refusedFrames, 1);
    assert.ok(r.summary.refusedBytes > 8000 && r.summary.refusedBytes < 8100, `refused ${r.summary.refusedBytes} bytes`);
    assert.deepEqual(r.summary.rejectedByCode, { LIMIT_EXCEEDED: 1 });
    assert.equal(collector.events.length, 2000);
  });

  test('string length: a record with an oversized string is dropped, the records around it are kept', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(`tracing.info('before'); tracing.info('x'.repeat(100000)); tracing.info('after');`, { collector, limits: { maxStringBytes: 1024 } });
    assert.deepEqual(collector.events.map((e) => e.values[0]![1]), ['before', 'after']);
    assert.equal(r.summary.limitDropped, 1);
  });

  test('values per record: a callsite with too many fields is refused, and so is every use of it', async () => {
    const collector = new CaptureCollector();
    const fields = Array.from({ length: 40 }, (_, i) => `f${i}: ${i}`).join(', ');
    const r = await runQuickJS(`tracing.info('wide', { ${fields} }); tracing.info('wide', { ${fields} }); tracing.info('narrow', { a: 1 });`, { collector });
    assert.deepEqual(collector.events.map((e) => e.values[0]![1]), ['narrow']);
    assert.equal(r.summary.rejectedByCode.TOO_MANY_VALUES, 1);
    assert.equal(r.summary.rejectedByCode.UNKNOWN_METADATA_ID, 2);
  });

  test('open spans: the host keeps at most maxOpenSpans of them', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(`for (let i = 0; i < 3000; i++) tracing.span('leak', { i });`, { collector, limits: { maxOpenSpans: 100 } });
    assert.equal(collector.spans.size, 1 + 100, 'the execution span and 100 guest spans');
    assert.equal(r.summary.limitDropped, 2900);
  });

  test('nesting depth: spans deeper than maxDepth are dropped', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(`for (let i = 0; i < 50; i++) tracing.span('deeper', { i }).enter();`, { collector, limits: { maxDepth: 10 } });
    const guestSpans = [...collector.spans.values()].filter((s) => s.meta.name === 'deeper');
    assert.equal(guestSpans.length, 10);
    assert.ok(r.summary.limitDropped >= 40);
  });

  test('callsites: a guest inventing names cannot announce more than maxCallsites', async () => {
    const collector = new CaptureCollector();
    const registry = new CallsiteRegistry();
    const r = await runQuickJS(`for (let i = 0; i < 500; i++) tracing.span('name-' + i).close();`, { collector, registry, limits: { maxCallsites: 20 } });
    assert.ok(registry.size <= 21, `registry holds ${registry.size}`); // 20 + the execution span's
    assert.ok(r.summary.limitDropped >= 480);
  });

  test('a 300,000-record flood into a limited execution keeps host memory flat', async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const before = process.memoryUsage().heapUsed;
    // The deadline only ends a hang: the flood takes a few seconds alone, and past 60 s on a
    // machine loaded ten times over its cores.
    const r = await runQuickJS(`for (let i = 0; i < 300000; i++) tracing.span('s', { i });`, { collector: new NullCollector(), limits: { maxOpenSpans: 1000 }, deadlineMs: 300_000 });
    gc?.();
    const grown = process.memoryUsage().heapUsed - before;
    assert.equal(r.ok, true, r.summary.cause);
    assert.ok(r.summary.limitDropped >= 299_000, `${r.summary.limitDropped} dropped over the limits`);
    assert.ok(grown < 64 << 20, `heap grew by ${grown} bytes`);
  });

  test('a guest-supplied trace context becomes a link, never the parent', async () => {
    const collector = new CaptureCollector();
    const foreign = '00-11111111111111111111111111111111-2222222222222222-01';
    await runQuickJS(`tracing.span('consume', { topic: 'orders' }, { link: '${foreign}' }).close();`, { collector, traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    const span = collector.find('consume')!;
    assert.deepEqual(span.links, [{ traceId: '11111111111111111111111111111111', spanId: '2222222222222222', traceFlags: 1 }]);
    assert.equal(span.parent, collector.find('sandtrace.execution')!.id, 'still a child of the host execution');
    assert.deepEqual(
      span.values.map(([k]) => k),
      ['topic', 'error'],
      'the link field does not reach the attributes',
    );
  });
});
