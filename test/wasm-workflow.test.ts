/**
 * Durable workflows with AssemblyScript guests: the host gives each execution its first span id
 * through the state block (+24, only to guests whose block has it), and a step resumes a carried
 * span by its callsite's name through `sandtrace.resume`.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { compileAssemblyScript } from '../host/sandbox/compile-assemblyscript.js';
import type { PersistedExecution } from '../host/sandbox/execution.js';
import { runWasm } from '../host/sandbox/wasm-runner.js';
import { record } from './guests-wasm/hand-made-guests.js';
import { F64, I32, op, WasmModuleBuilder } from './guests-wasm/wasm-builder.js';

const PLUGIN = fileURLToPath(new URL('../../test/guests-as/plugin.ts', import.meta.url));
let wasm: Uint8Array;
/** The state after `stepOne`: the `handle` span (guest id 1) carried over, first span id 2. */
let afterStepOne: PersistedExecution;

before(async () => {
  wasm = await compileAssemblyScript(PLUGIN);
  const one = await runWasm(wasm, { entry: 'stepOne', persist: true, collector: new CaptureCollector() });
  assert.equal(one.ok, true);
  afterStepOne = one.state!;
});

/** A CaptureCollector that counts the closes of each span. */
function countingCollector(): { collector: CaptureCollector; closes: Map<number, number> } {
  const collector = new CaptureCollector();
  const closes = new Map<number, number>();
  const tryClose = collector.tryClose.bind(collector);
  collector.tryClose = (id, time, forced) => {
    const closed = tryClose(id, time, forced);
    if (closed) closes.set(id, (closes.get(id) ?? 0) + 1);
    return closed;
  };
  return { collector, closes };
}

describe('AssemblyScript workflow steps', () => {
  test('a resumed step opens spans of its own above every id an earlier step allocated; the workflow span closes once with its real start', async () => {
    const { collector, closes } = countingCollector();
    const one = await runWasm(wasm, { entry: 'stepOne', persist: true, collector, executionId: 'wf/1' });
    assert.deepEqual([one.ok, one.value, one.summary.rejected, one.summary.persistedSpans], [true, 1, 0, 1]);
    const wf = collector.find('handle')!;
    const start = wf.start;

    const two = await runWasm(wasm, { entry: 'stepWithChild', args: ['first', false], state: one.state!, persist: true, collector, executionId: 'wf/2' });
    assert.deepEqual([two.ok, two.value, two.summary.rejected, two.summary.persistedSpans], [true, 2, 0, 1], 'its own span is 2, not the carried span id 1');
    assert.equal(two.state!.spans.nextSpanId, 3);

    const three = await runWasm(wasm, { entry: 'stepWithChild', args: ['second', true], state: two.state!, persist: true, collector, executionId: 'wf/3' });
    assert.deepEqual([three.ok, three.value, three.summary.rejected, three.summary.persistedSpans], [true, 3, 0, 0], 'above the id step 2 allocated');

    const handles = [...collector.spans.values()].filter((s) => s.meta.name === 'handle');
    assert.equal(handles.length, 1, 'one workflow span across the three steps');
    assert.equal(handles[0], wf);
    assert.equal(wf.closed, true);
    assert.equal(closes.get(wf.id), 1, 'closed once');
    assert.equal(wf.start, start, 'with its start from step 1');
    assert.ok(wf.end! > wf.start);
    assert.deepEqual(wf.values.filter(([, v]) => !(typeof v === 'object' && v !== null && 'empty' in v)), [['user', 'workflow'], ['attempt', 1]], 'no step span applied to it');

    const steps = [...collector.spans.values()].filter((s) => s.meta.name === 'step');
    assert.deepEqual(steps.map((s) => [s.values, s.parent, s.closed, closes.get(s.id)]), [
      [[['label', 'first']], wf.id, true, 1],
      [[['label', 'second']], wf.id, true, 1],
    ]);
    assert.ok(steps.every((s) => s.id !== wf.id));
  });

  test('the deprecated resumeSpan(id, fields) still resumes a carried span', async () => {
    const collector = new CaptureCollector();
    const r = await runWasm(wasm, { entry: 'stepTwoById', args: [1], state: afterStepOne, persist: true, collector });
    assert.deepEqual([r.ok, r.summary.rejected, r.summary.persistedSpans], [true, 0, 0]);
    const wf = collector.find('handle')!;
    assert.equal(wf.closed, true);
    assert.deepEqual(wf.events.map((e) => e.values[0]![1]), ['reserved stock', 'charged card']);
  });

  test('resume() gives null for a callsite whose span is not carried (another name, or the same name with another target)', async () => {
    const fresh = await runWasm(wasm, { entry: 'resumeEach', collector: new CaptureCollector() });
    assert.equal(fresh.value, 0, 'nothing carried without state');
    const resumed = await runWasm(wasm, { entry: 'resumeEach', state: afterStepOne, collector: new CaptureCollector() });
    assert.equal(resumed.value, 1, 'only the handle span of target plugin');
    assert.equal(resumed.summary.rejected, 0);
  });
});

