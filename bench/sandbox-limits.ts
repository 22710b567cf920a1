/**
 * bench/sandbox (limits): what a hostile guest can do to the host since guests run on workers
 * (issue 9). Every figure is a wall-clock time or a memory reading taken on the host thread in
 * this run; each guest runs on a pool of its own, warmed first (`pool.warmUp()`: workers started,
 * QuickJS engines made), so worker start-up is not counted (except where said).
 */
import { NullCollector } from '../host/collectors/null-collector.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { SandboxPool } from '../host/sandbox/sandbox-pool.js';
import { runWasm } from '../host/sandbox/wasm-runner.js';
import { compileWasm } from '../host/sandbox/wasm-module-cache.js';
import type { RunResult } from '../host/sandbox/execution.js';
import { median, type BenchRow } from './harness.js';
import { catchingGuest } from '../test/guests-wasm/hand-made-guests.js';

const BENCH = 'sandbox';
/** Repetitions of each hostile run; the target is judged on the slowest. */
const REPEATS = 3;

const NATIVE_CALL_GUEST = `for (let i = 0; i < 12; i++) 'a'.repeat(2e7).indexOf('b');`;
const SPIN_GUEST = `for (;;) {}`;
const OOM_GUEST = `const a = []; for (;;) a.push(new Float64Array(100000));`;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const ms = (x: number) => `${x.toFixed(0)} ms`;
const mib = (bytes: number) => `${(bytes / 1048576).toFixed(0)} MiB`;
const causeOf = (r: RunResult) => r.summary.termination?.kind ?? (r.ok ? 'ok' : 'error');

interface Repeated {
  times: number[];
  causes: string[];
  /** Workers the pool terminated because the guest did not stop within the grace. */
  terminated: number;
}

/** Runs `once` REPEATS times on a warm pool, and returns the times and causes. */
async function repeat(pool: SandboxPool, once: () => Promise<{ ms: number; result: RunResult }>): Promise<Repeated> {
  const times: number[] = [];
  const causes: string[] = [];
  let terminated = 0;
  for (let i = 0; i < REPEATS; i++) {
    await pool.warmUp(); // a terminated worker is replaced on the next run: warm its successor first
    const before = pool.stats.terminated;
    const { ms: t, result } = await once();
    terminated += pool.stats.terminated - before;
    times.push(t);
    causes.push(causeOf(result));
  }
  return { times, causes, terminated };
}

async function timed(run: () => Promise<RunResult>): Promise<{ ms: number; result: RunResult }> {
  const t = performance.now();
  const result = await run();
  return { ms: performance.now() - t, result };
}

function settleRow(metric: string, r: Repeated, targetMs: number, cause: string): BenchRow {
  const worst = Math.max(...r.times);
  const causes = [...new Set(r.causes)].join('/');
  return {
    bench: BENCH,
    metric,
    value: `${ms(worst)} (median ${ms(median(r.times))}), ${causes}, ${r.terminated}/${r.times.length} workers terminated`,
    target: `≤ ${targetMs} ms, ${cause}`,
    ok: worst <= targetMs && r.causes.every((c) => c === cause),
  };
}

/** 1. A QuickJS guest inside long native calls, deadline 300 ms: from the call to the result. */
async function nativeCallDeadline(): Promise<BenchRow> {
  await using pool = new SandboxPool({ size: 1 });
  const r = await repeat(
    pool,
    () => timed(() => runQuickJS(NATIVE_CALL_GUEST, { pool, deadlineMs: 300, collector: new NullCollector() })),
  );
  return settleRow(`QuickJS 'a'.repeat(2e7).indexOf('b') ×12, deadline 300 ms: call → settled (slowest)`, r, 1000, 'deadline');
}

/**
 * 2. The hand-made WebAssembly guest of the tests (test/guests-wasm): it hands over two frames,
 * then calls `sandtrace.now` forever inside try/catch_all, swallowing every stop the imports
 * throw. Measured: settled − deadline.
 */
async function catchingWasm(): Promise<BenchRow> {
  await using pool = new SandboxPool({ size: 1 });
  const module = await compileWasm(catchingGuest());
  const deadlineMs = 200;
  const salvaged: number[] = [];
  const r = await repeat(
    pool,
    async () => {
      const t = await timed(() => runWasm(module, { pool, deadlineMs, collector: new NullCollector() }));
      salvaged.push(t.result.summary.records);
      return { ms: t.ms - deadlineMs, result: t.result };
    },
  );
  const row = settleRow(`WebAssembly guest in try/catch_all around now(), endless, deadline ${deadlineMs} ms: settled − deadline (slowest)`, r, 1000, 'deadline');
  row.value += `, records salvaged ${[...new Set(salvaged)].join('/')}`;
  return row;
}

