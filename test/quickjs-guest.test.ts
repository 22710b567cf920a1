import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CaptureCollector, type CapturedSpan } from '../host/collectors/capture-collector.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { SandboxPool } from '../host/sandbox/sandbox-pool.js';

function guestRoots(c: CaptureCollector): CapturedSpan[] {
  const exec = c.find('sandtrace.execution')!;
  return exec.children.map((id) => c.spans.get(id)!);
}

describe('QuickJS guest SDK', () => {
  test('spans, fields, events, records, follows-from and metrics arrive as one tree under the execution span', async () => {
    const collector = new CaptureCollector();
    const result = await runQuickJS(
      `
      const out = tracing.inSpan('handle', { user: 'alice', attempts: 2 }, (span) => {
        tracing.info('loading', { items: 3, big: 2n ** 64n - 1n, huge: 2n ** 64n, ratio: NaN });
        const q = tracing.span('query', { table: 'users', rows: undefined }, { level: 'debug', target: 'db' });
        q.inSpan(() => q.record('rows', 12));
        const later = tracing.span('later');
        later.followsFrom(q); // while q is still open: a closed span's id is gone
        q.close();
        later.close();
        tracing.counter('requests', 1, { route: '/x' });
        tracing.histogram('latency_ms', 2.5);
        tracing.gauge('queue', 7);
        return 'done';
      });
      out + '!'`,
      { collector, level: 'trace', executionId: 'exec-1' },
    );
    assert.equal(result.ok, true);
    assert.equal(result.value, 'done!');
    const [handle] = guestRoots(collector);
    assert.equal(handle!.meta.name, 'handle');
    const tree = collector.normalize().spans[0]!.children[0]!;
    assert.deepEqual(tree.fields, { user: 'alice', attempts: 2 });
    assert.deepEqual(tree.events[0]!.fields, { message: 'loading', items: 3, big: 2n ** 64n - 1n, huge: { debug: '18446744073709551616' }, ratio: NaN });
    const query = tree.children.find((c) => c.name === 'query')!;
    assert.deepEqual({ target: query.target, level: query.level, fields: query.fields, closed: query.closed }, { target: 'db', level: 'debug', fields: { table: 'users', rows: 12 }, closed: true });
    assert.deepEqual(tree.children.find((c) => c.name === 'later')!.follows, [query.id]);
    assert.deepEqual(
      collector.metrics.map((m) => [m.instrument, m.name, m.value, m.executionId]),
      [
        ['counter', 'requests', 1, 'exec-1'],
        ['histogram', 'latency_ms', 2.5, 'exec-1'],
        ['gauge', 'queue', 7, 'exec-1'],
      ],
    );
    for (const s of collector.spans.values()) assert.equal(s.executionId, 'exec-1');
    for (const e of collector.events) assert.equal(e.executionId, 'exec-1');
    assert.equal(result.summary.rejected, 0);
  });

  test('the SDK is importable as a module and inSpan marks a thrown error on the span, then rethrows', async () => {
    const collector = new CaptureCollector();
    const result = await runQuickJS(
      `import { tracing } from 'sandtrace';
       let caught;
       try { tracing.inSpan('risky', {}, () => { throw new TypeError('bad input', { cause: new Error('root cause') }); }); }
       catch (e) { caught = e.message; }
       export const seen = caught;`,
      { collector },
    );
    assert.equal(result.ok, true);
    assert.deepEqual(result.value, { seen: 'bad input' });
    const risky = collector.find('risky')!;
    assert.deepEqual(risky.values.find(([k]) => k === 'error')![1], { error: { message: 'TypeError: bad input', source: { message: 'Error: root cause' } } });
    assert.equal(risky.closed, true);
  });

  test("the host's level filter reaches the guest: disabled levels are not encoded at all", async () => {
    const collector = new CaptureCollector();
    const result = await runQuickJS(
      `const r = [tracing.enabled('debug'), tracing.enabled('info'), tracing.enabled('error')];
       for (let i = 0; i < 1000; i++) tracing.debug('noise', { i });
       tracing.span('hidden', {}, { level: 'trace' }).enter();
       tracing.warn('kept');
       r`,
      { collector, level: 'info' },
    );
    assert.deepEqual(result.value, [false, true, true]);
    assert.deepEqual(collector.events.map((e) => e.values[0]![1]), ['kept']);
    assert.ok(result.summary.records < 10, `only enabled records crossed: ${result.summary.records}`);
  });

  test('tracing.callsite declares an event site once: positional values, named by its message, any number of fields', async () => {
    const collector = new CaptureCollector();
    const result = await runQuickJS(
      `const tick = tracing.callsite('tick', ['i', 'ok', 'label']);
       const wide = tracing.callsite('wide', ['a', 'b', 'c', 'd', 'e', 'f', 'g']);
       const quiet = tracing.callsite('quiet', ['x'], { level: 'debug' });
       for (let i = 0; i < 3; i++) tick.emit(i * 1000, i % 2 === 0, 'été');
       wide.emit(1, 2, 3, 4, 5, 6, 7);
       wide.emitValues([1, 2, 3, 4, 5, 6, 7]);
       quiet.emit(1);
       [tick.enabled, quiet.enabled]`,
      { collector, level: 'info' },
    );
    assert.deepEqual(result.value, [true, false]);
    assert.equal(result.summary.rejected, 0);
    const ticks = collector.events.filter((e) => e.meta.name === 'tick');
    assert.deepEqual(ticks.map((e) => Object.fromEntries(e.values)), [
      { i: 0, ok: true, label: 'été' },
      { i: 1000, ok: false, label: 'été' },
      { i: 2000, ok: true, label: 'été' },
    ]);
    const wide = collector.events.filter((e) => e.meta.name === 'wide');
    assert.equal(wide.length, 2, 'more than six fields: emit() passes every argument on, as emitValues() does');
    assert.deepEqual(Object.fromEntries(wide[0]!.values), { a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7 });
    assert.deepEqual(Object.fromEntries(wide[1]!.values), { a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7 });
    assert.equal(collector.events.some((e) => e.meta.name === 'quiet'), false);
  });

  test('emit() writes values exactly as the general encoder does, edge values included, without converting objects', async () => {
    const collector = new CaptureCollector();
    const result = await runQuickJS(
      `let conversions = 0;
       const hostile = { valueOf() { conversions++; throw new Error('converted'); }, [Symbol.toPrimitive]() { conversions++; throw new Error('converted'); } };
       const values = [0, -0, 1, 127, 128, 2 ** 32 - 1, 2 ** 32, -1, -(2 ** 31), 1.5, NaN, Infinity, true, false, undefined, null, '', 'x', 'été', 5n, hostile, [1, 2]];
       // Two sites: the first callsite ids are small (one-store header); the second has an id past 127.
       const fast = tracing.callsite('pair', ['a', 'b']);
       for (let i = 0; i < 130; i++) tracing.callsite('filler' + i, ['x']).emit(i);
       const slow = tracing.callsite('pair', ['a', 'b'], { target: 'far' });
       for (const site of [fast, slow])
         for (const v of values) {
           site.emit(v, v);
           site.emitValues([v, v]);
         }
       conversions`,
      { collector },
    );
    assert.equal(result.ok, true, String(result.summary.cause));
    assert.equal(result.value, 0, 'emit never converts an object through valueOf or toPrimitive');
    assert.equal(result.summary.rejected, 0);
    const pairs = collector.events.filter((e) => e.meta.name === 'pair');
    assert.equal(pairs.length, 2 * 2 * 22);
    // The guest numbers its callsites in order: 'far' is its 132nd, past the one-store header.
    assert.deepEqual([...new Set(pairs.map((e) => e.meta.target))], ['guest', 'far'], 'both header forms ran');
    for (let i = 0; i < pairs.length; i += 2) {
      const [emitted, general] = [pairs[i]!, pairs[i + 1]!];
      assert.deepEqual(emitted.values, general.values, `value #${(i / 2) % 22}`);
      assert.deepEqual(emitted.values[0]![1], emitted.values[1]![1], 'the written-out paths for a and b agree');
    }
    const first = pairs.filter((_, i) => i % 2 === 0).slice(0, 22).map((e) => e.values[0]![1]);
    assert.deepEqual(first.slice(0, 9), [0, -0, 1, 127, 128, 2 ** 32 - 1, 2 ** 32, -1, -(2 ** 31)]);
    assert.ok(Object.is(first[1], -0), '-0 keeps its sign');
    assert.deepEqual(first.slice(12, 14), [true, false]);
  });

  test('a value that ends exactly at the end of the buffer loses nothing after it', async () => {
    // Every record of a run has the same size, and the first one's length shifts where they
    // fall: for one of the shifts, a value ends exactly at the end of the writer's first 16 KiB
    // with more of the record still to write (an event's boolean, a metric's time).
    const cases = [
      { name: 'callsite event', first: (p: string) => `site.emit('${p}', true)`, next: `site.emit(s, true)`, count: (c: CaptureCollector) => c.events.filter((e) => e.values[1]![1] === true).length },
      { name: 'metric', first: (p: string) => `tracing.histogram('${p}', 2.5)`, next: `tracing.histogram(s, 2.5)`, count: (c: CaptureCollector) => c.metrics.length },
    ];
    for (const { name, first, next, count } of cases)
      for (let shift = 0; shift <= 32; shift++) {
        const collector = new CaptureCollector();
        const result = await runQuickJS(
          `const site = tracing.callsite('edge', ['s', 'b']);
           ${first('p'.repeat(shift))};
           const s = 'x'.repeat(22);
           for (let i = 0; i < 1000; i++) ${next};`,
          { collector, flushBytes: 1 << 20 },
        );
        assert.equal(result.ok, true, `${name}, shift ${shift}: ${result.summary.cause}`);
        assert.equal(result.summary.rejected + result.summary.truncated, 0);
        assert.equal(count(collector), 1001, `${name}, shift ${shift}`);
      }
  });

  test('messages arrive intact whether repeated, alternating, long, non-ASCII or past the message cache', async () => {
    const collector = new CaptureCollector();
    const messages = ['a', 'a', 'b', 'a', '', 'été', 'x'.repeat(40), 'b', ...Array.from({ length: 600 }, (_, i) => `m${i}`), 'a', 'm3', 'm599'];
    const result = await runQuickJS(`for (const m of ${JSON.stringify(messages)}) tracing.info(m); tracing.warn(42); 1`, { collector });
    assert.equal(result.summary.rejected, 0);
    assert.deepEqual(
      collector.events.map((e) => e.values[0]![1]),
      [...messages, '42'],
    );
  });

  test('events are batched: thousands of events cross to the host in a handful of frames', async () => {
    const collector = new CaptureCollector();
    const result = await runQuickJS(`for (let i = 0; i < 5000; i++) tracing.info('tick', { i }); 'ok'`, { collector, flushBytes: 32 << 10 });
    assert.equal(collector.events.length, 5000);
    assert.ok(result.summary.frames <= 5, `frames: ${result.summary.frames}`);
    assert.ok(result.summary.frames >= 2, 'the buffer was flushed when full, not only at the end');
  });

  test('guest timestamps have sub-millisecond resolution and map to wall-clock time', async () => {
    const collector = new CaptureCollector();
    const before = BigInt(Date.now()) * 1_000_000n;
    await runQuickJS(`for (let i = 0; i < 200; i++) tracing.info('t');`, { collector });
    const after = BigInt(Date.now()) * 1_000_000n;
    const times = collector.events.map((e) => e.time);
    assert.ok(times.some((t) => t % 1_000_000n !== 0n), 'not whole milliseconds');
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! >= times[i - 1]!);
    assert.ok(times[0]! >= before - 5_000_000n && times.at(-1)! <= after + 5_000_000n, 'within the run, give or take the guest clock origin (ms precision)');
  });

  test('the host parent context goes in: the execution span carries it and the guest can read it', async () => {
    const collector = new CaptureCollector();
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const result = await runQuickJS(`tracing.inSpan('child', {}, () => 0); [tracing.traceContext(), tracing.executionId()]`, { collector, traceparent, executionId: 'e-77' });
    assert.deepEqual(result.value, [traceparent, 'e-77']);
    const exec = collector.find('sandtrace.execution')!;
    assert.deepEqual(exec.remoteParent, { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 });
    assert.equal(collector.find('child')!.parent, exec.id);
    assert.deepEqual(Object.fromEntries(exec.values), {
      'execution.id': 'e-77',
      'guest.kind': 'quickjs',
      'guest.source': 'guest.js',
      'sandtrace.records': result.summary.records,
      'sandtrace.dropped': 0,
    });
  });

  test('a guest cannot import the SDK internals, and patching its own prototypes does not break its telemetry', async () => {
    const refused = await runQuickJS(`import * as sdk from 'sandtrace/guest/quickjs/sdk.js'; export const hooks = sdk.takeHostHooks();`, {});
    assert.equal(refused.ok, false);
    assert.match(refused.error!.message, /not available in this sandbox/);
    const collector = new CaptureCollector();
    const result = await runQuickJS(
      `tracing.info('before');
       Uint8Array.prototype.slice = () => 'garbage';
       Uint8Array.prototype.set = null;
       tracing.info('after');
       'done'`,
      { collector },
    );
    assert.equal(result.ok, true);
    assert.deepEqual(collector.events.map((e) => e.values[0]![1]), ['before', 'after'], 'the SDK lives in its own realm: the guest patched only its own');
  });

  test('a guest value larger than 1 MiB of JSON is refused before it reaches the worker heap, as a result or as a host-call argument', async () => {
    const big = await runQuickJS(`const s = 'x'.repeat(600000); [s, s]`, {});
    assert.equal(big.ok, false);
    assert.equal(big.summary.termination?.kind, 'exception');
    assert.match(big.error!.message, /result is 1200007 characters of JSON; at most 1048576/);
    const seen: number[] = [];
    const call = await runQuickJS(`let m; try { echo('y'.repeat(2 << 20)); } catch (e) { m = e.message; } [m, echo('ok')]`, {
      hostFunctions: { echo: (s: string) => (seen.push(s.length), s) },
    });
    assert.equal(call.ok, true);
    assert.deepEqual(call.value, ['argument 0 of echo: is a string of 2097152 characters; at most 1048576 cross to the host', 'ok']);
    assert.deepEqual(seen, [2], 'the oversized call never reached the host');
  });

  test('long runs report progress about once a second', async () => {
    const ticks: Array<{ elapsedMs: number; records: number }> = [];
    await runQuickJS(`const end = Date.now() + 2300; let i = 0; while (Date.now() < end) { if (++i % 1000 === 0) tracing.info('busy'); }`, {
      collector: new CaptureCollector(),
      flushBytes: 256,
      deadlineMs: 10_000,
      onProgress: (p) => ticks.push(p),
    });
    assert.ok(ticks.length >= 2 && ticks.length <= 3, `${ticks.length} progress reports`);
    assert.ok(ticks[1]!.elapsedMs > ticks[0]!.elapsedMs && ticks[1]!.records >= ticks[0]!.records);
  });

  test('modules other than the SDK cannot be imported', async () => {
    const result = await runQuickJS(`import fs from 'node:fs'; export default fs;`, {});
    assert.equal(result.ok, false);
    assert.match(result.error!.message, /not available in this sandbox/);
  });

  test('a resumed execution disposes every handle too (carried spans are passed into the guest)', async () => {
    await using pool = new SandboxPool({ size: 1 });
    const collector = new CaptureCollector();
    const first = await runQuickJS(`tracing.span('wf', { n: 1 }).enter();`, { collector, persist: true, pool });
    const second = await runQuickJS(`const wf = tracing.resume('wf'); wf.exit(); wf.close(); 'closed'`, { collector, state: first.state!, pool });
    assert.equal(second.value, 'closed');
    assert.equal(collector.find('wf')!.closed, true);
    assert.deepEqual([pool.stats.started, pool.stats.retired, pool.stats.faults], [1, 0, 0], 'one worker served both runs: nothing leaked, nothing failed');
  });

  test('warmUp starts every worker with its engine made, and later runs use them without starting another', async () => {
    await using pool = new SandboxPool({ size: 2 });
    await pool.warmUp();
    assert.deepEqual([pool.stats.workers, pool.stats.started, pool.stats.busy], [2, 2, 0]);
    const runs = await Promise.all([1, 2, 3, 4].map((i) => runQuickJS(`tracing.info('x'); ${i}`, { pool })));
    assert.deepEqual(runs.map((r) => r.value), [1, 2, 3, 4]);
    assert.equal(pool.stats.started, 2, 'no worker started after the warm-up');
  });

  test('a hundred runs on one warm worker leave its engine serviceable (QuickJS aborts on a leaked object)', async () => {
    await using pool = new SandboxPool({ size: 1 });
    const collector = new CaptureCollector();
    for (let i = 0; i < 100; i++) {
      const r = await runQuickJS(`tracing.inSpan('run', { i: ${i} }, () => tracing.info('x')); ${i}`, { collector, pool });
      assert.equal(r.value, i);
    }
    assert.deepEqual([pool.stats.started, pool.stats.retired, pool.stats.terminated, pool.stats.faults], [1, 0, 0, 0]);
    assert.equal(collector.spans.size, 200);
    assert.ok([...collector.spans.values()].every((s) => s.closed));
  });
});
