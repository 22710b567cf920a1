/**
 * bench/sandbox (cost): what running a guest on a warm pool costs against doing the same guest
 * work without sandtrace in this thread, and how throughput grows with workers (issue 9).
 * Subject and baselines alternate round by round; ratios are medians of per-round ratios.
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import variant from '@jitl/quickjs-ng-wasmfile-release-sync';
import { newQuickJSWASMModuleFromVariant, type QuickJSContext, type QuickJSWASMModule } from 'quickjs-emscripten-core';
import { NullCollector } from '../host/collectors/null-collector.js';
import { compileAssemblyScript } from '../host/sandbox/compile-assemblyscript.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { SandboxPool } from '../host/sandbox/sandbox-pool.js';
import { runWasm } from '../host/sandbox/wasm-runner.js';
import { compileWasm } from '../host/sandbox/wasm-module-cache.js';
import { readMemoryDeclaration } from '../host/sandbox/wasm-memory-limits.js';
import { levelNumber } from '../shared/records.js';
import { median, type BenchRow } from './harness.js';

const BENCH = 'sandbox';
const ngVariant = variant as unknown as Parameters<typeof newQuickJSWASMModuleFromVariant>[0];

/**
 * Alternating rounds of async sides, each run for `ms`; returns µs per run per side, per round.
 * Many short rounds rather than a few long ones: on a shared machine the load comes in bursts.
 */
async function rounds(sides: Record<string, () => Promise<void>>, count = 15, ms = 60): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = Object.fromEntries(Object.keys(sides).map((k) => [k, []]));
  for (const fn of Object.values(sides)) for (let i = 0; i < 20; i++) await fn(); // warm-up
  for (let r = 0; r < count; r++) {
    for (const [name, fn] of Object.entries(sides)) {
      let runs = 0;
      const start = performance.now();
      let elapsed = 0;
      do {
        await fn();
        runs++;
        elapsed = performance.now() - start;
      } while (elapsed < ms);
      out[name]!.push((elapsed * 1000) / runs);
    }
  }
  return out;
}

const ratioOf = (a: number[], b: number[]) => median(a.map((x, i) => x / b[i]!));
const us = (x: number) => `${x.toFixed(0)} µs`;

// ---- 6. a trivial guest: sandtrace on a warm pool vs bare quickjs-emscripten in this thread ----

/** 2 spans, 10 events. */
const TRIVIAL = `tracing.inSpan('a', { n: 1 }, () => { tracing.info('hi', { k: 1 }); tracing.inSpan('b', undefined, () => { for (let i = 0; i < 9; i++) tracing.info('ev', { i }); }); });`;
/** The same guest work with tracing turned into no-op functions defined in the guest. */
const UNTRACED = `const tracing = { inSpan(name, fields, fn) { return fn(); }, info(message, fields) {} };\n${TRIVIAL}`;
/** A naive tracer: one host call per span start, span end and event. */
const NAIVE = `const tracing = {
  inSpan(name, fields, fn) { __spanStart(name, fields); try { return fn(); } finally { __spanEnd(); } },
  info(message, fields) { __event(message, fields); },
};\n${TRIVIAL}`;

/** One bare run: a runtime and context from the module loaded once, eval, dispose. */
function bareRun(engine: QuickJSWASMModule, source: string, install?: (vm: QuickJSContext) => void): void {
  const runtime = engine.newRuntime();
  const vm = runtime.newContext();
  try {
    install?.(vm);
    vm.unwrapResult(vm.evalCode(source)).dispose();
  } finally {
    vm.dispose();
    runtime.dispose();
  }
}

interface NaiveRecord {
  kind: 'start' | 'end' | 'event';
  name?: string;
  fields?: unknown;
  time: number;
}

/** The naive tracer's host side: functions that record into a host array. */
function naiveTracer(records: NaiveRecord[]): (vm: QuickJSContext) => void {
  return (vm) => {
    const define = (name: string, fn: Parameters<QuickJSContext['newFunction']>[1]) => vm.newFunction(name, fn).consume((f) => vm.setProp(vm.global, name, f));
    define('__spanStart', (name, fields) => void records.push({ kind: 'start', name: vm.getString(name), fields: vm.dump(fields), time: performance.now() }));
    define('__spanEnd', () => void records.push({ kind: 'end', time: performance.now() }));
    define('__event', (message, fields) => void records.push({ kind: 'event', name: vm.getString(message), fields: vm.dump(fields), time: performance.now() }));
  };
}