/** 3. A spinning QuickJS guest cancelled by an AbortSignal a timer aborts after 100 ms. */
async function abortSignal(): Promise<BenchRow> {
  await using pool = new SandboxPool({ size: 1 });
  const r = await repeat(
    pool,
    () => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      return timed(() => runQuickJS(SPIN_GUEST, { pool, signal: controller.signal, collector: new NullCollector() }));
    },
  );
  return settleRow('QuickJS for(;;){}, AbortSignal aborted by a 100 ms timer: call → settled (slowest)', r, 250, 'host_cancel');
}

/**
 * 4. A 10 ms host timer while four QuickJS guests spin (deadline 1 s) on four workers of two
 * cores, in three windows: the largest gap of each; the target is judged on their median (the
 * machine is shared, and one stall of another process should not decide it), all three shown.
 */
async function timerDuringSpinners(): Promise<BenchRow> {
  await using pool = new SandboxPool({ size: 4 });
  await pool.warmUp();
  const worst: number[] = [];
  const medians: number[] = [];
  const causes = new Set<string>();
  for (let w = 0; w < 3; w++) {
    const gaps: number[] = [];
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      gaps.push(now - last);
      last = now;
    }, 10);
    const results = await Promise.all([0, 1, 2, 3].map(() => runQuickJS(SPIN_GUEST, { pool, deadlineMs: 1000, collector: new NullCollector() })));
    clearInterval(timer);
    for (const r of results) causes.add(causeOf(r));
    worst.push(Math.max(...gaps));
    medians.push(median(gaps));
  }
  const judged = median(worst);
  return {
    bench: BENCH,
    metric: 'setInterval(10 ms) on the host while 4 QuickJS guests spin 1 s (pool of 4, 2 cores): largest gap, median of 3 windows',
    value: `${judged.toFixed(1)} ms (windows: ${worst.map((g) => g.toFixed(1)).join(', ')}; median gap ${median(medians).toFixed(1)}), ${[...causes].join('/')}`,
    target: '≤ 30 ms',
    ok: judged <= 30,
  };
}

/**
 * 5. The OOM guest with a 32 MiB limit, on a pool with no worker yet: host RSS growth at its peak
 * (sampled every millisecond; the worker's start and its engine are part of it) and once the
 * pool retired the engine (500 ms after the run settled, after a full GC), both from the RSS
 * just before the run.
 */
async function outOfMemory(): Promise<BenchRow[]> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('bench/sandbox needs node --expose-gc');
  const peaks: number[] = [];
  const afters: number[] = [];
  const causes: string[] = [];
  for (let i = 0; i < 2; i++) {
    await using pool = new SandboxPool({ size: 1 });
    gc();
    await sleep(50);
    const start = process.memoryUsage.rss();
    let peak = start;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 1);
    const result = await runQuickJS(OOM_GUEST, { pool, memoryLimitBytes: 32 << 20, collector: new NullCollector() });
    peak = Math.max(peak, process.memoryUsage.rss());
    clearInterval(sampler);
    causes.push(causeOf(result));
    await sleep(500);
    gc();
    afters.push(process.memoryUsage.rss() - start);
    peaks.push(peak - start);
    if (pool.stats.retired !== 1) throw new Error(`the OOM guest's engine was not retired: ${JSON.stringify(pool.stats)}`);
  }
  const peak = Math.max(...peaks);
  const after = Math.max(...afters);
  const cause = [...new Set(causes)].join('/');
  return [
    { bench: BENCH, metric: 'QuickJS OOM guest, 32 MiB limit, cold pool: peak host RSS growth (worst of 2)', value: `${mib(peak)} (${peaks.map(mib).join(', ')}), ${cause}`, target: '≤ 128 MiB, out_of_memory', ok: peak <= 128 << 20 && causes.every((c) => c === 'out_of_memory') },
    { bench: BENCH, metric: 'same: host RSS − start, 500 ms after settling (engine retired) and a GC (worst of 2)', value: `${after >= 0 ? '+' : ''}${mib(after)} (${afters.map(mib).join(', ')})`, target: '≤ 64 MiB', ok: after <= 64 << 20 },
  ];
}

export async function runLimits(): Promise<BenchRow[]> {
  return [await nativeCallDeadline(), await catchingWasm(), await abortSignal(), await timerDuringSpinners(), ...(await outOfMemory())];
}
