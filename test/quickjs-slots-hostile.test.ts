/**
 * Hostile QuickJS guests against the slot records (guest/quickjs/sdk.ts, "slot records", and
 * host/sandbox/worker/quickjs-slots.ts): guest code that runs while a record is being written
 * (getters, toJSON, Proxy traps, toString, Symbol.toPrimitive), that forges slot records through
 * the SDK's own methods, or that dies with records still buffered. Each test states what the host
 * receives anyway.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { QuickJSEngine } from '../host/sandbox/worker/quickjs-engine.js';
import { FrameDecoder } from '../shared/event-codec.js';

type Captured = CaptureCollector['events'][number];
const values = (e: Captured) => e.values.map(([, v]) => v);

describe('slot records against hostile guests', () => {
  test('a guest array whose getter emits records while emitValues reads it: the outer event keeps its own values', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(
      `const outer = tracing.callsite('outer', ['a', 'b', 'c']);
       const inner = tracing.callsite('inner', ['x', 'y', 'z']);
       const vals = [1, 2, 3];
       Object.defineProperty(vals, 1, { get() { inner.emitValues(['p', 'q', 'r']); inner.emit(7, 8, 9); return 'two'; } });
       outer.emitValues(vals);
       const s = tracing.spanSite('outerSpan', ['a', 'b']);
       const sv = [10, 11];
       Object.defineProperty(sv, 1, { get() { inner.emitValues(['s', 't', 'u']); return 12; } });
       s.openValues(sv).close();
       // A fields getter that calls tracing with fields of its own: refused, the nested event whole.
       let refused = '';
       try { tracing.info('outer fields', { get a() { tracing.info('nested fields', { x: 1, y: 2 }); return 1; }, b: 2 }); } catch (e) { refused = e.name; }
       try { tracing.info({ toString() { tracing.info('from message', { m: 1 }); return 'converted message'; } }, { c: 3 }); } catch (e) { refused += ' ' + e.name; }
       refused`,
      { collector },
    );
    assert.equal(r.ok, true, r.summary.cause);
    assert.equal(r.value, 'TypeError', 'the fields getter that called tracing is refused; the message conversion is not');
    assert.equal(r.summary.invalidFrames, 0);
    assert.deepEqual(
      collector.events.map((e) => [e.meta.name === 'outer' || e.meta.name === 'inner' ? e.meta.name : e.meta.fields.join(','), values(e)]),
      [
        ['inner', ['p', 'q', 'r']],
        ['inner', [7, 8, 9]],
        ['outer', [1, 'two', 3]],
        ['inner', ['s', 't', 'u']],
        ['message,x,y', ['nested fields', 1, 2]],
        ['message,m', ['from message', 1]],
        ['message,c', ['converted message', 3]],
      ],
    );
    const span = [...collector.spans.values()].find((sp) => sp.meta.name === 'outerSpan')!;
    assert.deepEqual(span.values.map(([, v]) => v), [10, 12]);
  });

  test('a value whose toJSON opens and closes spans while a span site opens: every span gets an id of its own', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(
      `const inner = tracing.spanSite('inner', ['n']);
       const outer = tracing.spanSite('outer', ['v', 'w']);
       const sneaky = { toJSON() { inner.open(1).close(); const k = inner.open(2); k.close(); return 'sneaky'; } };
       const o = outer.open(sneaky, 5);
       tracing.callsite('in outer', ['i']).emit(1);
       o.close();
       const o2 = outer.open('plain', { toJSON() { inner.inSpan(() => {}, 3); return 'x'; } });
       o2.close();
       // A span opened by the conversion and left open while the outer one opens: two ids.
       let kept;
       const o3 = outer.open('kept', { toJSON() { kept = inner.open(4); return 'y'; } });
       tracing.callsite('in o3', ['i']).emit(2);
       o3.close();
       tracing.callsite('in kept', ['i']).emit(3);
       kept.close();
       'done'`,
      { collector },
    );
    assert.equal(r.ok, true, r.summary.cause);
    assert.equal(r.summary.invalidFrames, 0);
    const spans = [...collector.spans.values()].filter((s) => s.meta.target === 'guest' || s.meta.name === 'inner' || s.meta.name === 'outer');
    assert.deepEqual(
      spans.map((s) => [s.meta.name, s.values.map(([, v]) => v), s.closed]),
      [
        ['inner', [1], true],
        ['inner', [2], true],
        ['outer', [{ debug: '"sneaky"' }, 5], true],
        ['inner', [3], true],
        ['outer', ['plain', { debug: '"x"' }], true],
        ['inner', [4], true],
        ['outer', ['kept', { debug: '"y"' }], true],
      ],
    );
    const outer = spans.find((s) => s.meta.name === 'outer')!;
    assert.deepEqual(outer.events.map(values), [[1]]);
    const [kept, o3] = spans.slice(-2);
    assert.deepEqual(o3!.events.map(values), [[2]]);
    assert.deepEqual(kept!.events.map(values), [[3]]);
    assert.equal(o3!.parent, kept!.id, 'the kept span was entered when the outer one opened');
    assert.equal(outer.children.length, 0, 'the inner spans closed before the outer one opened');
  });

  test('records written from inside a value conversion on the byte path (a six-value event, a fields object) land whole, before the record that converts', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(
      `const wide = tracing.callsite('wide', ['a', 'b', 'c', 'd', 'e', 'f']);
       const tick = tracing.callsite('tick', ['i']);
       tick.emit(0); // announced: a callsite's first use is a byte record, refused mid-record too
       const refused = [];
       const v = { toJSON() { tick.emit(1); try { tracing.info('nested info', { k: 2 }); } catch (e) { refused.push(e.name); } return 'v'; } };
       wide.emit(1, 2, 3, 4, v, 6);
       tracing.info('outer info', { a: 1, b: 2, c: 3, d: 4, e: v });
       tick.emit(3);
       refused`,
      { collector },
    );
    assert.equal(r.ok, true, r.summary.cause);
    assert.equal(r.summary.invalidFrames, 0);
    assert.equal(r.summary.truncated, 0);
    assert.equal(r.summary.rejected, 0);
    assert.deepEqual(r.value, ['TypeError', 'TypeError'], 'a byte record cannot start inside another');
    // The slot record written mid-conversion comes after the byte record that was converting.
    assert.deepEqual(
      collector.events.map((e) => [e.meta.name === 'tick' || e.meta.name === 'wide' ? e.meta.name : e.values[0]![1], values(e)]),
      [
        ['tick', [0]],
        ['wide', [1, 2, 3, 4, { debug: '"v"' }, 6]],
        ['tick', [1]],
        ['outer info', ['outer info', 1, 2, 3, 4, { debug: '"v"' }]],
        ['tick', [1]],
        ['tick', [3]],
      ],
    );
  });

  test('a conversion that fills the buffers and flushes mid-record: strings cached before the flush are written again, never read from the flushed buffer', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(
      `const tick = tracing.callsite('tick', ['s', 'o']);
       const filler = tracing.callsite('filler', ['s']);
       const flood = { toJSON() { for (let i = 0; i < 3000; i++) filler.emit('other' + (i % 5)); return 'flooded'; } };
       tick.emit('same-string', 'warm');
       tick.emit('same-string', flood);
       tick.emit('same-string', 'after');
       tick.emitValues(['same-string', { toJSON() { for (let i = 0; i < 3000; i++) filler.emit('same-string'); return 'f2'; } }]);
       'done'`,
      { collector, flushBytes: 2048 },
    );
    assert.equal(r.ok, true, r.summary.cause);
    assert.equal(r.summary.invalidFrames, 0);
    assert.ok(r.summary.frames > 2, `${r.summary.frames} frames`);
    assert.deepEqual(
      collector.events.filter((e) => e.meta.name === 'tick').map(values),
      [
        ['same-string', 'warm'],
        ['same-string', { debug: '"flooded"' }],
        ['same-string', 'after'],
        ['same-string', { debug: '"f2"' }],
      ],
    );
    const fillers = collector.events.filter((e) => e.meta.name === 'filler');
    assert.equal(fillers.length, 6000);
    assert.deepEqual(values(fillers[3001]!), ['same-string']);
  });

  test('a value that throws after nested records were written: the outer record is left out, the nested ones and everything after arrive', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(
      `const tick = tracing.callsite('tick', ['a', 'b']);
       const site = tracing.spanSite('s', ['a', 'b']);
       const caught = [];
       const bad = { toJSON() { tick.emit('nested', 1); throw new Error('late'); }, toString() { tick.emit('nested-str', 2); throw new Error('later'); } };
       try { tick.emit('partial', bad); } catch (e) { caught.push(e.message); }
       try { site.open('partial', bad); } catch (e) { caught.push(e.message); }
       const proxy = new Proxy({}, { ownKeys() { tick.emit('trap', 3); throw new Error('trap'); }, get(t, k) { if (k === 'toJSON' || k === 'toString') return undefined; return undefined; } });
       try { tick.emit('proxied', proxy); } catch (e) { caught.push(e.message); }
       const prim = { [Symbol.toPrimitive]() { tick.emit('prim', 4); throw new Error('prim'); } };
       try { tick.emit(prim, 1); } catch (e) { caught.push(e.message); }
       tick.emit('after', 5);
       caught`,
      { collector },
    );
    assert.equal(r.ok, true, r.summary.cause);
    assert.equal(r.summary.invalidFrames, 0);
    const seen = collector.events.filter((e) => e.meta.name === 'tick').map(values);
    assert.deepEqual(seen.at(-1), ['after', 5]);
    assert.ok(!seen.some(([a]) => a === 'partial' || a === 'proxied'), JSON.stringify(seen));
    assert.ok(seen.some(([a]) => a === 'nested'), JSON.stringify(seen));
    assert.equal([...collector.spans.values()].filter((s) => s.meta.name === 's').length, 0);
  });

  test('errors with cause cycles, Symbol.toPrimitive and a value read twice are converted once each and bounded', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(
      `const tick = tracing.callsite('tick', ['e', 'p']);
       const e = new Error('loop'); e.cause = e;
       const a = new Error('a'); const b = new Error('b', { cause: a }); a.cause = b;
       let reads = 0;
       const counted = { toJSON() { reads++; return 'read ' + reads; } };
       tick.emit(e, counted);
       tick.emit(b, { [Symbol.toPrimitive]() { return 'prim'; } });
       reads`,
      { collector },
    );
    assert.equal(r.ok, true, r.summary.cause);
    assert.equal(r.value, 1, 'the value was converted once');
    assert.equal(r.summary.invalidFrames, 0);
    const ticks = collector.events.filter((ev) => ev.meta.name === 'tick');
    assert.equal(ticks.length, 2);
    assert.deepEqual(values(ticks[0]!)[1], { debug: '"read 1"' });
    assert.deepEqual(values(ticks[1]!)[1], { debug: '{}' });
  });

  test('forged value references into a large array-shaped byte value cost the worker no more than their bytes: left out and counted, quickly', async () => {
    const collector = new CaptureCollector();
    const started = performance.now();
    const r = await runQuickJS(
      `const tick = tracing.callsite('tick', ['a', 'b']);
       tick.emit(1, 2); // announced: hot
       // A byte value whose content is a msgpack array32 of 200,000 fixints, then records that point into it.
       const n = 200000;
       const bytes = new Uint8Array(5 + n);
       bytes[0] = 0xdd; bytes[1] = 0; bytes[2] = 3; bytes[3] = 0x0d; bytes[4] = 0x40; // 200,000
       const carrier = tracing.callsite('carrier', ['b']);
       carrier.emit(bytes);
       // A bin32 header is 5 bytes, so the array starts 5 bytes after the value's offset (0 in a fresh frame).
       const head = tick.slotHead;
       tick.slotHead = head + 4 * 64; // first value: a reference into the value bytes
       for (let i = 0; i < 4000; i++) { tick.emit(5, 0); }
       tick.slotHead = head;
       tick.emit(9, 9);
       'done'`,
      { collector, flushBytes: 1 << 20, memoryLimitBytes: 32 << 20, deadlineMs: 20000 },
    );
    const ms = performance.now() - started;
    assert.equal(r.ok, true, r.summary.cause);
    assert.ok(r.summary.invalidFrames >= 4000, `left out: ${r.summary.invalidFrames}`);
    assert.deepEqual(values(collector.events.at(-1)!), [9, 9]);
    // 4000 scans of 200,000 elements would be 8e8 steps (seconds); refused on sight, it is milliseconds.
    assert.ok(ms < 5000, `${ms.toFixed(0)} ms`);
  });

  test('slot records written past the buffer while a hand-over is held back are counted, and never replaced by an earlier run\'s records', async () => {
    const engine = await QuickJSEngine.create(64 << 20);
    const settings = { minLevel: 0, executionId: 'overflow', carried: [], firstSpanId: 1 };
    const runOnce = (source: string, flushBytes: number) => {
      engine.prepareSpare();
      const frames: Uint8Array[] = [];
      const vm = engine.newGuestContext({ ...settings, flushBytes }, (f) => frames.push(f.slice()));
      try {
        vm.unwrapResult(vm.evalCode(source)).dispose();
        const last = engine.drain().frame;
        if (last !== undefined) frames.push(last.slice());
      } finally {
        vm.dispose();
      }
      const decoder = new FrameDecoder();
      const events = frames.flatMap((f) => decoder.decode(f).events);
      return { events, invalid: engine.takeInvalidSlots() };
    };
    // An earlier run whose drain packs 100 events (what a reused pack buffer would still hold).
    runOnce(`const old = tracing.callsite('old', ['i']); for (let i = 0; i < 100; i++) old.emit(i);`, 65536);
    // 150 slot records from inside a byte record's conversion, with room for about ten: the
    // record then fails and the run ends, so the drain finds them past the buffer.
    const { events, invalid } = runOnce(
      `const tick = tracing.callsite('tick', ['i']);
       const wide = tracing.callsite('wide', ['a', 'b', 'c', 'd', 'e', 'f']);
       tick.emit(-1);
       const v = { toJSON() { for (let i = 0; i < 150; i++) tick.emit(i); throw new Error('no'); }, toString() { throw new Error('neither'); } };
       try { wide.emit(1, 2, 3, 4, v, 6); } catch (e) {}`,
      64,
    );
    const names = events.filter((e) => e.type === 'newCallSite').map((e) => (e as { name: string }).name);
    assert.ok(!names.includes('old'), 'nothing of the earlier run');
    const ticks = events.filter((e) => e.type === 'newEvent');
    assert.ok(ticks.length >= 5 && ticks.length < 20, `${ticks.length} events kept`);
    assert.ok(invalid >= 130, `counted: ${invalid}`);
    assert.equal(ticks.length + invalid >= 151, true, `${ticks.length} + ${invalid}`);
  });

  test('forged byte-run markers (a head of 4 written through emit) are left out and counted: the byte records they would split arrive whole', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(
      `const tick = tracing.callsite('tick', ['a', 'b']);
       tick.emit(1, 2);
       const head = tick.slotHead;
       for (let i = 0; i < 3000; i++) {
         tracing.info('byte record', { i, s: 'x', t: 'y', u: 'z' }); // four fields: a byte record, a run to split
         tick.slotHead = 4;
         tick.emit(3, 0); // a marker "the bytes from 3 come here", with the clock reading as its time base
         tick.slotHead = head;
       }
       tick.emit(9, 9);
       'done'`,
      { collector, flushBytes: 4096 },
    );
    assert.equal(r.ok, true, r.summary.cause);
    // A marker's time base is a whole number of nanoseconds; a clock reading in milliseconds
    // (fractional) never passes for one, so no forged marker is taken.
    assert.equal(r.summary.invalidFrames, 3000);
    assert.equal(r.summary.truncated, 0);
    assert.equal(collector.events.filter((e) => e.values[0]?.[1] === 'byte record').length, 3000);
    assert.deepEqual(values(collector.events.at(-1)!), [9, 9]);
  });

  test('a guest stopped by its deadline mid-flood, with a value conversion running, still delivers its slot records in order', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(
      `const tick = tracing.callsite('tick', ['i', 's']);
       for (let i = 0; i < 1000; i++) tick.emit(i, 'x' + (i % 3));
       tick.emit(1000, { toJSON() { for (;;) {} } });`,
      { collector, flushBytes: 1 << 20, deadlineMs: 300 },
    );
    assert.equal(r.summary.termination?.kind, 'deadline');
    const ticks = collector.events.filter((e) => e.meta.name === 'tick').map((e) => values(e)[0]);
    assert.deepEqual(ticks, Array.from({ length: 1000 }, (_, i) => i));
    assert.equal(r.summary.invalidFrames, 0);
  });

  test('a conversion that calls tracing with fields while a byte-path record reads its own (an event or span of four fields, a metric): the outer record is refused, never written with the nested call\'s values', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(
      `tracing.info('nested', { x: 0, y: 0, z: 0 }); // announced: the nested call below takes the slot path
       const v = { toJSON() { tracing.info('nested', { x: 'N1', y: 'N2', z: 'N3' }); return 'v'; } };
       const refused = [];
       try { tracing.info('outer event', { a: v, b: 2, c: 3, d: 4 }); } catch (e) { refused.push(e.name); }
       try { tracing.span('outer span', { a: v, b: 2, c: 3, d: 4 }).close(); } catch (e) { refused.push(e.name); }
       try { tracing.counter('outer metric', 1, { a: v, b: 2, c: 3 }); } catch (e) { refused.push(e.name); }
       // The nested call after the last value is read: nothing of the outer record is lost.
       tracing.info('outer last', { b: 2, c: 3, d: 4, a: v });
       refused`,
      { collector },
    );
    assert.equal(r.ok, true, r.summary.cause);
    assert.deepEqual(r.value, ['TypeError', 'TypeError', 'TypeError']);
    assert.equal(r.summary.invalidFrames, 0);
    assert.equal(r.summary.rejected, 0);
    const fields = (e: Captured) => Object.fromEntries(e.values);
    assert.deepEqual(
      collector.events.map(fields),
      [
        { message: 'nested', x: 0, y: 0, z: 0 },
        { message: 'nested', x: 'N1', y: 'N2', z: 'N3' },
        { message: 'nested', x: 'N1', y: 'N2', z: 'N3' },
        { message: 'nested', x: 'N1', y: 'N2', z: 'N3' },
        { message: 'outer last', b: 2, c: 3, d: 4, a: { debug: '"v"' } },
        { message: 'nested', x: 'N1', y: 'N2', z: 'N3' },
      ],
    );
    assert.deepEqual([...collector.spans.values()].filter((s) => s.meta.name === 'outer span'), []);
    assert.deepEqual(collector.metrics.filter((m) => m.name === 'outer metric'), []);
  });

  test('a conversion that opens a span while a span of four fields is written (the byte path: tracing.span, spanSite.openValues): each span gets an id of its own, none is rejected', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(
      `const inner = tracing.spanSite('inner', ['n']);
       inner.open(0).close(); // announced: the opens below take the slot path
       let kept;
       const v = { toJSON() { inner.open(1).close(); kept = inner.open(2); return 'v'; } };
       const outer = tracing.span('outer', { a: v, b: 1, c: 2, d: 3 });
       kept.close();
       outer.close();
       const wide = tracing.spanSite('wide', ['a', 'b', 'c', 'd']);
       const w = wide.openValues([{ toJSON() { inner.open(3).close(); return 'w'; } }, 1, 2, 3]);
       w.close();
       'done'`,
      { collector },
    );
    assert.equal(r.ok, true, r.summary.cause);
    assert.equal(r.summary.rejected, 0);
    assert.equal(r.summary.invalidFrames, 0);
    const spans = [...collector.spans.values()].filter((s) => s.meta.name === 'inner' || s.meta.name === 'outer' || s.meta.name === 'wide');
    assert.deepEqual(
      spans.map((s) => [s.meta.name, s.values.map(([, v]) => v), s.closed]).sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y))),
      [
        ['inner', [0], true],
        ['inner', [1], true],
        ['inner', [2], true],
        ['inner', [3], true],
        ['outer', [{ debug: '"v"' }, 1, 2, 3], true],
        ['wide', [{ debug: '"w"' }, 1, 2, 3], true],
      ],
    );
    assert.equal(new Set(spans.map((s) => s.id)).size, 6, 'six ids');
  });
});
