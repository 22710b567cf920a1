import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { CallsiteRegistry } from '../host/receiver/callsite-registry.js';
import { ReceiveError } from '../host/receiver/receive-error.js';
import { TracingEventReceiver } from '../host/receiver/receiver.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { carriedSpan, hostileStates } from './hostile/persisted-state.js';
import { drop, enter, eventSite, exit, newEvent, newSpan, spanSite } from './helpers/events.js';
import { interleavedExits } from './hostile/interleaved-exits.js';
import { NullCollector } from '../host/collectors/null-collector.js';
import { EventEncoder } from '../shared/event-codec.js';
import { PROTOCOL_VERSION } from '../shared/records.js';
import { droppedBeforeStart, overlongMetricNameFrame, untimedFirst } from './hostile/time-skew.js';

const registry = new CallsiteRegistry();

describe('hostile persisted state is refused up front, whole, with MALFORMED naming the problem', () => {
  for (const { name, state, problem } of hostileStates) {
    test(`receiver: ${name}`, () => {
      const started = performance.now();
      assert.throws(
        () => new TracingEventReceiver({ collector: new CaptureCollector(), registry, metadata: state.metadata, spans: state.spans }),
        (e: unknown) => e instanceof ReceiveError && e.code === 'MALFORMED' && /^persisted state refused: /.test(e.message) && problem.test(e.message),
      );
      assert.ok(performance.now() - started < 1_000, 'refused quickly');
    });
  }

  for (const { name, state, problem } of hostileStates) {
    test(`runQuickJS: ${name}`, async () => {
      const started = performance.now();
      const collector = new CaptureCollector();
      await assert.rejects(
        runQuickJS(`tracing.info('never')`, { collector, registry, state, persist: true }),
        (e: unknown) => e instanceof ReceiveError && e.code === 'MALFORMED' && problem.test(e.message),
      );
      assert.ok(performance.now() - started < 2_000, 'rejected quickly');
      assert.equal(collector.spans.size, 0, 'refused before anything reached the collector (no execution span either)');
    });
  }

  test('valid state with a carried enter still applies: exit and drop of the carried span', () => {
    const collector = new CaptureCollector();
    const r = new TracingEventReceiver({ collector, registry, clockOrigin: 0n, spans: { version: 1, spans: [carriedSpan(1, { entered: 2, parent: null })], stack: [1, 1] } });
    r.tryReceive(exit(1, 5n));
    r.tryReceive(drop(1, 6n));
    assert.equal(r.openSpans, 0);
    r.persist(); // a carried span closes with the commit
    assert.equal(collector.find('work')!.closed, true);
  });
});

describe('hostile enter/exit order costs the host O(1) per record', () => {
  test('enter A 80,000 times, enter B 80,000 times, exit A 80,000 times: well under a second per 80,000, every record applied', () => {
    const n = 80_000;
    const events = interleavedExits(n);
    const r = new TracingEventReceiver({ collector: new NullCollector(), registry, limits: { maxEntered: 2 * n } });
    const started = performance.now();
    for (const e of events) r.receive(e);
    const ms = performance.now() - started;
    assert.equal(r.stats.applied, events.length);
    assert.equal(r.stats.rejected, 0);
    assert.ok(ms < 3_000, `took ${ms.toFixed(0)} ms`);
    // B is still entered n times, A not at all: a contextual span lands in B, and A cannot be exited again.
    assert.equal(r.receive(exit(1))?.code, 'NOT_ENTERED');
    for (let i = 0; i < n; i++) assert.equal(r.receive(exit(2)), undefined);
    assert.equal(r.receive(exit(2))?.code, 'NOT_ENTERED');
  });

  test('the enter stack is bounded: enters past maxEntered are rejected as LIMIT_EXCEEDED and counted', () => {
    const n = 20_000;
    const r = new TracingEventReceiver({ collector: new NullCollector(), registry });
    for (const e of interleavedExits(n)) r.receive(e);
    const limit = r.limits.maxEntered;
    assert.equal(limit, 10_000);
    assert.equal(r.stats.rejectedByCode.LIMIT_EXCEEDED, 2 * n - limit, 'every enter past the limit');
    assert.equal(r.stats.rejectedByCode.NOT_ENTERED, n - limit, 'A was entered only `limit` times');
    assert.equal(r.stats.applied, 4 + limit + limit);
  });

  test('an exit of a span that is not innermost removes its innermost enter; contextual parents follow the stack', () => {
    const collector = new CaptureCollector();
    const r = new TracingEventReceiver({ collector, registry, clockOrigin: 0n });
    for (const e of [spanSite(1, 'a'), spanSite(2, 'b'), eventSite(3, 'log'), newSpan(1, 1, [], null), newSpan(2, 2, [], null)]) r.tryReceive(e);
    // Stack: A B A B, then exit A (the inner A) and exit B (the inner B): A B remain, B innermost.
    for (const e of [enter(1), enter(2), enter(1), enter(2), exit(1), exit(2)]) r.tryReceive(e);
    r.tryReceive(newEvent(3, [['message', 'in b']]));
    r.tryReceive(exit(2));
    r.tryReceive(newEvent(3, [['message', 'in a']]));
    r.tryReceive(exit(1));
    r.tryReceive(newEvent(3, [['message', 'outside']]));
    assert.deepEqual(collector.find('b')!.events.map((e) => e.values[0]![1]), ['in b']);
    assert.deepEqual(collector.find('a')!.events.map((e) => e.values[0]![1]), ['in a']);
    assert.equal(r.receive(exit(1))?.code, 'NOT_ENTERED');
    // Many holes, then compaction, then the same answers.
    for (let i = 0; i < 100; i++) r.tryReceive(enter(1));
    for (let i = 0; i < 100; i++) r.tryReceive(enter(2));
    for (let i = 0; i < 99; i++) r.tryReceive(exit(1));
    for (let i = 0; i < 100; i++) r.tryReceive(exit(2));
    r.tryReceive(newEvent(3, [['message', 'in a again']]));
    assert.equal(collector.find('a')!.events.at(-1)!.values[0]![1], 'in a again');
    const state = r.persist();
    assert.deepEqual(state.stack, [1]);
  });
});

