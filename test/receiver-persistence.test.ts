import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Packr } from 'msgpackr';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import type { Collector, RestoreSpanInfo } from '../host/collectors/collector.js';
import { CallsiteRegistry } from '../host/receiver/callsite-registry.js';
import type { PersistedMetadata, PersistedSpans } from '../host/receiver/persisted-state.js';
import { ReceiveError } from '../host/receiver/receive-error.js';
import { TracingEventReceiver } from '../host/receiver/receiver.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import type { TerminationCause } from '../host/receiver/termination.js';
import { EventEncoder } from '../shared/event-codec.js';
import type { TracingEvent } from '../shared/records.js';
import { drop, enter, eventSite, exit, follows, newEvent, newSpan, prng, record, spanSite } from './helpers/events.js';

const registry = new CallsiteRegistry();

function receiver(collector: Collector, metadata?: PersistedMetadata, spans?: PersistedSpans, executionId = 'exec'): TracingEventReceiver {
  return new TracingEventReceiver({ collector, registry, executionId, clockOrigin: 0n, ...(metadata && { metadata }), ...(spans && { spans }) });
}

function applyAll(r: TracingEventReceiver, events: TracingEvent[]): void {
  for (const e of events) r.tryReceive(e);
}

/** Persisted state after a round trip through JSON and through msgpack, as a host restart would see it. */
function roundTrip<T>(state: T): T {
  const json = JSON.parse(JSON.stringify(state)) as T;
  assert.deepStrictEqual(json, state, 'persisted state is plain JSON data');
  const packr = new Packr({ useRecords: false });
  return packr.unpack(packr.pack(json)) as T;
}

const SITES = [spanSite(1, 'workflow', ['id', 'result']), spanSite(2, 'step', ['n']), eventSite(3, 'log')];

/** Execution 1: opens `workflow` (guest id 1), enters it, logs, commits. */
function firstExecution(collector: Collector) {
  const r = receiver(collector, undefined, undefined, 'exec-1');
  applyAll(r, [...SITES, newSpan(1, 1, [['id', 'wf-7'], ['result', { empty: true }]], undefined, 100n), enter(1, 110n), newEvent(3, [['message', 'started']], undefined, 120n)]);
  return { metadata: roundTrip(r.persistMetadata()), spans: roundTrip(r.persist()) };
}

