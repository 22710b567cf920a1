/**
 * Rust guests: ordinary `tracing` instrumentation (test/guests-rust), traced out through the
 * sandtrace-guest crate (guest/rust) over the language-neutral WebAssembly ABI. The guest is
 * built at test time with Debian's toolchain, offline; without it these tests skip and say why.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { before, describe, test } from 'node:test';
import { CaptureCollector, type NormalizedSpan } from '../host/collectors/capture-collector.js';
import type { PersistedExecution } from '../host/sandbox/execution.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { MemoryLimitError, runWasm, type WasmRunOptions } from '../host/sandbox/wasm-runner.js';
import { rustGuest, rustToolchainMissing } from './helpers/rust-guest.js';

const skip = rustToolchainMissing();
if (skip !== undefined) console.log(`# ${skip}`);
let wasm: Uint8Array;

before(async () => {
  if (skip === undefined) wasm = await rustGuest();
});

/** The guest imports `bench.event_json` (its per-call bench export): given to every run. */
async function run(entry: string, options: WasmRunOptions = {}) {
  const collector = (options.collector as CaptureCollector | undefined) ?? new CaptureCollector();
  const r = await runWasm(wasm, { entry, ...options, collector, imports: { bench: { event_json: () => {} }, ...options.imports } });
  // The execution span (of a fresh collector: its first root).
  const exec = collector.normalize().spans[0]!;
  return { r, collector, exec };
}

/** Span names, fields, event messages, children: what the same plugin in any guest language gives. */
function shape(s: NormalizedSpan): unknown {
  return { name: s.name, fields: s.fields, closed: s.closed, forced: s.forced, events: s.events.map((e) => e.fields.message), children: s.children.filter((c) => c.name !== 'sandtrace.execution').map(shape) };
}