async function trivialGuest(): Promise<BenchRow[]> {
  const engine = await newQuickJSWASMModuleFromVariant(ngVariant);
  await using pool = new SandboxPool({ size: 1 });
  const collector = new NullCollector();
  const first = await runQuickJS(TRIVIAL, { pool, collector });
  if (!first.ok || first.summary.records === 0) throw new Error(`the trivial guest failed: ${JSON.stringify(first.summary)}`);
  const records: NaiveRecord[] = [];
  const install = naiveTracer(records);
  bareRun(engine, NAIVE, install);
  if (records.length !== 14) throw new Error(`the naive tracer recorded ${records.length} records, not 14`);
  const t = await rounds({
    bare: async () => bareRun(engine, UNTRACED),
    naive: async () => {
      records.length = 0;
      bareRun(engine, NAIVE, install);
    },
    sandtrace: async () => {
      await runQuickJS(TRIVIAL, { pool, collector });
    },
  });
  const vsBare = ratioOf(t.sandtrace!, t.bare!);
  const vsNaive = ratioOf(t.sandtrace!, t.naive!);
  const side = 'sandtrace = runQuickJS on a warm pool of 1, sequential awaits (worker round trip, receiver, execution span on the host; NullCollector)';
  return [
    { bench: BENCH, metric: 'trivial guest (2 spans, 10 events): bare quickjs-emscripten in this thread, untraced (new runtime + context + eval + dispose), µs', value: us(median(t.bare!)), target: '', ok: undefined },
    { bench: BENCH, metric: 'same, bare in this thread with a naive tracer (one host call per span start/end and event), µs', value: us(median(t.naive!)), target: '', ok: undefined },
    { bench: BENCH, metric: `same guest, traced; ${side}, µs`, value: us(median(t.sandtrace!)), target: '', ok: undefined },
    { bench: BENCH, metric: 'trivial guest: sandtrace / bare untraced', value: `${vsBare.toFixed(2)}×`, target: '≤ 2×', ok: vsBare <= 2 },
    { bench: BENCH, metric: 'trivial guest: sandtrace / bare with naive tracer', value: `${vsNaive.toFixed(2)}×`, target: '≤ 1×', ok: vsNaive <= 1 },
  ];
}

// ---- 7. runWasm with a cached module vs WebAssembly.instantiate in this thread ----

const PLUGIN = fileURLToPath(new URL('../../test/guests-as/plugin.ts', import.meta.url));
const EVENTS = 5;
const LIMIT_PAGES = (64 << 20) / 65536; // runWasm's default memory limit

async function wasmCached(): Promise<BenchRow[]> {
  const bytes = await compileAssemblyScript(PLUGIN);
  const module = await compileWasm(bytes);
  const decl = readMemoryDeclaration(bytes);
  if (decl.kind !== 'import') throw new Error('the plugin guest should import its memory');
  const level = levelNumber('info');
  let copied = 0;
  /** What runWasm's worker does for one run, in this thread: memory, instantiate, call, take the buffer. */
  const direct = async (): Promise<void> => {
    const memory = new WebAssembly.Memory({ initial: decl.initial, maximum: Math.min(LIMIT_PAGES, decl.maximum ?? LIMIT_PAGES) });
    let state = 0;
    let buffer = 0;
    const zero = performance.now();
    const imports: Record<string, Record<string, unknown>> = {
      env: {
        abort: () => {
          throw new Error('the guest aborted');
        },
        seed: () => Date.now(),
      },
      sandtrace: {
        attach: (s: number, b: number) => {
          state = s;
          buffer = b;
          new DataView(memory.buffer).setInt32(s + 4, level, true);
        },
        flush: (ptr: number, len: number) => void (copied += new Uint8Array(memory.buffer, ptr, len).slice().length),
        now: () => Math.round((performance.now() - zero) * 1e6),
        resume: () => 0, // no carried spans: nothing to resume (as the worker answers for a fresh run)
      },
    };
    (imports[decl.module!] ??= {})[decl.field!] = memory;
    const instance = await WebAssembly.instantiate(module, imports as WebAssembly.Imports);
    (instance.exports.manyEvents as (n: number) => void)(EVENTS);
    if (state !== 0) copied += new Uint8Array(memory.buffer, buffer, new DataView(memory.buffer).getUint32(state, true)).slice().length;
  };
  await using pool = new SandboxPool({ size: 1 });
  const collector = new NullCollector();
  const sandtrace = async (): Promise<void> => {
    const r = await runWasm(module, { pool, entry: 'manyEvents', args: [EVENTS], collector });
    if (!r.ok) throw new Error(`runWasm failed: ${r.summary.cause}`);
  };
  await sandtrace();
  await direct();
  if (copied === 0) throw new Error('the direct baseline took no records from the guest');
  const t = await rounds({ direct, sandtrace });
  const ratio = ratioOf(t.sandtrace!, t.direct!);
  return [
    { bench: BENCH, metric: `WebAssembly plugin guest, manyEvents(${EVENTS}): WebAssembly.instantiate of the compiled module + call + copy of the buffer, this thread, µs`, value: us(median(t.direct!)), target: '', ok: undefined },
    { bench: BENCH, metric: 'same: runWasm with the cached module on a warm pool of 1 (worker round trip, receiver, execution span), µs', value: us(median(t.sandtrace!)), target: '', ok: undefined },
    { bench: BENCH, metric: 'runWasm (cached module, incl. worker round trip) / WebAssembly.instantiate in this thread', value: `${ratio.toFixed(2)}×`, target: '≤ 1.3×', ok: ratio <= 1.3 },
  ];
}