describe('the state block of guests built before it had a first span id', () => {
  const STATE = 16;
  const BUF = 1024;
  const SENTINEL = 0x5a5a5a5a;

  /** Attaches a state block (with `args` arguments), hands over a span of id 5, and returns the word at +24. */
  function attachingGuest(args: 3 | 4): Uint8Array<ArrayBuffer> {
    const m = new WasmModuleBuilder();
    const attach = m.importFunction('sandtrace', 'attach', args === 3 ? [I32, I32, I32] : [I32, I32, I32, I32], []);
    const flush = m.importFunction('sandtrace', 'flush', [I32, I32], []);
    m.importFunction('sandtrace', 'now', [], [F64]);
    m.importMemory('env', 'memory', 1, 1);
    const frame = [
      ...record(1, 1, 0, 'old', 'wasm.test', 2, null, null, null, []),
      ...record(2, 5, null, 1, 100), // span 5, contextual parent, callsite 1, t = 100 ns
      ...record(7, 5, 10), // dropped (closed) at t = 110 ns
    ];
    m.addData(BUF, frame);
    m.addData(STATE + 24, [0x5a, 0x5a, 0x5a, 0x5a]); // right after a 24-byte block
    m.addFunction('run', [], [I32], [
      op.i32Const(STATE), op.i32Const(BUF), op.i32Const(4096), ...(args === 4 ? [op.i32Const(32)] : []), op.call(attach),
      op.i32Const(STATE), op.i32Const(frame.length), op.i32Store(),
      op.i32Const(BUF), op.i32Const(frame.length), op.call(flush),
      op.i32Const(STATE), op.i32Const(0), op.i32Store(),
      op.i32Const(STATE), op.i32Load(24),
    ]);
    return m.encode();
  }

  test('attach with three arguments: it still works, and nothing is written past its 24 bytes', async () => {
    const collector = new CaptureCollector();
    const r = await runWasm(attachingGuest(3), { state: afterStepOne, collector });
    assert.equal(r.ok, true);
    assert.equal(r.value, SENTINEL, 'the word after the block is untouched');
    assert.equal(r.summary.rejected, 0);
    assert.equal(collector.find('old')?.closed, true);
  });

  test('attach with the block size (32): the host writes the first span id at +24', async () => {
    const r = await runWasm(attachingGuest(4), { state: afterStepOne, collector: new CaptureCollector() });
    assert.equal(r.ok, true);
    assert.equal(r.value, 2);
    const fresh = await runWasm(attachingGuest(4), { collector: new CaptureCollector() });
    assert.equal(fresh.value, 1, 'without state: 1');
  });
});

describe('sandtrace.resume with hostile arguments', () => {
  const NAME = 2048;
  const TARGET = 2100;
  const utf16 = (s: string) => [...Buffer.from(s, 'utf16le')];

  function resumingGuest(): Uint8Array<ArrayBuffer> {
    const m = new WasmModuleBuilder();
    const resume = m.importFunction('sandtrace', 'resume', [I32, I32, I32, I32], [I32]);
    m.importMemory('env', 'memory', 1, 1);
    m.addData(NAME, utf16('handle'));
    m.addData(TARGET, utf16('plugin'));
    const call = (a: number, b: number, c: number, d: number) => [op.i32Const(a), op.i32Const(b), op.i32Const(c), op.i32Const(d), op.call(resume)];
    // Every call but the last is hostile; the results are summed.
    m.addFunction('hostile', [], [I32], [
      ...call(1 << 20, 12, TARGET, 12), // name past the end of memory
      ...call(NAME, 12, -1, 12), op.i32Add, // target at 0xffffffff
      ...call(NAME, -1, TARGET, 12), op.i32Add, // a length of 4 GiB
      ...call(65534, 12, TARGET, 12), op.i32Add, // straddles the end of memory
      ...call(NAME, 11, TARGET, 12), op.i32Add, // an odd byte length
      ...call(NAME, 0x7fff_fffe, TARGET, 12), op.i32Add, // longer than any name it reads
      ...call(0, 0, 0, 0), op.i32Add, // empty strings at address 0: no such span
    ]);
    m.addFunction('good', [], [I32], [...call(NAME, 12, TARGET, 12)]);
    return m.encode();
  }

  test('out-of-bounds pointers and lengths give 0 and do not crash the host; a well-formed call finds the carried span', async () => {
    const bytes = resumingGuest();
    const bad = await runWasm(bytes, { entry: 'hostile', state: afterStepOne, collector: new CaptureCollector() });
    assert.equal(bad.ok, true, bad.summary.cause);
    assert.equal(bad.value, 0);
    const good = await runWasm(bytes, { entry: 'good', state: afterStepOne, collector: new CaptureCollector() });
    assert.equal(good.value, 1);
    const none = await runWasm(bytes, { entry: 'good', collector: new CaptureCollector() });
    assert.equal(none.value, 0);
  });
});