describe('receiver: persist and restore', () => {
  test('persist() exits entered spans on the host but keeps them open, with their guest enter count', () => {
    const collector = new CaptureCollector();
    const { spans } = firstExecution(collector);
    const wf = collector.find('workflow')!;
    assert.equal(wf.closed, false);
    assert.equal(wf.entered, 0);
    assert.equal(spans.spans.length, 1);
    assert.equal(spans.spans[0]!.entered, 1);
    assert.deepEqual(spans.stack, [1]);
    assert.equal(spans.spans[0]!.start, '100');
  });

  test('restore is lazy: nothing is re-created until the guest uses the span', () => {
    const collector = new CaptureCollector();
    const { metadata, spans } = firstExecution(collector);
    let restored = 0;
    const orig = collector.restoreSpan.bind(collector);
    collector.restoreSpan = (info: RestoreSpanInfo) => (restored++, orig(info));
    const r = receiver(collector, metadata, spans, 'exec-2');
    applyAll(r, [newEvent(3, [['message', 'unrelated']], null)]);
    assert.equal(restored, 0);
    applyAll(r, [record(1, [['result', 'ok']])]);
    assert.equal(restored, 1);
  });

  test('a restored span is resumed in the same collector: one span, with events and values of both executions', () => {
    const collector = new CaptureCollector();
    const { metadata, spans } = firstExecution(collector);
    const r = receiver(collector, metadata, spans, 'exec-2');
    applyAll(r, [newEvent(3, [['message', 'resumed']], undefined, 200n), exit(1, 210n), record(1, [['result', 'ok']]), drop(1, 300n)]);
    r.persist();
    const tree = collector.normalize();
    assert.equal(tree.spans.length, 1);
    assert.deepEqual(tree.spans[0]!.fields, { id: 'wf-7', result: 'ok' });
    assert.deepEqual(tree.spans[0]!.events.map((e) => e.fields.message), ['started', 'resumed'], 'the contextual event of exec 2 lands in the still-entered span');
    const wf = collector.find('workflow')!;
    assert.equal(wf.start, 100n);
    assert.equal(wf.end, 300n);
    assert.equal(wf.closed, true);
  });

  test('after a host restart (fresh collector, state through JSON and msgpack) the span keeps its start, values and events', () => {
    const { metadata, spans } = firstExecution(new CaptureCollector());
    const fresh = new CaptureCollector();
    const r = receiver(fresh, metadata, spans, 'exec-2');
    applyAll(r, [record(1, [['result', 'done']]), exit(1, 400n), drop(1, 500n)]);
    assert.equal(fresh.find('workflow')!.closed, false, 'a carried span closes when the step commits');
    r.persist();
    const wf = fresh.find('workflow')!;
    assert.equal(wf.start, 100n);
    assert.equal(wf.end, 500n);
    assert.deepEqual(fresh.normalize().spans[0]!.fields, { id: 'wf-7', result: 'done' });
    assert.deepEqual(fresh.normalize().spans[0]!.events.map((e) => e.fields.message), ['started']);
  });

  test('values recorded before the first re-entry after restore are kept', () => {
    const collector = new CaptureCollector();
    const first = receiver(collector);
    applyAll(first, [...SITES, newSpan(1, 1, [['id', 'a']]), enter(1), exit(1)]);
    const state = { metadata: first.persistMetadata(), spans: first.persist() };
    const fresh = new CaptureCollector();
    const second = receiver(fresh, state.metadata, state.spans);
    applyAll(second, [record(1, [['result', 42]]), enter(1), exit(1), drop(1)]);
    assert.deepEqual(fresh.normalize().spans[0]!.fields, { id: 'a', result: 42 });
  });

  test('children and follows-from links resolve to a restored span (not to a contextual parent)', () => {
    const collector = new CaptureCollector();
    const first = receiver(collector);
    applyAll(first, [...SITES, newSpan(1, 1, [['id', 'root']]), newSpan(2, 2, [['n', 1]], 1)]);
    const metadata = first.persistMetadata();
    const spans = roundTrip(first.persist());
    const fresh = new CaptureCollector();
    const second = receiver(fresh, metadata, spans);
    applyAll(second, [newSpan(3, 2, [['n', 2]], 1), newSpan(4, 2, [['n', 3]], null), follows(4, 2), drop(3), drop(4), drop(2), drop(1)]);
    const tree = fresh.normalize();
    assert.deepEqual(tree.spans.map((s) => s.name), ['workflow', 'step'], 'the explicit root stays a root');
    const workflow = tree.spans[0]!;
    assert.deepEqual(workflow.children.map((c) => c.fields.n).sort(), [1, 2], 'the new child and the restored child both hang under the restored parent');
    const restoredChild = workflow.children.find((c) => c.fields.n === 1)!;
    assert.deepEqual(tree.spans[1]!.follows, [restoredChild.id], 'the link points at the restored span');
  });

  test('persisted state does not depend on guest callsite ids: the next execution may number them differently', () => {
    const collector = new CaptureCollector();
    const first = receiver(collector);
    applyAll(first, [...SITES, newSpan(1, 1, [['id', 'x']])]);
    const spans = roundTrip(first.persist());
    const fresh = new CaptureCollector();
    const second = receiver(fresh, undefined, spans); // no metadata: the guest re-announces with new ids
    applyAll(second, [eventSite(10, 'log'), spanSite(11, 'workflow', ['id', 'result']), newEvent(10, [['message', 'in it']], 1), drop(1)]);
    second.persist();
    assert.equal(fresh.normalize().spans[0]!.name, 'workflow');
    assert.equal(fresh.normalize().spans[0]!.events.length, 1);
  });

  test('rollback closes the spans of this execution with an error status and leaves carried-over ones as persisted', () => {
    const collector = new CaptureCollector();
    const { metadata, spans } = firstExecution(collector);
    const r = receiver(collector, metadata, spans, 'exec-2');
    applyAll(r, [record(1, [['result', 'uncommitted']]), newSpan(2, 2, [['n', 1]], undefined, 150n), enter(2, 160n), newEvent(3, [['message', 'uncommitted event']], undefined, 170n)]);
    assert.equal(r.rollback(), 1);
    const step = collector.find('step')!;
    assert.equal(step.closed, true);
    assert.deepEqual(step.forced, { cause: 'rollback', message: 'execution ended without persist()' });
    assert.equal(step.end, 170n);
    assert.equal(collector.find('workflow')!.closed, false);
    // The next attempt starts again from the committed state.
    const retry = receiver(collector, metadata, spans, 'exec-3');
    applyAll(retry, [exit(1), drop(1, 900n)]);
    const wf = collector.normalize().spans.find((s) => s.name === 'workflow')!;
    assert.deepEqual(wf.fields, { id: 'wf-7' });
    assert.deepEqual(wf.events.map((e) => e.fields.message), ['started']);
  });

  test('the host owns span ids across executions: persist() records the next free id, and a lower new id is refused', () => {
    const collector = new CaptureCollector();
    const first = receiver(collector);
    applyAll(first, [...SITES, newSpan(1, 1, [['id', 'wf']]), newSpan(2, 2, [['n', 1]], 1), drop(2), newSpan(3, 2, [['n', 2]], 1), drop(3)]);
    const spans = roundTrip(first.persist());
    assert.equal(spans.nextSpanId, 4, 'above every id the execution used, closed ones included');
    const second = receiver(collector, first.persistMetadata(), spans, 'exec-2');
    assert.equal(second.firstSpanId, 4);
    const reuse = second.receive(newSpan(2, 2, [['n', 9]], 1));
    assert.equal(reuse?.code, 'DUPLICATE_SPAN_ID');
    assert.match(reuse!.message, /span id 2 was allocated by an earlier execution of this workflow; this execution's ids start at 4/);
    assert.equal(second.receive(newSpan(1, 1, [['id', 'again']]))?.code, 'DUPLICATE_SPAN_ID', 'nor a carried one');
    assert.equal(second.receive(newSpan(4, 2, [['n', 4]], 1)), undefined);
    assert.equal(second.persist().nextSpanId, 5);
  });

  test('span ids above 2^32 are refused (persisted state holds none), and the largest id still persists loadably', () => {
    const r = receiver(new CaptureCollector());
    applyAll(r, SITES);
    assert.equal(r.receive(newSpan(2 ** 40, 1, [['id', 'x']]))?.code, 'LIMIT_EXCEEDED');
    applyAll(r, [newSpan(0xffff_ffff, 1, [['id', 'top']])]);
    const spans = roundTrip(r.persist());
    assert.equal(spans.nextSpanId, 2 ** 32);
    assert.doesNotThrow(() => receiver(new CaptureCollector(), undefined, spans), 'the next step loads it');
  });

  test('without a span id floor (a guest never told its first id) only ids of open spans are refused', () => {
    const first = receiver(new CaptureCollector());
    applyAll(first, [...SITES, newSpan(1, 1, [['id', 'wf']]), newSpan(2, 2, [['n', 1]], 1), drop(2)]);
    const spans = roundTrip(first.persist());
    const old = new TracingEventReceiver({ collector: new CaptureCollector(), registry, metadata: first.persistMetadata(), spans, spanIdFloor: false, clockOrigin: 0n });
    assert.equal(old.receive(newSpan(2, 2, [['n', 2]], 1)), undefined, 'an older guest numbering from 1 again keeps its spans');
    assert.equal(old.receive(newSpan(1, 1, [['id', 'again']]))?.code, 'DUPLICATE_SPAN_ID', 'but never takes an open carried span');
  });

  test('end() restores carried spans parents first: a collector without snapshots still gets the parentage', () => {
    const first = receiver(new CaptureCollector());
    applyAll(first, [...SITES, newSpan(1, 1, [['id', 'wf']]), newSpan(2, 2, [['n', 1]], 1)]);
    const state = { metadata: first.persistMetadata(), spans: roundTrip(first.persist()) };
    const parents: Array<[string, number | null | undefined]> = [];
    const ids = new Map<string, number>();
    let next = 1;
    const plain: Collector = {
      registerCallsite: () => 'always', enabled: () => true,
      newSpan: (info) => { const id = next++; ids.set(info.meta.name, id); parents.push([info.meta.name, info.parent]); return id; },
      record() {}, recordFollowsFrom() {}, event() {}, enter() {}, exit() {}, cloneSpan: (id) => id, tryClose: () => true, currentSpan: () => undefined,
    };
    const r = receiver(plain, state.metadata, state.spans, 'exec-2');
    assert.equal(r.end(), 2);
    assert.deepEqual(parents, [['workflow', undefined], ['step', ids.get('workflow')]]);
  });

  test('disposal without persist() rolls back; after persist() it does nothing', () => {
    const collector = new CaptureCollector();
    {
      using r = receiver(collector);
      applyAll(r, [...SITES, newSpan(1, 1, [['id', 'a']])]);
    }
    assert.equal(collector.find('workflow')!.forced?.cause, 'rollback');
    const other = new CaptureCollector();
    {
      using r = receiver(other);
      applyAll(r, [...SITES, newSpan(1, 1, [['id', 'b']])]);
      r.persist();
    }
    assert.equal(other.find('workflow')!.closed, false);
  });
});

describe('receiver: corrupted persisted state', () => {
  test('is refused up front with a typed error naming the problems, not halfway through a run', () => {
    const { metadata, spans } = firstExecution(new CaptureCollector());
    const bad = structuredClone(spans);
    bad.spans[0]!.start = 'yesterday';
    (bad.spans[0]!.callsite as { level: string }).level = 'loud';
    assert.throws(
      () => receiver(new CaptureCollector(), metadata, bad),
      (e: unknown) => e instanceof ReceiveError && e.code === 'MALFORMED' && /start must be unix ns/.test(e.message) && /unknown level/.test(e.message),
    );
    assert.throws(() => receiver(new CaptureCollector(), { version: 1, callsites: 'x' } as never), { code: 'MALFORMED' });
    assert.throws(() => receiver(new CaptureCollector(), undefined, { version: 1, spans: [{ id: -1 }] } as never), /bad id/);
  });

  test('a run given corrupted state rejects before anything reaches the collector (no execution span to leave open)', async () => {
    const collector = new CaptureCollector();
    const state = { metadata: { version: 1 as const, callsites: [] }, spans: { version: 1 as const, spans: [{ id: 1 }] } } as never;
    await assert.rejects(runQuickJS(`1`, { collector, state }), { code: 'MALFORMED' });
    assert.equal(collector.spans.size, 0);
  });

  test('a state of an unknown format version is refused, naming the versions this sandtrace reads', async () => {
    const state = { metadata: { version: 1 as const, callsites: [] }, spans: { version: 3, spans: [] } } as never;
    await assert.rejects(runQuickJS(`1`, { collector: new CaptureCollector(), state }), /spans\.version: format 3 is not one this sandtrace reads \(1 and 2\)/);
  });
});

describe('receiver: terminate()', () => {
  const causes: Array<[TerminationCause, RegExp]> = [
    [{ kind: 'trap', message: 'unreachable executed' }, /^trap: unreachable executed$/],
    [{ kind: 'abort', message: 'bad input', file: 'plugin.ts', line: 12, column: 5 }, /^abort: bad input at plugin\.ts:12:5$/],
    [{ kind: 'deadline', message: 'interrupted after 50 ms' }, /^deadline exceeded: interrupted after 50 ms$/],
    [{ kind: 'out_of_memory' }, /^out of memory$/],
    [{ kind: 'stack_overflow' }, /^stack overflow$/],
    [{ kind: 'exception', message: 'TypeError: x is undefined' }, /^uncaught exception: TypeError: x is undefined$/],
    [{ kind: 'host_cancel', message: 'request aborted' }, /^cancelled by host: request aborted$/],
  ];
  for (const [cause, text] of causes) {
    test(`force-closes every open span of the execution on ${cause.kind}, at the last guest time, naming the cause`, () => {
      const collector = new CaptureCollector();
      const r = receiver(collector);
      applyAll(r, [...SITES, newSpan(1, 1, [], undefined, 10n), enter(1, 20n), newSpan(2, 2, [['n', 1]], undefined, 30n), enter(2, 40n), newEvent(3, [['message', 'last words']], undefined, 55n)]);
      assert.equal(r.terminate(cause), 2);
      for (const name of ['workflow', 'step']) {
        const s = collector.find(name)!;
        assert.equal(s.closed, true);
        assert.equal(s.end, 55n);
        assert.equal(s.entered, 0);
        assert.equal(s.forced?.cause, cause.kind);
        assert.match(s.forced!.message, text);
      }
      assert.equal(collector.find('step')!.events[0]!.values[0]![1], 'last words');
      assert.equal(r.state, 'terminated');
      assert.equal(r.rollback(), 0, 'nothing left to roll back');
    });
  }

  test('carried-over spans survive a terminated execution for the retry', () => {
    const collector = new CaptureCollector();
    const { metadata, spans } = firstExecution(collector);
    const r = receiver(collector, metadata, spans, 'exec-2');
    applyAll(r, [newSpan(2, 2, [['n', 1]], undefined, 200n)]);
    r.terminate({ kind: 'trap' });
    assert.equal(collector.find('step')!.closed, true);
    assert.equal(collector.find('workflow')!.closed, false);
  });
});

/** A recorded guest session: `count` spans nested up to depth 6, with events and records. */
function recordedSession(count: number, seed: number): { events: TracingEvent[]; boundaries: number[] } {
  const rand = prng(seed);
  const events: TracingEvent[] = [spanSite(1, 'node', ['i', 'depth', 'late']), eventSite(2, 'log', ['message', 'i'])];
  const boundaries: number[] = [];
  let t = 0n;
  let made = 0;
  const tick = () => (t += BigInt(1 + Math.floor(rand() * 1000)));
  const grow = (depth: number): void => {
    const id = ++made;
    boundaries.push(events.length);
    events.push(newSpan(id, 1, [['i', id], ['depth', depth], ['late', { empty: true }]], undefined, tick()));
    events.push(enter(id, tick()));
    const kids = depth < 6 ? Math.floor(rand() * 4) : 0;
    for (let k = 0; k < kids && made < count; k++) {
      if (rand() < 0.5) events.push(newEvent(2, [['message', 'tick'], ['i', id]], undefined, tick()));
      grow(depth + 1);
    }
    if (rand() < 0.3) events.push(record(id, [['late', `v${id}`]]));
    events.push(exit(id, tick()));
    events.push(drop(id, tick()));
    boundaries.push(events.length);
  };
  while (made < count) grow(0);
  return { events, boundaries };
}

describe('receiver: chunked stream', () => {
  test('10,000 nested spans applied in chunks (a new receiver per chunk, restored from the last persist) equal one pass', () => {
    const { events, boundaries } = recordedSession(10_000, 0x5eed);
    const oneGo = new CaptureCollector();
    const single = receiver(oneGo);
    applyAll(single, events);
    single.persist();

    const chunked = new CaptureCollector();
    let metadata: PersistedMetadata | undefined;
    let spans: PersistedSpans | undefined;
    let from = 0;
    const cuts = [...new Set(boundaries)].filter((b) => b > 0 && b < events.length);
    cuts.push(events.length);
    const enc = new EventEncoder();
    for (const cut of cuts) {
      const r = receiver(chunked, metadata, spans);
      // Half the chunks go through the wire format, half as event objects.
      const frame = enc.encode(events.slice(from, cut)); // always, so the encoder learns every span's callsite
      if (cut % 2 === 0) {
        const res = r.receiveBatch(frame);
        assert.equal(res.rejected, 0, JSON.stringify(res.errors.map((e) => e.message)));
      } else applyAll(r, events.slice(from, cut));
      metadata = r.persistMetadata();
      spans = r.persist();
      from = cut;
    }
    assert.ok(cuts.length > 10_000);
    assert.deepStrictEqual(chunked.normalize(), oneGo.normalize());
    assert.equal(spans!.spans.length, 0);
  });
});
