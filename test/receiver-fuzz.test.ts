import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { CallsiteRegistry } from '../host/receiver/callsite-registry.js';
import { TracingEventReceiver } from '../host/receiver/receiver.js';
import { EventEncoder, FrameDecoder } from '../shared/event-codec.js';
import type { TracingEvent } from '../shared/records.js';
import { clone, drop, enter, eventSite, exit, follows, newEvent, newSpan, prng, record, spanSite } from './helpers/events.js';

const SEED = Number(process.env.SANDTRACE_FUZZ_SEED ?? 0xf022);

/** Valid frames the mutator starts from: every record type, every value type. */
function templates(): Uint8Array[] {
  const enc = new EventEncoder();
  const frames: TracingEvent[][] = [
    [{ type: 'hello', version: 1, guestKind: 'fuzz', sdkVersion: '1', clockOrigin: 1n << 60n }, spanSite(1, 'a', ['x', 'y']), eventSite(2, 'e', ['message', 'n'])],
    [newSpan(1, 1, [['x', 1], ['y', 'two']], undefined, 5n), enter(1, 6n), newEvent(2, [['message', 'hi'], ['n', -3.5]], undefined, 7n), exit(1, 8n)],
    [newSpan(2, 1, [['x', { error: { message: 'e', source: { message: 'f' } } }], ['y', { debug: 'D' }]], 1), follows(2, 1), clone(2), drop(2), record(1, [['y', new Uint8Array([1, 2, 3])]])],
    [{ type: 'metric', name: 'm', instrument: 'histogram', value: 2.5, attributes: [['k', 'v']], time: 9n }, { type: 'dropped', count: 4 }, drop(1, 10n)],
    [newSpan(3, 1, [['x', 2n ** 64n - 1n], ['y', NaN]], null, 11n), drop(3, 12n)],
  ];
  return frames.map((f) => enc.encode(f));
}

function mutate(rand: () => number, base: Uint8Array, others: Uint8Array[]): Uint8Array {
  const bytes = Array.from(base);
  const ops = 1 + Math.floor(rand() * 4);
  for (let k = 0; k < ops; k++) {
    const at = Math.floor(rand() * (bytes.length + 1));
    switch (Math.floor(rand() * 7)) {
      case 0: // flip a bit
        if (bytes.length) bytes[at % bytes.length]! ^= 1 << Math.floor(rand() * 8);
        break;
      case 1: // random byte
        if (bytes.length) bytes[at % bytes.length] = Math.floor(rand() * 256);
        break;
      case 2: // insert
        bytes.splice(at, 0, Math.floor(rand() * 256));
        break;
      case 3: // delete a run
        bytes.splice(at, 1 + Math.floor(rand() * 4));
        break;
      case 4: // truncate
        bytes.length = at;
        break;
      case 5: // interesting boundary values
        bytes.splice(at, 0, [0xc1, 0xdd, 0xdf, 0xdb, 0xc9, 0xcf, 0xd3, 0xff, 0x7f, 0x9f][Math.floor(rand() * 10)]!, 0xff, 0xff, 0xff, 0xff);
        break;
      default: // splice in part of another frame
        {
          const o = others[Math.floor(rand() * others.length)]!;
          const from = Math.floor(rand() * o.length);
          bytes.splice(at, 0, ...o.subarray(from, from + 1 + Math.floor(rand() * 16)));
        }
        break;
    }
  }
  return new Uint8Array(bytes);
}

test(`100,000 random and mutated frames: no throw escapes and a valid stream still yields the right tree (seed ${SEED})`, () => {
  const rand = prng(SEED);
  const bases = templates();
  const collector = new CaptureCollector();
  const registry = new CallsiteRegistry();
  const receiver = new TracingEventReceiver({ collector, registry, clockOrigin: 0n });
  const decoder = new FrameDecoder();
  let applied = 0;
  let rejected = 0;
  let truncated = 0;
  for (let i = 0; i < 100_000; i++) {
    let frame: Uint8Array;
    if (i % 10 === 0) {
      frame = new Uint8Array(Math.floor(rand() * 64));
      for (let j = 0; j < frame.length; j++) frame[j] = Math.floor(rand() * 256);
    } else frame = mutate(rand, bases[Math.floor(rand() * bases.length)]!, bases);
    const r = receiver.receiveBatch(frame); // must not throw
    applied += r.applied;
    rejected += r.rejected;
    truncated += r.truncated;
    decoder.decode(frame); // the event decoder must not throw either
  }
  assert.equal(receiver.state, 'open');
  assert.ok(applied > 10_000 && rejected > 10_000 && truncated > 1_000, `exercised every path: ${applied} applied, ${rejected} rejected, ${truncated} truncated`);
  assert.equal(receiver.stats.rejected, rejected);

  // A valid stream afterwards, with ids the fuzz never produced, yields exactly the expected tree.
  const base = 50_000_000;
  const valid: TracingEvent[] = [
    spanSite(base, 'request', ['route'], 'info', 'valid.stream'),
    eventSite(base + 1, 'log', ['message'], 'info', 'valid.stream'),
    newSpan(base, base, [['route', '/ok']], null),
    enter(base),
    newSpan(base + 1, base, [['route', '/child']], base),
    newEvent(base + 1, [['message', 'inside']], base + 1),
    drop(base + 1),
    exit(base),
    drop(base),
  ];
  const r = receiver.receiveBatch(new EventEncoder().encode(valid));
  assert.equal(r.rejected, 0, JSON.stringify(r.errors.map((e) => e.message)));
  const ours = collector.normalize().spans.filter((s) => s.target === 'valid.stream');
  assert.equal(ours.length, 1);
  assert.deepEqual(
    { name: ours[0]!.name, fields: ours[0]!.fields, closed: ours[0]!.closed, child: ours[0]!.children.map((c) => [c.fields.route, c.events[0]?.fields.message, c.closed]) },
    { name: 'request', fields: { route: '/ok' }, closed: true, child: [['/child', 'inside', true]] },
  );
});