// ---- 9. throughput: 2 workers vs 1 ----

const BATCH = 200;
/** About 2 ms of interpreter work in one span with one event. */
const WORK = `tracing.inSpan('item', { n: 1 }, () => { let s = 0; for (let i = 0; i < 20000; i++) s += i % 7; tracing.info('done', { s }); return s; })`;

/**
 * Two threads that only run plain JavaScript, to read how far this machine scales from one busy
 * thread to two at the moment of measuring (2 vCPUs may not make 2×): the ceiling for the ratio.
 */
const SPINNER = `const { parentPort } = require('node:worker_threads');
parentPort.on('message', (ms) => {
  const end = performance.now() + ms;
  let n = 0, x = 0;
  while (performance.now() < end) { for (let i = 0; i < 10000; i++) x += Math.sqrt(i); n++; }
  parentPort.postMessage(x > 0 ? n : -1);
});`;

function spinners(): { scaling(ms: number): Promise<number>; close(): Promise<unknown> } {
  const threads = [new Worker(SPINNER, { eval: true }), new Worker(SPINNER, { eval: true })];
  const spin = (w: Worker, ms: number) =>
    new Promise<number>((resolve) => {
      w.once('message', resolve);
      w.postMessage(ms);
    });
  return {
    async scaling(ms) {
      const alone = await spin(threads[0]!, ms);
      const both = await Promise.all(threads.map((w) => spin(w, ms)));
      return (both[0]! + both[1]!) / alone;
    },
    close: () => Promise.all(threads.map((w) => w.terminate())),
  };
}

async function throughput(): Promise<BenchRow[]> {
  await using one = new SandboxPool({ size: 1 });
  await using two = new SandboxPool({ size: 2 });
  const machine = spinners();
  const collector = new NullCollector();
  /** Runs per second, and the cores this process used meanwhile (all threads). */
  const batch = async (pool: SandboxPool): Promise<{ rate: number; cores: number }> => {
    const cpu = process.cpuUsage();
    const t = performance.now();
    const results = await Promise.all(Array.from({ length: BATCH }, () => runQuickJS(WORK, { pool, collector })));
    const elapsed = performance.now() - t;
    const used = process.cpuUsage(cpu);
    if (!results.every((r) => r.ok)) throw new Error('a throughput guest failed');
    return { rate: (BATCH * 1000) / elapsed, cores: (used.user + used.system) / 1000 / elapsed };
  };
  await batch(one); // warm-up: both of `two`'s workers get an engine
  await batch(two);
  await machine.scaling(50);
  const ones: Array<{ rate: number; cores: number }> = [];
  const twos: Array<{ rate: number; cores: number }> = [];
  const ceilings: number[] = [];
  try {
    for (let r = 0; r < 5; r++) {
      ones.push(await batch(one));
      twos.push(await batch(two));
      ceilings.push(await machine.scaling(200));
    }
  } finally {
    await machine.close();
  }
  const ratio = ratioOf(
    twos.map((x) => x.rate),
    ones.map((x) => x.rate),
  );
  const show = (xs: Array<{ rate: number; cores: number }>) => `${median(xs.map((x) => x.rate)).toFixed(0)} (process used ${median(xs.map((x) => x.cores)).toFixed(2)} cores)`;
  return [
    { bench: BENCH, metric: `throughput, ${BATCH} QuickJS runs (~2 ms of work each) submitted at once: 1 worker, runs/s`, value: show(ones), target: '', ok: undefined },
    { bench: BENCH, metric: 'same, 2 workers, runs/s', value: show(twos), target: '', ok: undefined },
    { bench: BENCH, metric: 'throughput 2 workers / 1 worker (2 cores; the host thread shares them)', value: `${ratio.toFixed(2)}×`, target: '≥ 1.7×', ok: ratio >= 1.7 },
    { bench: BENCH, metric: 'this machine meanwhile: 2 plain-JS busy threads / 1 (the ceiling for the ratio above)', value: `${median(ceilings).toFixed(2)}×`, target: '', ok: undefined },
  ];
}

export async function runCost(): Promise<BenchRow[]> {
  return [...(await trivialGuest()), ...(await wasmCached()), ...(await throughput())];
}
