/**
 * The QuickJS SDK's slot records (typed-array records the worker turns into protocol records)
 * through real guests: order against the byte records around them, the buffers' bounds, what a
 * dying guest left in them, and guests writing garbage into them through the SDK's own methods.
 * (That they decode to exactly the byte path's records is in quickjs-sdk-realm.test.ts, with a
 * fake clock.)
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { NullCollector } from '../host/collectors/null-collector.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { QuickJSEngine } from '../host/sandbox/worker/quickjs-engine.js';
import { SLOT_WIDTH, SlotConverter, skipValue } from '../host/sandbox/worker/quickjs-slots.js';
import { FrameDecoder } from '../shared/event-codec.js';
import type { TracingEvent } from '../shared/records.js';

const SETTINGS = { minLevel: 0, flushBytes: 4096, executionId: 'slots', carried: [], firstSpanId: 1 };

let engine: QuickJSEngine | undefined;
after(() => {
  engine = undefined;
});

/** Runs `source` in a guest context of one engine; returns every frame it handed over (flushes, then the drain). */
async function frames(source: string, flushBytes = 4096): Promise<{ frames: Uint8Array[]; value: unknown }> {
  engine ??= await QuickJSEngine.create(64 << 20);
  engine.prepareSpare();
  const out: Uint8Array[] = [];
  const vm = engine.newGuestContext({ ...SETTINGS, flushBytes }, (f) => out.push(f.slice()));
  try {
    const value = vm.dump(vm.unwrapResult(vm.evalCode(source)));
    const last = engine.drain().frame;
    if (last !== undefined) out.push(last.slice()); // the engine's buffer: valid until its next conversion
    return { frames: out, value };
  } finally {
    vm.dispose();
  }
}

function decode(frames: readonly Uint8Array[]): TracingEvent[] {
  const decoder = new FrameDecoder();
  return frames.flatMap((f) => {
    const r = decoder.decode(f);
    assert.deepEqual([r.errors, r.truncated], [[], false]);
    return r.events;
  });
}

