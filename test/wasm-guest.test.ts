import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import type { EventInfo } from '../host/collectors/collector.js';
import { CompileError, compileAssemblyScript } from '../host/sandbox/compile-assemblyscript.js';
import { MemoryLimitError, runWasm } from '../host/sandbox/wasm-runner.js';

const PLUGIN = fileURLToPath(new URL('../../test/guests-as/plugin.ts', import.meta.url));
let wasm: Uint8Array;

before(async () => {
  wasm = await compileAssemblyScript(PLUGIN);
});

function assertForceClosed(collector: CaptureCollector, kind: string, cause: RegExp): void {
  const span = collector.find('handle')!;
  assert.equal(span.closed, true);
  assert.equal(span.forced?.cause, kind);
  assert.match(span.forced!.message, cause);
  assert.deepEqual(span.events.map((e) => e.values[0]![1]), ['last words'], 'the record written just before the crash is there');
  assert.equal(span.end, span.events[0]!.time, 'closed at the last time observed from the guest');
  assert.equal(collector.find('sandtrace.execution')!.forced?.cause, kind);
}

describe('AssemblyScript guest library', () => {
  test('spans, typed fields, events, recorded values and metrics arrive as one tree under the execution span', async () => {
    const collector = new CaptureCollector();
    const r = await runWasm(wasm, { entry: 'run', args: ['alice', 3], collector, level: 'debug', executionId: 'as-1' });
    assert.equal(r.ok, true);
    assert.equal(r.value, 6);
    assert.equal(r.summary.rejected, 0);
    const exec = collector.normalize().spans[0]!;
    assert.equal(exec.name, 'sandtrace.execution');
    const handle = exec.children[0]!;
    assert.deepEqual(handle.fields, { user: 'alice', attempt: 3, result: 'ok' });
    assert.deepEqual(handle.events.map((e) => e.fields), [
      { message: 'loaded', items: 3, ratio: 0.5, ok: true, big: 0xffff_ffff_ffff_ffffn },
      { message: 'fewer values than fields', items: 4 },
      { message: 'more values than fields', error: { error: { message: 'kept' } } },
      { message: 'slow', error: { error: { message: 'timeout after 3 tries' } } },
    ]);
    assert.deepEqual(handle.children.map((c) => [c.name, c.target, c.level, c.fields, c.closed]), [['query', 'plugin::db', 'debug', { table: 'users' }, true]]);
    assert.deepEqual(
      collector.metrics.map((m) => [m.instrument, m.name, m.value, Object.fromEntries(m.attributes), m.executionId]),
      [
        ['counter', 'requests', 1, { route: '/x' }, 'as-1'],
        ['histogram', 'latency_ms', 2.5, {}, 'as-1'],
        ['gauge', 'queue', 7, {}, 'as-1'],
      ],
    );
    const raw = collector.find('handle')!;
    assert.equal(raw.meta.file, 'plugin.ts');
    assert.equal(raw.meta.line, 4);
    assert.ok(raw.end! > raw.start, 'timestamps from the host clock import');
  });

  test('the host level filter is visible to the guest, and disabled records are not encoded', async () => {
    const info = await runWasm(wasm, { entry: 'levels', level: 'info', collector: new CaptureCollector() });
    assert.equal(info.value, 0b110);
    const trace = await runWasm(wasm, { entry: 'levels', level: 'trace', collector: new CaptureCollector() });
    assert.equal(trace.value, 0b111);
    const collector = new CaptureCollector({ level: 'info' });
    await runWasm(wasm, { entry: 'run', args: ['bob', 1], collector });
    assert.equal(collector.find('query'), undefined);
    assert.ok(!collector.events.some((e) => e.meta.level === 'trace'));
  });

  test('events cross to the host in batches: one import call per full buffer, the rest at return', async () => {
    const collector = new CaptureCollector();
    const r = await runWasm(wasm, { entry: 'manyEvents', args: [20_000], collector });
    assert.equal(collector.events.length, 20_000);
    assert.equal(r.summary.rejected, 0);
    assert.ok(r.summary.frames >= 3 && r.summary.frames <= 12, `frames: ${r.summary.frames}`);
    const times = collector.events.map((e) => e.time);
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! >= times[i - 1]!, 'time deltas stay right across buffer flushes');
  });

  test('trap: open spans close with cause trap, and the records before it are drained from memory', async () => {
    const collector = new CaptureCollector();
    const r = await runWasm(wasm, { entry: 'openAndTrap', collector });
    assert.equal(r.summary.termination?.kind, 'trap');
    assertForceClosed(collector, 'trap', /^trap: unreachable/);
  });

  test('abort: the cause carries the message, file, line and column', async () => {
    const collector = new CaptureCollector();
    const r = await runWasm(wasm, { entry: 'openAndAbort', collector });
    const line = readFileSync(PLUGIN, 'utf8').split('\n').findIndex((l) => l.includes('assert(false, "invariant broken")')) + 1;
    assert.deepEqual(r.summary.termination, { kind: 'abort', message: 'invariant broken', file: 'test/guests-as/plugin.ts', line, column: 3 });
    assertForceClosed(collector, 'abort', new RegExp(`^abort: invariant broken at test/guests-as/plugin\\.ts:${line}:3$`));
  });

  test('out of memory is told apart from other traps, within the host memory limit', async () => {
    const collector = new CaptureCollector();
    const r = await runWasm(wasm, { entry: 'openAndExhaustMemory', collector, memoryLimitBytes: 16 << 20 });
    assert.equal(r.summary.termination?.kind, 'out_of_memory');
    assertForceClosed(collector, 'out_of_memory', /^out of memory: trap with memory at \d+ of 256 pages/);
  });

  test('deadline: checked at every host crossing, the guest is stopped and its spans closed', async () => {
    const collector = new CaptureCollector({ level: 'info' });
    const started = Date.now();
    const r = await runWasm(wasm, { entry: 'spin', collector, deadlineMs: 50, level: 'trace' });
    assert.ok(Date.now() - started < 2_000);
    assert.equal(r.summary.termination?.kind, 'deadline');
    assert.equal(collector.find('handle')!.forced?.cause, 'deadline');
  });

  test('host cancel: an AbortSignal fired during the run stops the guest at its next crossing', async () => {
    const controller = new AbortController();
    const collector = new CaptureCollector();
    const event = collector.event.bind(collector);
    collector.event = (e: EventInfo) => {
      event(e);
      controller.abort();
    };
    const r = await runWasm(wasm, { entry: 'manyEvents', args: [100_000], collector, signal: controller.signal });
    assert.equal(r.summary.termination?.kind, 'host_cancel');
    assert.ok(collector.events.length < 100_000);
  });

  test('callsites announced across buffer flushes arrive whole: every name, file and line', async () => {
    const collector = new CaptureCollector();
    // About 900 announcements of 20–120 bytes: more than the guest's 64 KiB buffer holds.
    const r = await runWasm(wasm, { entry: 'manyCallsites', args: [900], collector });
    assert.equal(r.ok, true, String(r.summary.cause));
    assert.equal(r.summary.rejected + r.summary.truncated, 0);
    assert.ok(r.summary.frames >= 2, `frames: ${r.summary.frames}`);
    assert.equal(collector.events.length, 900);
    collector.events.forEach((e, i) => {
      assert.deepEqual([e.meta.name, e.meta.file ?? '', e.meta.line, e.values], [`site${i}`, 'f'.repeat(i % 97), 65536 + i, [['i', i]]]);
    });
  });

  test('a trapped instance is never reused: every run gets a fresh instance and memory', async () => {
    await runWasm(wasm, { entry: 'openAndTrap', collector: new CaptureCollector() });
    const collector = new CaptureCollector();
    const r = await runWasm(wasm, { entry: 'run', args: ['after', 1], collector });
    assert.equal(r.ok, true);
    assert.equal(collector.find('handle')!.forced, undefined);
    assert.equal(r.summary.rejected, 0, 'no leftover records from the trapped run');
  });

  test('a module whose own memory the host cannot cap is refused before it runs', async () => {
    const unbounded = await compileAssemblyScript(PLUGIN, { importMemory: false });
    await assert.rejects(runWasm(unbounded, { entry: 'run', args: ['x', 1] }), MemoryLimitError);
    const bounded = await compileAssemblyScript(PLUGIN, { importMemory: false, maximumMemoryPages: 64 });
    const r = await runWasm(bounded, { entry: 'run', args: ['x', 1], collector: new CaptureCollector() });
    assert.equal(r.ok, true);
  });

  test('a guest that does not compile raises a CompileError with the diagnostics', async () => {
    const bad = fileURLToPath(new URL('../../test/guests-as/does-not-compile.ts', import.meta.url));
    await assert.rejects(compileAssemblyScript(bad), (e: unknown) => e instanceof CompileError && /TS2304|Cannot find name/.test(e.diagnostics));
  });
});