describe('hostile records cannot move guest time', () => {
  test('a metric refused for an over-long name still advances the frame time base: later records keep their times', () => {
    const collector = new CaptureCollector();
    const r = new TracingEventReceiver({ collector, registry, clockOrigin: 0n, limits: { maxStringBytes: 1024 } });
    const result = r.receiveBatch(overlongMetricNameFrame(2048));
    assert.equal(result.rejected, 1);
    assert.equal(result.errors[0]!.code, 'LIMIT_EXCEEDED');
    assert.deepEqual(collector.events.map((e) => [e.values[0]![1], e.time]), [['before', 100n], ['after', 300n]]);
    assert.equal(collector.metrics.length, 0);
  });

  test('a metric whose name fits is still accepted at its time', () => {
    const collector = new CaptureCollector();
    const r = new TracingEventReceiver({ collector, registry, clockOrigin: 0n, limits: { maxStringBytes: 1024 } });
    assert.equal(r.receiveBatch(overlongMetricNameFrame(1024)).rejected, 0);
    assert.equal(collector.metrics[0]!.time, 200n);
    assert.equal(collector.events[1]!.time, 300n);
  });

  test('records without a time before the first timestamp take guest time 0, not the host clock', () => {
    const collector = new CaptureCollector();
    const r = new TracingEventReceiver({ collector, registry, clockOrigin: 1_000n });
    for (const e of untimedFirst) r.tryReceive(e);
    assert.equal(collector.find('untimed')!.start, 1_000n);
    assert.equal(collector.events[0]!.time, 1_000n);
  });

  test('a span dropped at a time before its start ends at its start', () => {
    const collector = new CaptureCollector();
    const r = new TracingEventReceiver({ collector, registry, clockOrigin: 0n });
    for (const e of droppedBeforeStart) r.tryReceive(e);
    const span = collector.find('backwards')!;
    assert.equal(span.start, 500n);
    assert.equal(span.end, 500n);
  });

  test('a span force-closed at a last time before its start (the guest moved its clock origin back) ends at its start', () => {
    const collector = new CaptureCollector();
    const r = new TracingEventReceiver({ collector, registry, clockOrigin: 1_000n });
    r.receiveBatch(new EventEncoder().encode([spanSite(1, 'late'), newSpan(1, 1, [], null, 500n)]));
    r.tryReceive({ type: 'hello', version: PROTOCOL_VERSION, guestKind: 'hostile', sdkVersion: '0', clockOrigin: 0n });
    r.terminate({ kind: 'trap' });
    const span = collector.find('late')!;
    assert.equal(span.start, 1_500n);
    assert.equal(span.end, 1_500n);
  });
});