describe('slot records', () => {
  test('slot and byte records keep their order when they alternate: string values, wide events and announcements mid-stream, times never go back', async () => {
    const { frames: fs } = await frames(`
      const tick = tracing.callsite('tick', ['i', 'v']);
      const wide = tracing.callsite('wide', ['a', 'b', 'c', 'd', 'e', 'f']);
      for (let i = 0; i < 600; i++) {
        tick.emit(i, i % 3 === 0 ? 'str' + i : i % 3 === 1 ? true : 0.25);
        if (i % 7 === 0) wide.emit(i, 2, 3, 4, 5, 6);
        if (i % 50 === 0) tracing.callsite('new' + i, ['i']).emit(i);
      }`, 1024);
    assert.ok(fs.length > 3, `${fs.length} frames`);
    const events = decode(fs).filter((e): e is Extract<TracingEvent, { type: 'newEvent' }> => e.type === 'newEvent');
    const seq = events.map((e) => (e.values[0]![1] as number) * 10 + (e.values.length === 6 ? 1 : e.values.length === 1 ? 2 : 0));
    const expected: number[] = [];
    for (let i = 0; i < 600; i++) {
      expected.push(i * 10);
      if (i % 7 === 0) expected.push(i * 10 + 1);
      if (i % 50 === 0) expected.push(i * 10 + 2);
    }
    assert.deepEqual(seq, expected);
    assert.deepEqual(events.filter((e) => e.values.length === 2).map((e) => e.values[1]![1]).slice(0, 3), ['str0', true, 0.25]);
    const times = events.map((e) => e.time as bigint);
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! >= times[i - 1]!, `time ${i} goes back: ${times[i]} < ${times[i - 1]}`);
  });

  test('the buffers are bounded: every frame stays within two flushBytes, slot records and value bytes alike', async () => {
    const flushBytes = 4096;
    const { frames: fs } = await frames(
      `const tick = tracing.callsite('tick', ['i', 'ok']);
       const site = tracing.spanSite('s', ['text']);
       for (let i = 0; i < 20000; i++) tick.emit(i, true);
       for (let i = 0; i < 300; i++) site.open('distinct text of some length ' + 'x'.repeat(i % 200) + i).close();`,
      flushBytes,
    );
    for (const f of fs) assert.ok(f.length <= 2 * flushBytes, `a frame of ${f.length} bytes`);
    const records = decode(fs);
    assert.equal(records.filter((e) => e.type === 'newEvent').length, 20000);
    assert.equal(records.filter((e) => e.type === 'spanDropped').length, 300);
  });

  test('a guest emitting half a million slot records in 8 MiB of memory ends normally and delivers them all', async () => {
    const r = await runQuickJS(`const t = tracing.callsite('t', ['i']); for (let i = 0; i < 500000; i++) t.emit(i); 'done'`, {
      collector: new NullCollector(),
      memoryLimitBytes: 8 << 20,
      deadlineMs: 60_000,
    });
    assert.equal(r.ok, true, r.summary.cause);
    assert.ok(r.summary.records >= 500000, `${r.summary.records} records`);
    assert.equal(r.summary.rejected, 0);
  });

  for (const [kind, crash, options] of [
    ['deadline', 'for (;;) {}', { deadlineMs: 300 }],
    ['out_of_memory', 'const keep = []; for (;;) keep.push(new Float64Array(1 << 16));', { memoryLimitBytes: 8 << 20 }],
  ] as const) {
    test(`${kind}: slot records not yet handed over are salvaged, in order, and the open span is closed with the cause`, async () => {
      const collector = new CaptureCollector();
      const r = await runQuickJS(
        `const step = tracing.callsite('step', ['i', 'ok']);
         const work = tracing.spanSite('work', ['n']).open(1);
         for (let i = 0; i < 50; i++) step.emit(i, i % 2 === 0);
         tracing.info('last words', { n: 'string' });
         ${crash}`,
        { collector, flushBytes: 1 << 20, ...options },
      );
      assert.equal(r.summary.termination?.kind, kind);
      assert.equal(r.summary.frames, 1, 'nothing was handed over before the crash: the drain took it');
      const work = collector.find('work')!;
      assert.deepEqual(
        work.events.map((e) => e.values.map(([, v]) => v)),
        [...Array.from({ length: 50 }, (_, i) => [i, i % 2 === 0]), ['last words', 'string']],
      );
      assert.equal(work.closed, true);
      assert.equal(work.forced?.cause, kind);
    });
  }

  test("drains of every size, in any order, deliver exactly their own run's records: the SDK's reused pack buffers never leak an earlier drain's", async () => {
    // Sizes that take each way through packBuffers: the prefix views (at most 128 slot doubles,
    // 1 KiB of bytes, 512 value bytes), the 2, 4 and 8 KiB buffers, an allocated pack; bytes or
    // value bytes past their prefix with few slot records; short runs right after long ones.
    const runs: Array<[events: number, wide: number, longValues: boolean]> = [
      [400, 0, false], [2, 0, false], [150, 0, false], [1, 0, false], [30, 0, false], [70, 0, false],
      [3, 40, false], [2, 0, false], [5, 0, true], [0, 0, false], [20, 0, false], [1, 0, false],
    ];
    engine ??= await QuickJSEngine.create(64 << 20);
    const before = engine.slotRecordsConverted();
    let expectedSlots = 0;
    for (const [r, [n, wide, longValues]] of runs.entries()) {
      const { frames: fs } = await frames(
        `const tick = tracing.callsite('tick', ['i', 'run']);
         const wide = tracing.callsite('wide', ['a', 'b', 'c', 'd', 'e', 'f', 'g']);
         for (let i = 0; i < ${n}; i++) tick.emit(i, ${longValues ? `'run ${r} ' + 'v'.repeat(200) + i` : `'run ${r}'`});
         for (let i = 0; i < ${wide}; i++) wide.emit(i, 'w', 'x', 'y', 'z', 'and more text', ${r});`,
        65536,
      );
      assert.ok(fs.length === 1 || (fs.length === 0 && n + wide === 0), `run ${r}: the drain alone hands over (${fs.length} frames)`);
      const events = decode(fs).filter((e): e is Extract<TracingEvent, { type: 'newEvent' }> => e.type === 'newEvent');
      const got = events.map((e) => e.values.map(([, v]) => v));
      const expected = [
        ...Array.from({ length: n }, (_, i) => [i, longValues ? `run ${r} ${'v'.repeat(200)}${i}` : `run ${r}`]),
        ...Array.from({ length: wide }, (_, i) => [i, 'w', 'x', 'y', 'z', 'and more text', r]),
      ];
      assert.deepEqual(got, expected, `run ${r} (${n} events, ${wide} wide)`);
      assert.equal(engine.takeInvalidSlots(), 0, `run ${r}: nothing left out`);
      expectedSlots += n;
    }
    assert.equal(engine.slotRecordsConverted() - before, expectedSlots, 'every event of two values went as a slot record');
  });

  test('a guest writing garbage into slot records through the SDK methods cannot break the host: bad records are left out and counted, the rest arrive', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(
      `tracing.info('before');
       const tick = tracing.callsite('tick', ['a', 'b']);
       tick.emit(1, 2);
       const EventSite = tick.constructor;
       const site = tracing.spanSite('s', ['x']);
       site.open(1).close();
       const heads = [NaN, -1, 0.5, 2 ** 60, Infinity, -Infinity, 4, 4 + 8, 1 + 8 * 7, 1 + 16 + 64 * 5, 1 + 16 + 64 * 4, 3 + 262144, 2 + 8 * 3 + 64 * 7 * 9,
         1 + 8 * 2 + 64 * (4 + 4 * 8), 2 + 8 * 2 + 64 * 4, 0, 8, 2 ** 53, 1 + 2 ** 52];
       const args = [0, 1e9, -5, 2 ** 31, NaN, 0.5, -0, 2 ** 70];
       for (const h of heads) for (const a of args) {
         tick.slotHead = h; tick.emit(a, a); tick.emit(true, a);
         site.slotHead = h; try { site.open(a, a).close(); } catch (e) {}
       }
       // Objects of the guest's making, with every run number the SDK may be at.
       // (At other run numbers the SDK takes its cold path, which finds no callsite parts and throws.)
       let threw = 0;
       for (let run = 0; run < 256; run++) {
         try { EventSite.prototype.emit.call({ hot: run, slotHead: 1 + 16 + 64 * 4 + 512 * 4 }, 123456, 7); } catch (e) { threw++; }
         try { EventSite.prototype.emit.call({ hot: run, slotHead: 4 }, 1e12, 7); } catch (e) { threw++; }
         try { site.constructor.prototype.open.call({ hot: run, slotHead: 2 + 8 + 64 * 4 }, 99999, 1); } catch (e) { threw++; }
       }
       if (threw !== 255 * 3) throw new Error('the run number was not hit once: ' + threw);
       const span = tracing.spanSite('t', []).open();
       Object.getPrototypeOf(span).close.call({ s: 2 ** 60 });
       Object.getPrototypeOf(span).close.call({ s: 0.5 });
       span.close();
       tracing.info('after', { n: 'string value' });
       'done'`,
      { collector, flushBytes: 2048 },
    );
    assert.equal(r.ok, true, r.summary.cause);
    assert.equal(r.value, 'done');
    assert.ok(r.summary.invalidFrames > 0, `left out: ${r.summary.invalidFrames}`);
    const messages = collector.events.map((e) => e.values[0]![1]);
    assert.equal(messages[0], 'before');
    assert.equal(messages.at(-1), 'after');
    assert.deepEqual(collector.events.at(-1)!.values, [
      ['message', 'after'],
      ['n', 'string value'],
    ]);
    assert.equal(collector.find('t')?.closed, true);
  });
});