describe('Rust guests (sandtrace-guest, tracing)', { skip }, () => {
  test('spans, typed fields, events and a field recorded later arrive as one tree; debug and trace are filtered by the host', async () => {
    const { r, exec, collector } = await run('run', { args: [3], level: 'debug' });
    assert.deepEqual([r.ok, r.value, r.summary.rejected, r.summary.guestDropped], [true, 6, 0, 0]);
    const handle = exec.children[0]!;
    assert.deepEqual([handle.name, handle.target, handle.level, handle.closed], ['handle', 'sandtrace_test_guest', 'info', true]);
    assert.deepEqual(handle.fields, { user: 'alice', attempt: 3, result: 'ok' });
    assert.deepEqual(handle.events.map((e) => [e.level, e.fields]), [
      ['info', { message: 'loaded', items: 3, ratio: 0.5, ok: true, big: 0xffff_ffff_ffff_ffffn }],
      ['warn', { message: 'slow', error: { error: { message: 'cannot read /etc/x' } } }],
    ]);
    assert.deepEqual(handle.children.map((c) => [c.name, c.level, c.fields, c.closed, c.events.length]), [['query', 'debug', { table: 'users' }, true, 0]], 'the trace event is below the host level');
    const raw = collector.find('handle')!;
    assert.equal(raw.meta.file, 'src/lib.rs');
    assert.equal(raw.meta.modulePath, 'sandtrace_test_guest');
    assert.ok(typeof raw.meta.line === 'number' && raw.meta.line > 0);
    assert.ok(raw.end! > raw.start, 'timestamps from the host clock import');

    // At info, the query span (debug) is never created: its callsite is Interest::never.
    const info = await run('run', { args: [1], level: 'info' });
    assert.deepEqual(info.exec.children[0]!.children, []);
    assert.equal(info.r.summary.rejected, 0);
  });

  test('nested #[instrument] functions: arguments as fields, extra fields, levels', async () => {
    const { r, exec } = await run('nested', { args: [2], level: 'debug' });
    assert.deepEqual([r.ok, r.value, r.summary.rejected], [true, 7, 0]);
    assert.deepEqual(shape(exec.children[0]!), {
      name: 'outer', fields: { n: 2 }, closed: true, forced: undefined, events: ['outer starts'],
      children: [{ name: 'middle', fields: { n: 3 }, closed: true, forced: undefined, events: [],
        children: [{ name: 'inner', fields: { n: 6, label: 'x', extra: 7 }, closed: true, forced: undefined, events: ['innermost'], children: [] }] }],
    });
    // At info the debug span is skipped: inner is outer's child.
    const info = await run('nested', { args: [2], level: 'info' });
    assert.deepEqual(info.exec.children.map((s) => [s.name, s.children.map((c) => c.name)]), [['outer', ['inner']]]);
  });

  test('events at every level, filtered by the host level, which tracing::enabled! sees in the guest', async () => {
    const levels: Array<[string, string[], number]> = [
      ['trace', ['trace', 'debug', 'info', 'warn', 'error'], 3],
      ['info', ['info', 'warn', 'error'], 2],
      ['error', ['error'], 0],
    ];
    for (const [level, seen, enabled] of levels) {
      const { r, exec } = await run('levels', { level: level as 'trace' });
      assert.equal(r.value, enabled, `enabled! at ${level}`);
      const events = exec.children[0]?.events ?? exec.events;
      assert.deepEqual(events.map((e) => e.level), seen, `at ${level}`);
    }
  });

  test('every value type: integers beyond 64 bits as decimal debug text, NaN and -0, debug, display, error chains', async () => {
    const { r, collector } = await run('values');
    assert.equal(r.summary.rejected, 0);
    const e = collector.events[0]!;
    const v = Object.fromEntries(e.values);
    assert.equal(v.message, 'all values');
    assert.equal(v.i, -5);
    assert.equal(v.small, 42);
    assert.equal(v.u, 18446744073709551615n);
    assert.equal(v.imin, -9223372036854775808n);
    assert.deepEqual(v.wide, { debug: '1180591620717411303424' });
    assert.deepEqual(v.wide_neg, { debug: '-1180591620717411303424' });
    assert.equal(v.wide_small, 12, 'i128 within 64 bits: an integer');
    assert.ok(Number.isNaN(v.nan));
    assert.ok(Object.is(v.neg_zero, -0));
    assert.equal(v.inf, Infinity);
    assert.equal(v.f, 1.25);
    assert.equal(v.yes, true);
    assert.equal(v.s, 'text ✓');
    assert.deepEqual(v.dbg, { debug: 'Point { x: 1, y: -2 }' });
    assert.deepEqual(v.disp, { debug: 'cannot read /d' }, '%display: its Display text, as a debug value');
    assert.deepEqual(v.err, { error: { message: 'bad config', source: { message: 'cannot read /etc/app.toml' } } });
  });

  test('follows_from, and a clone dropped before the original: one close', async () => {
    const { r, exec } = await run('follows');
    assert.equal(r.summary.rejected, 0);
    const [producer, consumer] = exec.children;
    assert.deepEqual([producer!.name, producer!.closed, consumer!.name, consumer!.closed], ['producer', true, 'consumer', true]);
    assert.deepEqual(consumer!.follows, [producer!.id]);
    assert.deepEqual(consumer!.events.map((e) => e.fields.message), ['consumed']);
  });

  test('a panic mid-span: the cause is the panic message and location, open spans are force-closed, the panic is an event', async () => {
    const { r, exec, collector } = await run('panic_mid_span', { args: [2] });
    assert.equal(r.ok, false);
    assert.equal(r.summary.rejected, 0);
    assert.deepEqual(r.summary.termination, { kind: 'abort', message: 'panicked: invariant broken: n = 2', file: 'src/lib.rs', line: r.summary.termination!.kind === 'abort' ? r.summary.termination!.line : 0, column: 9 });
    assert.match(r.summary.cause!, /^abort: panicked: invariant broken: n = 2 at src\/lib\.rs:\d+:9$/);
    assert.deepEqual(shape(exec.children[0]!), {
      name: 'handle', fields: { n: 2 }, closed: true, forced: 'abort', events: [],
      children: [{ name: 'inner', fields: {}, closed: true, forced: 'abort', events: ['about to fail', 'invariant broken: n = 2'], children: [] }],
    });
    const panic = collector.find('inner')!.events[1]!;
    assert.deepEqual([panic.meta.name, panic.meta.target, panic.meta.level], ['panic', 'sandtrace_guest', 'error']);
    assert.equal(Object.fromEntries(panic.values)['panic.file'], 'src/lib.rs');

    // A panic from the standard library (index out of bounds) is reported the same way.
    const oob = await run('panic_mid_span', { args: [0] });
    assert.match(oob.r.summary.cause!, /^abort: panicked: index out of bounds: the len is 0 but the index is 0 at src\/lib\.rs:\d+:\d+$/);
  });

  test('a deadline hit in a loop: stopped at a crossing, spans force-closed with the deadline', async () => {
    const { r, exec } = await run('spin', { deadlineMs: 150 });
    assert.equal(r.ok, false);
    assert.equal(r.summary.termination?.kind, 'deadline');
    const spinner = exec.children[0]!;
    assert.deepEqual([spinner.name, spinner.closed, spinner.forced], ['spinner', true, 'deadline']);
    assert.ok(spinner.events.length > 10, 'the events before the deadline were kept');
    assert.equal(r.summary.rejected, 0);
  });

  test('a module without a memory maximum is refused with the linker flags to use', async () => {
    // The smallest module that defines a memory with no maximum, as rustc links one by default.
    const bytes = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 3, 1, 0, 1]);
    await assert.rejects(runWasm(bytes, {}), (e: Error) => e instanceof MemoryLimitError && /-C link-arg=--max-memory=67108864/.test(e.message) && /--import-memory/.test(e.message));
  });

  test('a workflow span resumed in a second execution: the same tree as the QuickJS workflow', async () => {
    const collector = new CaptureCollector();
    const one = await run('step_one', { persist: true, collector, executionId: 'wf/1' });
    assert.deepEqual([one.r.ok, one.r.summary.persistedSpans, one.r.summary.rejected], [true, 1, 0]);
    // Across processes the state goes through JSON (a state file).
    const state = JSON.parse(JSON.stringify(one.r.state)) as PersistedExecution;
    const two = await run('step_two', { persist: true, state, collector, executionId: 'wf/2' });
    assert.deepEqual([two.r.ok, two.r.value, two.r.summary.persistedSpans, two.r.summary.rejected], [true, one.r.value, 0, 0], 'the carried span, by the same guest id');
    const wf = [...collector.spans.values()].filter((s) => s.meta.name === 'order-workflow');
    assert.equal(wf.length, 1);
    assert.ok(wf[0]!.end! > wf[0]!.start);

    const qjs = new CaptureCollector();
    const q1 = await runQuickJS(`const wf = tracing.span('order-workflow', { order: 'A-1', status: undefined }); wf.enter(); tracing.info('reserved stock'); wf.exit(); 1`, { collector: qjs, persist: true });
    await runQuickJS(`const wf = tracing.resume('order-workflow'); wf.enter(); tracing.info('charged card'); wf.record('status', 'paid'); wf.exit(); wf.close(); 2`, { collector: qjs, persist: true, state: q1.state! });
    const tree = (c: CaptureCollector) => shape(c.normalize().spans.flatMap((s) => s.children).find((s) => s.name === 'order-workflow')!);
    assert.deepEqual(tree(collector), tree(qjs));
    assert.deepEqual(tree(collector), { name: 'order-workflow', fields: { order: 'A-1', status: 'paid' }, closed: true, forced: undefined, events: ['reserved stock', 'charged card'], children: [] });
  });

  test('a workflow span opened in one process is resumed and closed in another: the QuickJS workflow of workflow-across-processes, in Rust', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sandtrace-rust-wf-'));
    const STEP = fileURLToPath(new URL('./fixtures/rust-workflow-step.js', import.meta.url));
    type Out = { ok: boolean; persisted: number; rejected: number; spans: Array<{ name: string; closed: boolean; start: string; end?: string; values: Record<string, unknown>; events: string[] }> };
    const step = async (n: number) => JSON.parse((await promisify(execFile)(process.execPath, [STEP, String(n), join(dir, 'state.json')])).stdout) as Out;
    try {
      const first = await step(1);
      assert.deepEqual([first.ok, first.persisted, first.rejected], [true, 1, 0]);
      assert.deepEqual(first.spans.map((s) => [s.name, s.closed]), [['order-workflow', false]]);
      const second = await step(2);
      assert.deepEqual([second.ok, second.persisted, second.rejected, second.spans.length], [true, 0, 0, 1]);
      const wf = second.spans[0]!;
      assert.equal(wf.closed, true);
      assert.equal(wf.start, first.spans[0]!.start, 'start time from the first process');
      assert.ok(BigInt(wf.end!) > BigInt(wf.start));
      // As workflow-across-processes.test expects of the QuickJS steps.
      assert.deepEqual([wf.name, wf.values, wf.events], ['order-workflow', { order: 'A-1', status: 'paid' }, ['reserved stock', 'charged card']]);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  test('resume by name: a child span inside the carried span; nothing resumed when nothing is carried', async () => {
    const collector = new CaptureCollector();
    const one = await run('step_one', { persist: true, collector });
    const two = await run('step_two_by_name', { persist: true, state: one.r.state!, collector });
    assert.deepEqual([two.r.ok, two.r.summary.rejected], [true, 0]);
    assert.ok((two.r.value as number) > (one.r.value as number), 'its own span ids start above the carried ones');
    const wf = [...collector.spans.values()].find((s) => s.meta.name === 'order-workflow')!;
    assert.equal(wf.closed, true);
    const charge = [...collector.spans.values()].find((s) => s.meta.name === 'charge')!;
    assert.equal(charge.parent, wf.id);
    assert.deepEqual(charge.events.map((e) => e.values[0]![1]), ['charged card']);

    const none = await run('resume_each');
    assert.equal(none.r.value, 0);
    assert.equal(none.r.summary.rejected, 0);
    const carried = await run('resume_each', { state: one.r.state!, persist: true });
    assert.equal(carried.r.value, 3);
    assert.equal(carried.r.summary.rejected, 0);
    assert.equal(carried.r.summary.persistedSpans, 1, 'carried on, not closed');
  });

  test('a Debug impl that logs: the nested event is dropped by tracing\'s reentrancy guard, and nothing the host receives is broken', async () => {
    const { r, exec } = await run('debug_logs');
    assert.deepEqual([r.ok, r.summary.rejected], [true, 0]);
    // tracing registers a callsite first hit inside a dispatch with no subscriber (the guard's
    // Dispatch::none) and caches Interest::never for it: it stays off, under any subscriber.
    assert.deepEqual(exec.events.map((e) => [e.level, e.fields]), [['info', { message: 'outer', v: { debug: 'noisy' } }]]);
  });

  test('a full buffer is handed over mid-run: many events, none lost', async () => {
    const { r, exec } = await run('bench_events', { args: [5000] });
    assert.equal(r.ok, true);
    assert.equal(r.summary.rejected, 0);
    assert.ok(r.summary.frames > 1, `${r.summary.frames} frames`);
    assert.equal(exec.events.length, 5000);
    assert.deepEqual(exec.events[4999]!.fields, { message: 'tick', i: 4999, ratio: 0.5, ok: true });
  });
});
