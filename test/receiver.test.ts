import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { CallsiteRegistry } from '../host/receiver/callsite-registry.js';
import { ReceiveError } from '../host/receiver/receive-error.js';
import { TracingEventReceiver } from '../host/receiver/receiver.js';
import { EventEncoder } from '../shared/event-codec.js';
import type { TracingEvent } from '../shared/records.js';
import { clone, drop, enter, eventSite, exit, follows, newEvent, newSpan, record, spanSite } from './helpers/events.js';

function setup(options: { maxValues?: number; level?: 'trace' | 'info' | 'warn' } = {}) {
  const collector = new CaptureCollector(options.level === undefined ? {} : { level: options.level });
  const registry = new CallsiteRegistry();
  const receiver = new TracingEventReceiver({ collector, registry, clockOrigin: 1_000_000_000n, ...(options.maxValues && { maxValues: options.maxValues }) });
  return { collector, registry, receiver };
}

function applyAll(receiver: TracingEventReceiver, events: TracingEvent[]): void {
  for (const e of events) receiver.tryReceive(e);
}

/** Asserts the event is rejected with `code`, and that nothing observable changed. */
function assertRejected(ctx: ReturnType<typeof setup>, event: TracingEvent, code: string): void {
  const before = JSON.stringify(ctx.collector.normalize(), (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
  const open = ctx.receiver.openSpans;
  assert.throws(() => ctx.receiver.tryReceive(event), (e: unknown) => e instanceof ReceiveError && e.code === code);
  const err = ctx.receiver.receive(event);
  assert.equal(err?.code, code);
  assert.equal(JSON.stringify(ctx.collector.normalize(), (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)), before);
  assert.equal(ctx.receiver.openSpans, open);
}

describe('receiver: callsites', () => {
  test('a duplicate callsite announcement is accepted and interned once', () => {
    const ctx = setup();
    let registered = 0;
    const orig = ctx.collector.registerCallsite.bind(ctx.collector);
    ctx.collector.registerCallsite = (m) => (registered++, orig(m));
    applyAll(ctx.receiver, [spanSite(1, 'a', ['x']), spanSite(1, 'a', ['x']), spanSite(2, 'a', ['x'])]);
    assert.equal(ctx.registry.size, 1);
    assert.equal(registered, 1);
  });

  test('callsites are interned by content across receivers: a thousand executions keep one copy', () => {
    const registry = new CallsiteRegistry();
    const collector = new CaptureCollector();
    const sites = [spanSite(1, 'handle', ['user']), eventSite(2, 'log'), eventSite(3, 'warned', ['message'], 'warn')];
    const enc = new EventEncoder();
    const frame = enc.encode(sites);
    const metas = new Set<unknown>();
    for (let i = 0; i < 1000; i++) {
      const r = new TracingEventReceiver({ collector, registry });
      r.receiveBatch(frame);
      for (const cs of r.persistMetadata().callsites) metas.add(registry.intern(cs));
      r.rollback();
    }
    assert.equal(registry.size, 3);
    assert.equal(metas.size, 3);
  });

  test('a callsite declaring more than maxValues fields is rejected', () => {
    const ctx = setup();
    const fields = Array.from({ length: 33 }, (_, i) => `f${i}`);
    assertRejected(ctx, spanSite(1, 'wide', fields), 'TOO_MANY_VALUES');
    ctx.receiver.tryReceive(spanSite(1, 'ok', fields.slice(0, 32)));
  });
});

describe('receiver: validation', () => {
  test('unknown callsite ids are rejected for spans and events', () => {
    const ctx = setup();
    assertRejected(ctx, newSpan(1, 9), 'UNKNOWN_METADATA_ID');
    assertRejected(ctx, newEvent(9, [['message', 'x']]), 'UNKNOWN_METADATA_ID');
  });

  test('unknown span ids are rejected for every record type that names a span', () => {
    const ctx = setup();
    applyAll(ctx.receiver, [spanSite(1, 's', ['x']), eventSite(2, 'e'), newSpan(1, 1)]);
    for (const e of [enter(7), exit(7), drop(7), clone(7), record(7, [['x', 1]]), follows(7, 1), follows(1, 7), newSpan(2, 1, [], 7), newEvent(2, [], 7)]) {
      assertRejected(ctx, e, 'UNKNOWN_SPAN_ID');
    }
  });

  test('0 to 32 values are accepted and 33 are rejected', () => {
    const ctx = setup({ maxValues: 40 });
    const fields = Array.from({ length: 40 }, (_, i) => `f${i}`);
    const strict = new TracingEventReceiver({ collector: ctx.collector, registry: ctx.registry });
    strict.tryReceive(spanSite(1, 'wide', fields.slice(0, 32)));
    for (let n = 0; n <= 32; n++) {
      strict.tryReceive(newSpan(100 + n, 1, fields.slice(0, n).map((f, i) => [f, i])));
    }
    // A callsite of 33+ fields can only exist on a receiver with a larger limit; the default rejects 33 values.
    ctx.receiver.tryReceive(spanSite(1, 'wider', fields));
    const ok = new TracingEventReceiver({ collector: ctx.collector, registry: ctx.registry, maxValues: 32, metadata: ctx.receiver.persistMetadata() });
    assert.throws(() => ok.tryReceive(newSpan(1, 1, fields.slice(0, 33).map((f, i) => [f, i]))), { code: 'TOO_MANY_VALUES' });
    ok.tryReceive(newSpan(1, 1, [['f0', 0]]));
    assert.throws(() => ok.tryReceive(record(1, fields.slice(0, 33).map((f, i) => [f, i]))), { code: 'TOO_MANY_VALUES' });
  });

  test('an unknown field name is rejected and changes nothing', () => {
    const ctx = setup();
    applyAll(ctx.receiver, [spanSite(1, 's', ['x']), eventSite(2, 'e', ['message']), newSpan(1, 1, [['x', 1]])]);
    assertRejected(ctx, newSpan(2, 1, [['y', 1]]), 'UNKNOWN_FIELD');
    assertRejected(ctx, record(1, [['nope', 2]]), 'UNKNOWN_FIELD');
    assertRejected(ctx, newEvent(2, [['extra', 1]]), 'UNKNOWN_FIELD');
    assert.deepEqual(ctx.collector.normalize().spans[0]!.fields, { x: 1 });
  });

  test('a span callsite used for an event, or the reverse, is a kind mismatch', () => {
    const ctx = setup();
    applyAll(ctx.receiver, [spanSite(1, 's'), eventSite(2, 'e')]);
    assertRejected(ctx, newEvent(1), 'KIND_MISMATCH');
    assertRejected(ctx, newSpan(1, 2), 'KIND_MISMATCH');
  });

  test('a reused span id and an exit without enter are rejected', () => {
    const ctx = setup();
    applyAll(ctx.receiver, [spanSite(1, 's'), newSpan(1, 1)]);
    assertRejected(ctx, newSpan(1, 1), 'DUPLICATE_SPAN_ID');
    assertRejected(ctx, exit(1), 'NOT_ENTERED');
  });

  test('an unknown protocol major version is rejected with a clear error', () => {
    const ctx = setup();
    const e = ctx.receiver.receive({ type: 'hello', version: 2, guestKind: 'js', sdkVersion: '9', clockOrigin: 0n });
    assert.equal(e?.code, 'UNSUPPORTED_VERSION');
    assert.match(e!.message, /version 2.*speaks 1/);
    assert.equal(ctx.receiver.stats.rejectedByCode.UNSUPPORTED_VERSION, 1);
  });
});

describe('receiver: spans', () => {
  test('re-entry is counted per span and children nest under the entered span', () => {
    const ctx = setup();
    applyAll(ctx.receiver, [spanSite(1, 'outer'), spanSite(2, 'inner'), eventSite(3, 'log'), newSpan(1, 1), enter(1), enter(1), exit(1)]);
    const outer = ctx.collector.find('outer')!;
    assert.equal(outer.entered, 1);
    applyAll(ctx.receiver, [newSpan(2, 2), newEvent(3, [['message', 'hi']]), exit(1), newSpan(3, 2)]);
    assert.equal(outer.entered, 0);
    const tree = ctx.collector.normalize();
    assert.equal(tree.spans.length, 2, 'the span created after the last exit is a root');
    assert.equal(tree.spans[0]!.children[0]!.name, 'inner');
    assert.equal(tree.spans[0]!.events[0]!.fields.message, 'hi');
  });

  test('a span stays open while clones are alive and closes once when the last is dropped', () => {
    const ctx = setup();
    let closes = 0;
    const orig = ctx.collector.tryClose.bind(ctx.collector);
    ctx.collector.tryClose = (id, t, f) => (closes++, orig(id, t, f));
    applyAll(ctx.receiver, [spanSite(1, 's'), newSpan(1, 1), clone(1), clone(1), drop(1), drop(1)]);
    assert.equal(ctx.collector.find('s')!.closed, false);
    ctx.receiver.tryReceive(drop(1, 5_000n));
    assert.equal(ctx.collector.find('s')!.closed, true);
    assert.equal(ctx.collector.find('s')!.end, 1_000_005_000n);
    assert.equal(closes, 1);
    assertRejected(ctx, drop(1), 'UNKNOWN_SPAN_ID');
  });

  test('parents are three-state: contextual, explicit root, explicit span', () => {
    const ctx = setup();
    applyAll(ctx.receiver, [spanSite(1, 's'), newSpan(1, 1), newSpan(2, 1), enter(2), newSpan(3, 1), newSpan(4, 1, [], null), newSpan(5, 1, [], 1)]);
    const c = ctx.collector;
    assert.equal(c.spans.get(3)!.parent, 2, 'contextual = innermost entered span');
    assert.equal(c.spans.get(4)!.parent, null, 'explicit root');
    assert.equal(c.spans.get(5)!.parent, 1, 'explicit parent');
    assert.equal(c.spans.get(1)!.parent, undefined, 'contextual with nothing entered = host context');
  });

  test('values recorded later replace declared-but-empty ones; follows-from becomes a link', () => {
    const ctx = setup();
    applyAll(ctx.receiver, [spanSite(1, 's', ['a', 'b']), newSpan(1, 1, [['a', 1], ['b', { empty: true }]]), record(1, [['b', 'later']]), newSpan(2, 1), follows(2, 1)]);
    const tree = ctx.collector.normalize();
    assert.deepEqual(tree.spans[0]!.fields, { a: 1, b: 'later' });
    assert.deepEqual(tree.spans[1]!.follows, ['s1']);
  });

  test('guest timestamps map to unix time through the hello clock origin', () => {
    const ctx = setup();
    applyAll(ctx.receiver, [{ type: 'hello', version: 1, guestKind: 'test', sdkVersion: '1', clockOrigin: 1_700_000_000_000_000_000n }, spanSite(1, 's'), newSpan(1, 1, [], undefined, 250n), drop(1, 1_250n)]);
    const s = ctx.collector.find('s')!;
    assert.equal(s.start, 1_700_000_000_000_000_250n);
    assert.equal(s.end, 1_700_000_000_000_001_250n);
    assert.deepEqual(ctx.receiver.guest, { kind: 'test', sdkVersion: '1' });
  });

  test('disabled callsites are skipped: their children attach to the nearest enabled ancestor', () => {
    const ctx = setup({ level: 'info' });
    applyAll(ctx.receiver, [
      spanSite(1, 'outer'),
      spanSite(2, 'noisy', ['x'], 'debug'),
      eventSite(3, 'debugLog', ['message'], 'debug'),
      eventSite(4, 'infoLog'),
      newSpan(1, 1),
      enter(1),
      newSpan(2, 2, [['x', 1]]),
      enter(2),
      newEvent(3, [['message', 'hidden']]),
      newEvent(4, [['message', 'shown']]),
      newSpan(3, 1, [], 2),
      record(2, [['x', 2]]),
      exit(2),
      drop(2),
      exit(1),
    ]);
    const tree = ctx.collector.normalize();
    assert.equal(tree.spans.length, 1);
    assert.equal(tree.spans[0]!.children.length, 1, 'the explicit child of the disabled span hangs under outer');
    assert.deepEqual(tree.spans[0]!.events.map((e) => e.fields.message), ['shown']);
    assert.equal(ctx.receiver.stats.rejected, 0);
  });

  test("a 'sometimes' interest asks enabled() on every use", () => {
    const ctx = setup();
    let on = true;
    let asked = 0;
    ctx.collector.registerCallsite = () => 'sometimes';
    ctx.collector.enabled = () => (asked++, on);
    applyAll(ctx.receiver, [eventSite(1, 'e'), newEvent(1, [['message', 'a']])]);
    on = false;
    ctx.receiver.tryReceive(newEvent(1, [['message', 'b']]));
    assert.equal(asked, 2);
    assert.equal(ctx.collector.events.length, 1);
  });

  test('metrics and guest drop counts reach the collector and the stats', () => {
    const ctx = setup();
    applyAll(ctx.receiver, [
      { type: 'metric', name: 'reqs', instrument: 'counter', value: 2, attributes: [['route', '/a']] },
      { type: 'dropped', count: 7 },
    ]);
    assert.deepEqual(ctx.collector.normalize().metrics, [{ name: 'reqs', instrument: 'counter', value: 2, attributes: { route: '/a' } }]);
    assert.equal(ctx.receiver.stats.guestDropped, 7);
  });
});

describe('receiver: batches', () => {
  test('one bad record in a frame is rejected and the good ones around it apply', () => {
    const ctx = setup();
    const enc = new EventEncoder();
    enc.add(spanSite(1, 's'));
    enc.add(newSpan(1, 1));
    enc.writer.spanEntered(99, 10); // unknown span
    enc.add(enter(1, 20n));
    const frame = enc.finish();
    const r = ctx.receiver.receiveBatch(frame);
    assert.deepEqual({ applied: r.applied, rejected: r.rejected, truncated: r.truncated }, { applied: 3, rejected: 1, truncated: 0 });
    assert.equal(r.errors[0]!.code, 'UNKNOWN_SPAN_ID');
    assert.equal(ctx.collector.find('s')!.entered, 1);
  });

  test('a truncated frame applies every complete record before the cut', () => {
    const ctx = setup();
    const frame = new EventEncoder().encode([spanSite(1, 's', ['x']), newSpan(1, 1, [['x', 'a long enough value']]), enter(1, 5n)]);
    const r = ctx.receiver.receiveBatch(frame.subarray(0, frame.length - 2));
    assert.deepEqual({ applied: r.applied, rejected: r.rejected, truncated: r.truncated }, { applied: 2, rejected: 0, truncated: 1 });
    assert.equal(ctx.receiver.stats.truncatedFrames, 1);
  });

  test('bytes that are not msgpack end the frame with one counted rejection', () => {
    const ctx = setup();
    const good = new EventEncoder().encode([spanSite(1, 's')]);
    const frame = new Uint8Array([...good, 0xc1, ...good]);
    const r = ctx.receiver.receiveBatch(frame);
    assert.deepEqual({ applied: r.applied, rejected: r.rejected }, { applied: 1, rejected: 1 });
    assert.equal(r.errors[0]!.code, 'MALFORMED');
  });

  test('a closed receiver refuses frames with a typed error', () => {
    const ctx = setup();
    ctx.receiver.rollback();
    const r = ctx.receiver.receiveBatch(new EventEncoder().encode([spanSite(1, 's')]));
    assert.equal(r.errors[0]!.code, 'RECEIVER_CLOSED');
    assert.throws(() => ctx.receiver.tryReceive(spanSite(1, 's')), { code: 'RECEIVER_CLOSED' });
  });
});