describe('the slot converter on its own', () => {
  test('nonsense buffers (any doubles, markers out of order or outside the bytes, references outside the values) never throw', () => {
    const converter = new SlotConverter();
    const bytes = new Uint8Array([0x93, 7, 1, 0, 0x91, 9]);
    const vals = new Uint8Array([0xa3, 0x61, 0x62, 0x63, 0xdb, 0xff, 0xff, 0xff, 0xff, 0xc1, 0x9f, 0x81]);
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const specials = [NaN, Infinity, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0.5, 2 ** 53, 262144 + 1 + 8 + 64 * 4, 1 + 8 * 4 + 64 * 0o4444, 2 + 8 * 3 + 64 * 0o444, 12, 4.5];
    for (let round = 0; round < 2000; round++) {
      const slots = new Float64Array(SLOT_WIDTH * (1 + Math.floor(rand() * 8)));
      for (let i = 0; i < slots.length; i++) slots[i] = rand() < 0.6 ? specials[Math.floor(rand() * specials.length)]! : (rand() - 0.5) * 2 ** (rand() * 70);
      const frame = converter.convert({ bytes, slots, vals });
      assert.ok(frame.length <= bytes.length + vals.length * 8 + slots.length * 48);
    }
    assert.ok(converter.takeInvalid() > 0);
  });

  test("a drain's packed buffer whose header does not fit it gives no frame and is counted", () => {
    const converter = new SlotConverter();
    const packed = (head: number[], rest: number) => {
      const b = new Uint8Array(24 + rest);
      const d = new DataView(b.buffer);
      head.forEach((v, i) => d.setFloat64(i * 8, v, true));
      return b;
    };
    for (const head of [[1e9, 0, 0], [0, 1e9, 0], [-1, 0, 0], [0.5, 0, 0], [NaN, 0, 0], [0, 0, 100]]) assert.equal(converter.convertPacked(packed(head, 8)).length, 0, JSON.stringify(head));
    assert.equal(converter.convertPacked(new Uint8Array(10)).length, 0);
    assert.equal(converter.takeInvalid(), 7);
    // A well-formed one: two bytes of records, no slots.
    const ok = packed([2, 0, 0], 2);
    ok.set([0x91, 0x0b], 24);
    assert.deepEqual([...converter.convertPacked(ok)], [0x91, 0x0b]);
  });

  test('skipValue finds the end of each msgpack value, and -1 for one cut short or nested too deep', () => {
    const cases: Array<[number[], number]> = [
      [[0x05], 1],
      [[0xa3, 1, 2, 3], 4],
      [[0xd9, 2, 1, 2], 4],
      [[0xc4, 1, 9], 3],
      [[0x92, 0x01, 0xa1, 0x61], 4],
      [[0x81, 0x01, 0x02], 3],
      [[0xcb, 0, 0, 0, 0, 0, 0, 0, 0], 9],
      [[0xd7, 1, 0, 0, 0, 0, 0, 0, 0, 0], 10],
      [[0xc7, 2, 5, 1, 2], 5],
      [[0xa3, 1, 2], -1],
      [[0xdc, 0, 2, 1], -1],
      [[0xc1], -1],
      [Array(100).fill(0x91), -1],
    ];
    for (const [bytes, end] of cases) assert.equal(skipValue(new Uint8Array(bytes), 0, 0), end, JSON.stringify(bytes));
  });
});
