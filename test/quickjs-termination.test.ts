import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import type { EventInfo } from '../host/collectors/collector.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';

/** A guest that opens two nested spans, logs its last words, then does `crash`. */
function dyingGuest(crash: string): string {
  return `
    const outer = tracing.span('outer', { step: 1 });
    outer.enter();
    const inner = tracing.span('inner');
    inner.enter();
    tracing.warn('last words', { n: 42 });
    ${crash}
  `;
}

function assertForceClosed(collector: CaptureCollector, kind: string, cause: RegExp, events = ['last words']): void {
  for (const name of ['outer', 'inner']) {
    const span = collector.find(name)!;
    assert.ok(span, `${name} was received`);
    assert.equal(span.closed, true, `${name} closed`);
    assert.equal(span.forced?.cause, kind, `${name} cause`);
    assert.match(span.forced!.message, cause);
    assert.equal(span.entered, 0, `${name} exited`);
  }
  const inner = collector.find('inner')!;
  assert.deepEqual(inner.events.map((e) => e.values[0]![1]), events, 'the records emitted before the end are there');
  const latestGuestTime = inner.events.at(-1)!.time;
  assert.equal(collector.find('outer')!.end, latestGuestTime, 'end time = last time observed from the guest');
  const exec = collector.find('sandtrace.execution')!;
  assert.equal(exec.forced?.cause, kind, 'the execution span names the cause too');
}

describe('QuickJS abnormal termination', () => {
  test('deadline: the interrupt cannot be caught by the guest, and open spans close with cause deadline', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(dyingGuest(`for (;;) { try { for (;;) {} } catch (e) { tracing.error('caught it'); } }`), { collector, deadlineMs: 50 });
    assert.equal(r.ok, false);
    assert.equal(r.summary.termination?.kind, 'deadline');
    assert.match(r.error!.message, /interrupted/);
    assertForceClosed(collector, 'deadline', /^deadline exceeded/);
    assert.equal(collector.events.some((e) => e.values[0]![1] === 'caught it'), false);
  });

  test('memory limit: detected even when the guest catches the out-of-memory error itself', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(
      dyingGuest(`
        var keep = [];
        try { for (;;) keep.push('x'.repeat(1024) + Math.random()); } catch (e) { keep = null; tracing.info('swallowed', { e: String(e) }); }
        'finished normally, as far as the guest knows'`),
      { collector, memoryLimitBytes: 8 << 20 },
    );
    assert.equal(r.ok, false);
    assert.equal(r.summary.termination?.kind, 'out_of_memory');
    // The guest went on after catching: what it logged then is kept, and still the run is an OOM.
    assertForceClosed(collector, 'out_of_memory', /^out of memory/, ['last words', 'swallowed']);
  });

  test('stack overflow: closes with cause stack_overflow', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(dyingGuest(`function f(n) { return f(n + 1) + 1; } f(0);`), { collector });
    assert.equal(r.summary.termination?.kind, 'stack_overflow');
    assertForceClosed(collector, 'stack_overflow', /^stack overflow: RangeError/);
  });

  test('uncaught exception: closes with cause exception and the error message', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(dyingGuest(`throw new TypeError('cannot read x of undefined');`), { collector });
    assert.deepEqual(r.error?.name, 'TypeError');
    assert.equal(r.summary.termination?.kind, 'exception');
    assertForceClosed(collector, 'exception', /^uncaught exception: TypeError: cannot read x of undefined$/);
  });

  test('a rejected promise of an async guest is an uncaught exception', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(dyingGuest(`(async () => { await null; throw new Error('async failure'); })()`), { collector });
    assert.equal(r.summary.termination?.kind, 'exception');
    assertForceClosed(collector, 'exception', /async failure/);
  });

  test('host cancel: an AbortSignal fired while the guest runs stops it with cause host_cancel', async () => {
    const controller = new AbortController();
    const collector = new CaptureCollector();
    // The host decides to cancel when it sees the guest's warning (delivered at the flush).
    const event = collector.event.bind(collector);
    collector.event = (e: EventInfo) => {
      event(e);
      if (e.values[0]![1] === 'last words') controller.abort();
    };
    const r = await runQuickJS(dyingGuest(`tracing.flush(); for (;;) {}`), { collector, signal: controller.signal, deadlineMs: 10_000 });
    assert.equal(r.summary.termination?.kind, 'host_cancel');
    assertForceClosed(collector, 'host_cancel', /^cancelled by host/);
  });

  test('records written just before the crash are drained from the guest buffer without an explicit flush', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(`for (let i = 0; i < 10; i++) tracing.info('step', { i }); null.boom;`, { collector, flushBytes: 1 << 20 });
    assert.equal(r.summary.frames, 1, 'nothing was flushed before the crash: the host drained it after');
    assert.equal(collector.events.length, 10);
  });

  test('a normal end without closing spans rolls them back with an error status', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(`tracing.span('forgotten').enter(); 'done'`, { collector });
    assert.equal(r.ok, true);
    assert.equal(collector.find('forgotten')!.forced?.cause, 'rollback');
    assert.equal(r.summary.forceClosed, 1);
  });

  test('after every kind of death the next run still works', async () => {
    const r = await runQuickJS(`tracing.info('alive'); 'yes'`, { collector: new CaptureCollector() });
    assert.equal(r.value, 'yes');
  });
});
