/**
 * The hard sandbox (issue 9): each row of the table, tried as a hostile plugin author
 * would, with real guests, real workers and real timers. Time bounds are 2–3× the issue's
 * targets, so that a loaded two-core machine does not fail them; the exact figures belong to
 * the benchmarks. What each test measured is printed as a diagnostic.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { BatchingManager } from '../host/batching/batching-manager.js';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { NullCollector } from '../host/collectors/null-collector.js';
import { OtlpHttpExporter } from '../host/export/otlp-http-exporter.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import type { RunResult } from '../host/sandbox/execution.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { PoolClosedError, SandboxPool } from '../host/sandbox/sandbox-pool.js';
import { compileWasm } from '../host/sandbox/wasm-module-cache.js';
import { runWasm } from '../host/sandbox/wasm-runner.js';
import { CATCHING, catchingGuest, importingGuest, spinningGuest } from './guests-wasm/hand-made-guests.js';
import { F64, I32, op, VOID, WasmModuleBuilder } from './guests-wasm/wasm-builder.js';
import { OtlpTestServer } from './helpers/otlp-test-server.js';

const MiB = 1 << 20;
/** A guest that never returns; QuickJS's interrupt handler stops it. */
const SPIN = `for (;;) {}`;
/**
 * One native call of about 9 s (QuickJS searches naively: a million positions, a thousand
 * comparisons each) in which the interrupt handler is never polled: only terminating the
 * worker stops it.
 */
const LONG_NATIVE_CALL = `'a'.repeat(1e6).indexOf('a'.repeat(1000) + 'b')`;
/** Imports for importingGuest, when a test does not care about them. */
const PLAIN_IMPORTS = { host: { add: (a: number, b: number) => a + b, mul: (a: bigint, b: bigint) => a * b, slow: () => 0 } };

/**
 * A pool whose workers have each run a guest already: thread started, QuickJS engine made (an
 * engine serves guests of one memory limit, so give the limit the test's guests will use).
 */
async function warmPool(size: number, memoryLimitBytes?: number): Promise<SandboxPool> {
  const pool = new SandboxPool({ size });
  await Promise.all(Array.from({ length: size }, () => runQuickJS(`tracing.info('warm'); 1`, { pool, ...(memoryLimitBytes !== undefined && { memoryLimitBytes }) })));
  return pool;
}

/** Runs `run` and measures how long it took to settle, in ms. */
async function timed<T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await run();
  return { value, ms: performance.now() - started };
}

function assertForced(collector: CaptureCollector, name: string, cause: string): void {
  const span = collector.find(name);
  assert.ok(span, `span '${name}' was received`);
  assert.equal(span.closed, true, `${name} is closed`);
  assert.equal(span.forced?.cause, cause, `${name} was force-closed with ${cause}`);
  assert.equal(span.entered, 0, `${name} was exited`);
}

function eventMessages(collector: CaptureCollector): unknown[] {
  return collector.events.map((e) => e.values[0]![1]);
}

const ms = (n: number) => `${Math.round(n)} ms`;

/**
 * How late a stop driven by the host's timers (deadline, grace, signal) may come on a loaded
 * 2-core machine, counted from the call: its timers ran 100-500 ms late there, and a starved
 * worker took over a second to start its guest (the grace waits for that start). The failures
 * these tests catch are later (a stop that waits for the 5 s deadline) or never happen.
 */
const SLACK_MS = 2_000;
/**
 * How long a terminated worker may take to exit. The run settles once it has (so every frame it
 * posted is applied), and a thread starved of CPU on a machine loaded ten times over its cores
 * took up to 5 s to; the failure this catches is a worker never terminated.
 */
const EXIT_MS = 15_000;

/**
 * Runs `run` on `pool` and measures when the pool decided to terminate a worker (its
 * `terminated` count went up; polled every 5 ms) and when the run settled, both in ms from the
 * start. `killedMs` is Infinity if no worker was terminated.
 */
async function timedKill<T>(pool: SandboxPool, run: () => Promise<T>): Promise<{ value: T; killedMs: number; ms: number }> {
  const before = pool.stats.terminated;
  const started = performance.now();
  let settled = false;
  const running = run().finally(() => (settled = true));
  let killedMs = Infinity;
  // The count is read before `settled`: a run that settled between two polls was terminated by
  // then (the pool counts the termination before it settles the run), which bounds the time.
  for (;;) {
    if (pool.stats.terminated > before) {
      killedMs = performance.now() - started;
      break;
    }
    if (settled) break;
    await sleep(5);
  }
  const value = await running;
  return { value, killedMs, ms: performance.now() - started };
}

describe('a QuickJS guest inside long built-in calls', () => {
  let pool: SandboxPool;
  before(async () => (pool = await warmPool(1)));
  after(() => pool.close({ cancel: true }));

  test('stops at its deadline (300 ms), well before the 3.4 s its calls take, and the spans it flushed are force-closed with cause deadline', async (t) => {
    const collector = new CaptureCollector();
    const { value: r, ms: settled } = await timed(() =>
      runQuickJS(
        `const span = tracing.span('scan', { step: 1 });
         span.enter();
         tracing.info('scanning');
         tracing.flush();
         let found = 0;
         for (let i = 0; i < 12; i++) found += 'a'.repeat(2e7).indexOf('b');
         found`,
        { pool, collector, deadlineMs: 300 },
      ),
    );
    t.diagnostic(`settled after ${ms(settled)} (deadline 300 ms; issue target 1 s)`);
    assert.equal(r.ok, false);
    assert.equal(r.summary.termination?.kind, 'deadline');
    assert.ok(settled < 2_000, `settled after ${ms(settled)}: the target is 1 s`);
    assertForced(collector, 'scan', 'deadline');
    assert.deepEqual(eventMessages(collector), ['scanning']);
    assert.equal(collector.find('sandtrace.execution')?.forced?.cause, 'deadline');
  });

  test('a guest whose one long call ends inside the grace, after its deadline, is reported with cause deadline, not ok', async () => {
    await using patient = new SandboxPool({ size: 1, stopGraceMs: 20_000 });
    const r = await runQuickJS(`'a'.repeat(2e7).indexOf('b')`, { pool: patient, deadlineMs: 3 });
    assert.equal(r.ok, false);
    assert.equal(r.summary.termination?.kind, 'deadline');
    // Usually the one call outlasts the deadline ('returned after'); on a loaded machine the
    // interrupt may already catch the guest before it, which is a deadline too.
    assert.match(r.summary.termination!.message!, /^(returned after its deadline|interrupted at the deadline)$/);
    assert.equal(patient.stats.terminated, 0, 'it returned by itself');
  });
});

describe('a QuickJS guest that allocates typed arrays without end', () => {
  test('ends out_of_memory at its 32 MiB limit; host RSS stays bounded and comes back once the pool retired the engine', { timeout: 30_000 }, async (t) => {
    const pool = await warmPool(1, 32 * MiB);
    try {
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      const start = process.memoryUsage().rss;
      let peak = start;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 2);
      const retiredBefore = pool.stats.retired;
      let r: RunResult;
      try {
        r = await runQuickJS(`const a = []; for (;;) a.push(new Float64Array(100000))`, { pool, memoryLimitBytes: 32 * MiB, deadlineMs: 10_000 });
      } finally {
        clearInterval(sampler);
      }
      peak = Math.max(peak, process.memoryUsage().rss);
      assert.equal(r.summary.termination?.kind, 'out_of_memory');
      assert.equal(pool.stats.retired, retiredBefore + 1, 'the engine that hit its cap was retired');
      // The retired worker exits asynchronously: give its memory a moment to go back.
      let now = process.memoryUsage().rss;
      for (let waited = 0; now - start > 16 * MiB && waited < 3_000; waited += 20) {
        await sleep(20);
        gc?.();
        now = process.memoryUsage().rss;
      }
      t.diagnostic(`RSS growth: peak ${((peak - start) / MiB).toFixed(1)} MiB, after retirement ${((now - start) / MiB).toFixed(1)} MiB`);
      // The warm engine may grow by the 32 MiB limit (and its 3 MiB reserve), the worker's own
      // heap and the host's garbage add some: measured 26–54 MiB. The bound is 128 MiB
      // (the old design reached 2.19 GB).
      assert.ok(peak - start <= 128 * MiB, `peak RSS growth ${((peak - start) / MiB).toFixed(1)} MiB`);
      // The issue asks for 64 MiB, more than the peak itself: the engine's memory goes back with
      // its worker, and RSS to about its start or below (measured -23…+5 MiB; the warm worker
      // left too). 16 MiB leaves room for noise and still fails if the memory were kept.
      assert.ok(now - start <= 16 * MiB, `RSS ${((now - start) / MiB).toFixed(1)} MiB above the start after retirement`);
      const next = await runQuickJS(`'fresh engine'`, { pool });
      assert.equal(next.value, 'fresh engine', 'the next guest runs on a fresh engine');
    } finally {
      await pool.close({ cancel: true });
    }
  });
});

describe('a WebAssembly guest that catches the host stop with catch_all', () => {
  let pool: SandboxPool;
  let dir = '';
  before(async () => {
    pool = await warmPool(1);
    dir = await mkdtemp(join(tmpdir(), 'sandtrace-hard-'));
  });
  after(async () => {
    await pool.close({ cancel: true });
    await rm(dir, { recursive: true });
  });

  test('settles within about a second of its deadline with cause deadline; its worker is terminated and the records it flushed are applied', async (t) => {
    const collector = new CaptureCollector();
    const terminated = pool.stats.terminated;
    // 500 ms rather than the 200, so that the guest has surely reached its loop: with
    // two other test processes busy beside this one, a 200 ms deadline sometimes caught it at
    // its first flush (its first frame reaches the host 5–220 ms after the run starts here).
    const { value: r, killedMs, ms: settled } = await timedKill(pool, () => runWasm(catchingGuest(), { pool, collector, deadlineMs: 500 }));
    t.diagnostic(`worker terminated after ${ms(killedMs)}, run settled after ${ms(settled)} (deadline 500 ms, grace 100 ms; issue target: within 1 s of it)`);
    assert.equal(r.ok, false);
    assert.equal(r.summary.termination?.kind, 'deadline');
    assert.match(r.summary.cause!, /worker was terminated/);
    // The pool's part is timed with timer slack, the worker's exit (up to the OS) generously.
    assert.ok(killedMs < 500 + 100 + SLACK_MS, `terminated after ${ms(killedMs)}`);
    assert.ok(settled < killedMs + EXIT_MS, `settled ${ms(settled - killedMs)} after the termination`);
    assert.equal(pool.stats.terminated, terminated + 1, 'the worker was terminated');
    assert.equal(r.summary.frames, 2);
    assert.equal(r.summary.records, 5);
    assert.equal(r.summary.rejected, 0);
    assertForced(collector, CATCHING.span, 'deadline');
    assert.deepEqual(
      collector.find(CATCHING.span)!.events.map((e) => e.values[0]![1]),
      [CATCHING.event],
    );
    assert.equal(collector.find('sandtrace.execution')?.forced?.cause, 'deadline');
    const next = await runWasm(importingGuest(), { pool, entry: 'add', args: [1, 2], imports: PLAIN_IMPORTS });
    assert.equal(next.value, 3, 'the pool replaced the worker');
  });

  test('a guest that catches the stop once and then returns is still reported with cause deadline', async () => {
    // block { loop { try { now() } catch_all { br out of the block } ; br loop } } ; return 1
    const m = new WasmModuleBuilder();
    const now = m.importFunction('sandtrace', 'now', [], [F64]);
    m.importMemory('env', 'memory', 1, 1);
    m.addFunction('run', [], [I32], [[0x02, VOID], op.loop(), op.try(), op.call(now), op.drop, op.catchAll, op.br(2), op.end, op.br(0), op.end, op.end, op.i32Const(1)]);
    const r = await runWasm(m.encode(), { pool, deadlineMs: 100 });
    assert.equal(r.summary.termination?.kind, 'deadline', `ok: ${r.ok}, value: ${String(r.value)}`);
    assert.equal(r.ok, false);
  });

  test('sandtrace run --timeout-ms 200 stops it too: exit code 1, cause deadline, the flushed span exported', { timeout: 60_000 }, async (t) => {
    const file = join(dir, 'catching.wasm');
    const out = join(dir, 'store');
    await writeFile(file, catchingGuest());
    const cli = fileURLToPath(new URL('../host/cli/main.js', import.meta.url));
    const { value: run, ms: took } = await timed(
      () =>
        new Promise<{ code: number | string; stdout: string }>((resolve) => {
          execFile(process.execPath, [cli, 'run', file, '--timeout-ms', '200', '--out', out, '--quiet'], { env: { PATH: process.env.PATH }, timeout: 30_000 }, (error, stdout) => {
            resolve({ code: error === null ? 0 : ((error as { code?: number }).code ?? String((error as { signal?: string }).signal)), stdout });
          });
        }),
    );
    t.diagnostic(`the CLI exited after ${ms(took)}`);
    assert.equal(run.code, 1, run.stdout);
    // Stopped in its loop (the worker terminated) or, on a loaded machine, already at its first
    // crossing: either way the deadline holds.
    assert.match(run.stdout, /✖ deadline exceeded/);
    const spans = (await readFile(join(out, 'traces.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .flatMap((line) => JSON.parse(line).resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans)));
    const guarded = spans.find((s: any) => s.name === CATCHING.span);
    assert.ok(guarded, 'the span from the flushed frame was exported');
    assert.ok(guarded.attributes.some((a: any) => a.key === 'sandtrace.termination.cause' && a.value.stringValue === 'deadline'));
  });
});

describe('AbortSignal.timeout(100) on a spinning guest', () => {
  let pool: SandboxPool;
  before(async () => (pool = await warmPool(1)));
  after(() => pool.close({ cancel: true }));

  test('QuickJS: settles with host_cancel well before its own 5 s deadline, its flushed span force-closed', async (t) => {
    const collector = new CaptureCollector();
    const { value: r, ms: settled } = await timed(() =>
      runQuickJS(`tracing.span('spin').enter(); tracing.flush(); ${SPIN}`, { pool, collector, deadlineMs: 5_000, signal: AbortSignal.timeout(100) }),
    );
    t.diagnostic(`settled after ${ms(settled)} (issue target 250 ms)`);
    assert.equal(r.summary.termination?.kind, 'host_cancel');
    // The interrupt handler stops it: no worker exit to wait for, timers only.
    assert.ok(settled < 250 + SLACK_MS, `settled after ${ms(settled)}`);
    assertForced(collector, 'spin', 'host_cancel');
    assert.equal(collector.find('sandtrace.execution')?.forced?.cause, 'host_cancel');
  });

  test('WebAssembly that never crosses to the host: its worker is terminated and the run settles with host_cancel', async (t) => {
    const terminated = pool.stats.terminated;
    const module = await compileWasm(spinningGuest());
    const { value: r, killedMs, ms: settled } = await timedKill(pool, () => runWasm(module, { pool, deadlineMs: 5_000, signal: AbortSignal.timeout(100) }));
    t.diagnostic(`worker terminated after ${ms(killedMs)}, run settled after ${ms(settled)} (signal 100 ms, grace 100 ms; issue target 250 ms)`);
    assert.equal(r.summary.termination?.kind, 'host_cancel');
    assert.match(r.summary.cause!, /worker was terminated/);
    assert.ok(killedMs < 100 + 100 + SLACK_MS, `terminated after ${ms(killedMs)}: before the 5 s deadline, by the signal`);
    assert.ok(settled < killedMs + EXIT_MS, `settled ${ms(settled - killedMs)} after the termination`);
    assert.equal(pool.stats.terminated, terminated + 1);
  });
});

describe('the host thread while guests spin', () => {
  let pool: SandboxPool;
  before(async () => (pool = await warmPool(2)));
  after(() => pool.close({ cancel: true }));

  // Guests on the host thread (version one) would hold it for each 1 s deadline; 300 ms leaves
  // room for a loaded machine's own gaps (93-96 ms seen with nothing blocking).
  test('a 10 ms host interval keeps firing while four spinning guests run on a pool of two', async (t) => {
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now()), 10);
    let results: RunResult[];
    try {
      ticks.push(performance.now());
      results = await Promise.all(Array.from({ length: 4 }, () => runQuickJS(SPIN, { pool, deadlineMs: 1_000 })));
      ticks.push(performance.now());
    } finally {
      clearInterval(timer);
    }
    const gaps = ticks.slice(1).map((at, i) => at - ticks[i]!);
    const largest = Math.max(...gaps);
    t.diagnostic(`${ticks.length - 2} ticks over ${ms(ticks.at(-1)! - ticks[0]!)}, largest gap ${largest.toFixed(1)} ms (issue target 30 ms)`);
    assert.deepEqual(results.map((r) => r.summary.termination?.kind), ['deadline', 'deadline', 'deadline', 'deadline']);
    assert.ok(largest <= 300, `largest gap ${largest.toFixed(1)} ms`);
  });

  // A guest that posts frames faster than the host applies them: Node hands a port's queued
  // messages over in one callback, so before the paced inbox the whole backlog (about 0.6 s here)
  // was applied without letting the event loop through.
  test('a 10 ms host interval keeps firing while the host applies a chatty guest\'s backlog of frames', async (t) => {
    class SlowCollector extends NullCollector {
      spans = 0;
      override newSpan(): number {
        const until = performance.now() + 0.01; // 10 µs of host work per span
        while (performance.now() < until);
        this.spans++;
        return super.newSpan();
      }
    }
    const collector = new SlowCollector();
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now()), 10);
    let result: RunResult;
    const start = performance.now();
    try {
      ticks.push(start);
      result = await runQuickJS(`for (let i = 0; i < 60000; i++) tracing.span('s', { i }).close();`, { pool, collector, deadlineMs: 60_000 });
      ticks.push(performance.now());
    } finally {
      clearInterval(timer);
    }
    const gaps = ticks.slice(1).map((at, i) => at - ticks[i]!);
    const largest = Math.max(...gaps);
    const took = performance.now() - start;
    t.diagnostic(`60,000 spans applied in ${ms(took)}, ${ticks.length - 2} ticks, largest gap ${largest.toFixed(1)} ms`);
    assert.equal(result.ok, true);
    assert.equal(collector.spans, 60_001, 'the guest\'s spans and the execution span');
    assert.ok(took > 600, 'the host had a backlog to apply');
    assert.ok(largest <= 300, `largest gap ${largest.toFixed(1)} ms while ${ms(took)} of frames were applied`);
  });

  // The guest returns well within its deadline, but the host takes seconds to apply its frames:
  // the deadline and the stop grace pass while the guest's `done` waits in the inbox behind them.
  test('a guest that returned in time is not terminated while the host is still applying its frames', async (t) => {
    class SlowCollector extends NullCollector {
      spans = 0;
      override newSpan(): number {
        const until = performance.now() + 0.1; // 0.1 ms of host work per span: 4 s for the run, in some 40 frames
        while (performance.now() < until);
        this.spans++;
        return super.newSpan();
      }
    }
    await using own = new SandboxPool({ size: 1 });
    const collector = new SlowCollector();
    const deadlineMs = 1_500;
    const result = await runQuickJS(`const t = Date.now(); for (let i = 0; i < 40000; i++) tracing.span('s', { i }).close(); Date.now() - t`, { pool: own, collector, deadlineMs });
    t.diagnostic(`the guest took ${String(result.value)} ms`);
    assert.equal(result.ok, true, JSON.stringify(result.summary.termination));
    assert.ok(Number(result.value) < deadlineMs, 'the guest returned within its deadline');
    assert.equal(collector.spans, 40001);
    const stats = own.stats;
    assert.deepEqual([stats.terminated, stats.workers], [0, 1], 'its worker was kept');
  });

  test('an HTTP server on 127.0.0.1 answers while a guest spins', async (t) => {
    const server = http.createServer((_req, res) => res.end('pong'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const get = () =>
      new Promise<string>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (body += c));
            res.on('end', () => resolve(body));
          })
          .on('error', reject);
      });
    // The guest is cancelled once the answers are in: cancelled (not ended by its deadline), it
    // surely still ran while they came, however slowly a loaded machine answers.
    const cancel = new AbortController();
    try {
      const guest = runQuickJS(SPIN, { pool, deadlineMs: 30_000, signal: cancel.signal });
      while (pool.stats.busy === 0) await sleep(5);
      const latencies: number[] = [];
      for (let i = 0; i < 5; i++) {
        const { value: body, ms: took } = await timed(get);
        assert.equal(body, 'pong');
        latencies.push(took);
      }
      cancel.abort();
      const r = await guest;
      t.diagnostic(`answer times: ${latencies.map((l) => l.toFixed(1)).join(', ')} ms`);
      assert.equal(r.summary.termination?.kind, 'host_cancel', 'every request was answered while the guest still ran');
      // A guest holding the host thread would hold the answers for its whole run (30 s here).
      assert.ok(Math.max(...latencies) < 250 + SLACK_MS, `slowest answer ${Math.max(...latencies).toFixed(1)} ms`);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('an export in flight to a healthy collector succeeds while a guest spins', async (t) => {
    const otlp = new OtlpTestServer();
    await otlp.start();
    const exporter = new OtlpHttpExporter({ endpoint: otlp.url, serviceName: 'hard-sandbox-test', timeoutMs: 1_000 });
    const batching = new BatchingManager(exporter, { flushIntervalMs: 60_000 });
    try {
      const collector = new PipelineCollector({ eventsAs: 'both', handlers: batching.handlers() });
      await runQuickJS(`tracing.inSpan('to export', {}, () => tracing.info('exported while a guest spins'))`, { pool, collector });
      otlp.script.push({ status: 200, delayMs: 100 }, { status: 200, delayMs: 100 });
      // Cancelled once the export is done: it surely still ran while the export went on.
      const cancel = new AbortController();
      const guest = runQuickJS(SPIN, { pool, deadlineMs: 30_000, signal: cancel.signal });
      while (pool.stats.busy === 0) await sleep(5);
      const { ms: took } = await timed(() => batching.flushAll());
      cancel.abort();
      const r = await guest;
      t.diagnostic(`the export took ${ms(took)} (the collector answers after 100 ms)`);
      assert.equal(r.summary.termination?.kind, 'host_cancel', 'the export completed while the guest still ran');
      assert.deepEqual(exporter.stats.failed, { traces: 0, logs: 0, metrics: 0 });
      assert.equal(exporter.stats.exported.traces, 2, 'the guest span and its execution span');
      assert.equal(exporter.stats.exported.logs, 1);
    } finally {
      await batching.shutdown(1_000);
      await otlp.close();
    }
  });
});

describe('a worker terminated in the middle of a native call', () => {
  test('every frame the guest flushed is applied, and its open spans and the execution span are force-closed with cause deadline', async (t) => {
    const pool = await warmPool(1);
    try {
      const collector = new CaptureCollector();
      const terminated = pool.stats.terminated;
      const { value: r, killedMs, ms: settled } = await timedKill(pool, () =>
        runQuickJS(
          `const outer = tracing.span('outer', { step: 1 });
           outer.enter();
           const inner = tracing.span('inner');
           inner.enter();
           tracing.info('first');
           tracing.flush();
           tracing.warn('second', { n: 2 });
           tracing.flush();
           ${LONG_NATIVE_CALL}`,
          { pool, collector, deadlineMs: 500 },
        ),
      );
      t.diagnostic(`worker terminated after ${ms(killedMs)}, run settled after ${ms(settled)} (deadline 500 ms, grace 100 ms; the native call alone takes about 9 s)`);
      assert.equal(pool.stats.terminated, terminated + 1, 'the worker was terminated');
      assert.equal(r.summary.termination?.kind, 'deadline');
      assert.match(r.summary.cause!, /worker was terminated/);
      assert.ok(killedMs < 500 + 100 + SLACK_MS, `terminated after ${ms(killedMs)}`);
      assert.ok(settled < killedMs + EXIT_MS, `settled ${ms(settled - killedMs)} after the termination`);
      assert.equal(r.summary.frames, 2);
      assert.equal(r.summary.rejected, 0);
      assertForced(collector, 'outer', 'deadline');
      assertForced(collector, 'inner', 'deadline');
      assert.deepEqual(collector.find('inner')!.events.map((e) => e.values[0]![1]), ['first', 'second']);
      assert.equal(r.summary.forceClosed, 2);
      assert.equal(collector.find('sandtrace.execution')?.forced?.cause, 'deadline');
    } finally {
      await pool.close({ cancel: true });
    }
  });
});

describe('host functions', () => {
  let pool: SandboxPool;
  before(async () => (pool = await warmPool(1)));
  after(() => pool.close({ cancel: true }));

  test('arguments and results cross: numbers, strings, bigints, arrays, objects and null', async () => {
    const seen: unknown[][] = [];
    const r = await runQuickJS(
      `const back = echo(1.5, 'text', 12345678901234567890n, [1, 'two', null], { a: { b: [true] } }, null);
       [typeof back[2], back[2] === 12345678901234567890n, JSON.stringify([back[0], back[1], back[3], back[4], back[5]])]`,
      { pool, hostFunctions: { echo: (...args: unknown[]) => (seen.push(args), args) } },
    );
    assert.equal(r.ok, true, r.error?.message);
    assert.deepEqual(seen, [[1.5, 'text', 12345678901234567890n, [1, 'two', null], { a: { b: [true] } }, null]]);
    assert.deepEqual(r.value, ['bigint', true, '[1.5,"text",[1,"two",null],{"a":{"b":[true]}},null]']);
  });

  test('a thrown host error becomes an error the guest can catch, and an async host function is awaited', async () => {
    const r = await runQuickJS(
      `let caught;
       try { refuse(); } catch (e) { caught = [e instanceof Error, e.message]; }
       [caught, later(20)]`,
      {
        pool,
        hostFunctions: {
          refuse: () => {
            throw new RangeError('not for you');
          },
          later: async (n: number) => {
            await sleep(n);
            return `after ${n} ms`;
          },
        },
      },
    );
    assert.equal(r.ok, true, r.error?.message);
    assert.deepEqual(r.value, [[true, 'RangeError: not for you'], 'after 20 ms']);
  });

  test('WebAssembly imports given as host functions: f64 numbers and i64 bigints cross', async () => {
    const add = await runWasm(importingGuest(), { pool, entry: 'add', args: [1.25, 2], imports: PLAIN_IMPORTS });
    assert.equal(add.value, 3.25);
    const mul = await runWasm(importingGuest(), { pool, entry: 'mul', args: [3n, 2n ** 40n], imports: PLAIN_IMPORTS });
    assert.equal(mul.value, 3n * 2n ** 40n);
  });

  /**
   * Run 1 waits on a host function that answers after LATE_MS, past its deadline; run 2 starts
   * on the same worker and waits on its own host function while that late answer arrives.
   */
  const LATE_MS = 1_200;

  test('a QuickJS host function that blocks past the deadline: the run settles near its deadline with cause deadline, and the late answer does not reach the next run', async (t) => {
    let lateAt = 0;
    const slow = () => sleep(LATE_MS).then(() => ((lateAt = performance.now()), 'late answer'));
    const { value: first, ms: settled } = await timed(() => runQuickJS(`slow()`, { pool, deadlineMs: 300, hostFunctions: { slow } }));
    t.diagnostic(`settled after ${ms(settled)} (deadline 300 ms)`);
    assert.equal(first.summary.termination?.kind, 'deadline', first.summary.cause);
    assert.ok(settled < 300 + 1_000, `settled after ${ms(settled)}`);
    const secondStarted = performance.now();
    const second = await runQuickJS(`next()`, { pool, hostFunctions: { next: () => sleep(LATE_MS).then(() => 'second answer') } });
    assert.ok(lateAt > secondStarted, 'the late answer came while the second run waited');
    assert.equal(second.ok, true, second.error?.message);
    assert.equal(second.value, 'second answer');
  });

  test('a QuickJS guest that catches the error of a host call stopped at its deadline is still reported with cause deadline', async () => {
    const r = await runQuickJS(`try { slow(); } catch (e) {} 'carried on'`, { pool, deadlineMs: 200, hostFunctions: { slow: () => sleep(LATE_MS) } });
    assert.equal(r.summary.termination?.kind, 'deadline', `ok: ${r.ok}, value: ${String(r.value)}`);
  });

  test('a WebAssembly import that blocks past the deadline is handled the same way', async (t) => {
    let lateAt = 0;
    const imports = { host: { ...PLAIN_IMPORTS.host, slow: () => sleep(LATE_MS).then(() => ((lateAt = performance.now()), 99)) } };
    const { value: first, ms: settled } = await timed(() => runWasm(importingGuest(), { pool, entry: 'slow', deadlineMs: 300, imports }));
    t.diagnostic(`settled after ${ms(settled)} (deadline 300 ms)`);
    assert.equal(first.summary.termination?.kind, 'deadline', first.summary.cause);
    assert.ok(settled < 300 + 1_000, `settled after ${ms(settled)}`);
    const secondStarted = performance.now();
    const slowAdd = { host: { ...PLAIN_IMPORTS.host, add: (a: number, b: number) => sleep(LATE_MS).then(() => a + b) } };
    const second = await runWasm(importingGuest(), { pool, entry: 'add', args: [20, 22], imports: slowAdd });
    assert.ok(lateAt > secondStarted, 'the late answer came while the second run waited');
    assert.equal(second.value, 42);
  });
});

describe('a pool shared by concurrent executions', () => {
  test('six runs on a pool of two, each with its own collector: no record lands in the wrong one', async () => {
    const pool = new SandboxPool({ size: 2 });
    try {
      const runs = Array.from({ length: 6 }, async (_, i) => {
        const collector = new CaptureCollector();
        const r = await runQuickJS(
          `for (let k = 0; k < 40; k++) {
             tracing.inSpan('job-${i}', { k }, () => tracing.info('from ${i}', { k }));
             const until = Date.now() + 2; while (Date.now() < until) {}
           }
           ${i}`,
          { pool, collector, flushBytes: 512, executionId: `shared-${i}` },
        );
        return { i, r, collector };
      });
      for (const { i, r, collector } of await Promise.all(runs)) {
        assert.equal(r.value, i);
        assert.ok(r.summary.frames > 1, 'several frames, interleaved with the other runs');
        const names = [...collector.spans.values()].map((s) => s.meta.name).filter((n) => n !== 'sandtrace.execution');
        assert.deepEqual(new Set(names), new Set([`job-${i}`]));
        assert.equal(names.length, 40);
        assert.deepEqual(new Set(eventMessages(collector)), new Set([`from ${i}`]));
        assert.equal(collector.events.length, 40);
        assert.ok(collector.events.every((e) => e.executionId === `shared-${i}`));
      }
    } finally {
      await pool.close();
    }
  });
});

describe('closing a pool', () => {
  test('close() waits for the runs in flight and queued; later runs are refused with PoolClosedError; no worker is left', async () => {
    const resourcesBefore = process.getActiveResourcesInfo();
    const pool = new SandboxPool({ size: 2 });
    const settledAt: number[] = [];
    const runs = [0, 1, 2].map((i) =>
      runQuickJS(`const until = Date.now() + 200; while (Date.now() < until) {} 'done ${i}'`, { pool }).then((r) => {
        settledAt.push(performance.now());
        return r;
      }),
    );
    const closed = pool.close().then(() => performance.now());
    await assert.rejects(runQuickJS(`'too late'`, { pool }), PoolClosedError);
    const closedAt = await closed;
    const results = await Promise.all(runs);
    assert.deepEqual(results.map((r) => r.value), ['done 0', 'done 1', 'done 2']);
    assert.ok(settledAt.every((at) => at <= closedAt), 'close() resolved after every run had settled');
    assert.equal(pool.stats.workers, 0);
    await assert.rejects(runWasm(spinningGuest(), { pool }), PoolClosedError);
    assertNoMoreResources(resourcesBefore);
  });

  test('close({ cancel: true }) settles the runs in flight and queued with host_cancel', async () => {
    const pool = new SandboxPool({ size: 2 });
    const runs = [0, 1, 2].map(() => runQuickJS(SPIN, { pool, deadlineMs: 60_000 }));
    while (pool.stats.busy < 2) await sleep(5);
    const { ms: took } = await timed(() => pool.close({ cancel: true }));
    const results = await Promise.all(runs);
    assert.deepEqual(results.map((r) => r.summary.termination?.kind), ['host_cancel', 'host_cancel', 'host_cancel']);
    // close() also waits for both workers to exit: 2.9-4.5 s on a machine loaded ten times over.
    assert.ok(took < SLACK_MS + EXIT_MS, `close took ${ms(took)} (the runs' deadline is 60 s)`);
    assert.equal(pool.stats.workers, 0);
  });

  test('idle workers do not keep the process alive: a script that never closes its pools exits by itself', { timeout: 180_000 }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'sandtrace-exit-'));
    try {
      const script = join(dir, 'never-closes.mjs');
      await writeFile(
        script,
        `import { runQuickJS, SandboxPool } from ${JSON.stringify(HOST_ENTRY)};
         const pool = new SandboxPool({ size: 2 });
         const a = await runQuickJS("tracing.info('hi'); 1 + 1", { pool });
         const b = await runQuickJS(${JSON.stringify(LONG_NATIVE_CALL)}, { pool, deadlineMs: 100 });
         const c = await runQuickJS("'on a replacement worker'", { pool });
         const d = await runQuickJS("'on the default pool'");
         console.log(JSON.stringify([a.value, b.summary.termination.kind, c.value, d.value, pool.stats]));`,
      );
      const { value: child, ms: took } = await timed(() => node([script]));
      t.diagnostic(`the child exited by itself after ${ms(took)}`);
      assert.equal(child.error, null, `the child was stopped or failed: ${child.stderr}`);
      const [a, b, c, d, stats] = JSON.parse(child.stdout);
      assert.deepEqual([a, b, c, d], [2, 'deadline', 'on a replacement worker', 'on the default pool']);
      assert.equal(stats.terminated, 1);
      assert.equal(stats.workers, 1, 'an idle worker was alive when the script ended');
    } finally {
      await rm(dir, { recursive: true });
    }
  });
});

describe('a host started as node --input-type=module -e', () => {
  test('runs guests: its workers start without the option that only the main script can take', { timeout: 180_000 }, async () => {
    const child = await node(['--input-type=module', '-e', `import { runQuickJS } from ${JSON.stringify(HOST_ENTRY)}; const r = await runQuickJS("'from -e'"); console.log(JSON.stringify([r.value, r.summary.cause ?? null]));`]);
    assert.equal(child.error, null, child.stderr);
    assert.deepEqual(JSON.parse(child.stdout), ['from -e', null]);
  });
});

const HOST_ENTRY = new URL('../host/index.js', import.meta.url).href;

/**
 * Runs node with `args` in a child process; it is killed after 120 s (`error` then says so), a
 * bound for a child that never exits: one that does took 16 s on a machine loaded ten times over.
 */
function node(args: string[]): Promise<{ error: Error | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { timeout: 120_000 }, (error, stdout, stderr) => resolve({ error, stdout, stderr }));
  });
}

/** No more handles of any kind than before (an idle or closed pool holds none the process waits for). */
function assertNoMoreResources(before: string[]): void {
  const count = (list: string[]) => list.reduce((m, r) => m.set(r, (m.get(r) ?? 0) + 1), new Map<string, number>());
  const was = count(before);
  for (const [kind, n] of count(process.getActiveResourcesInfo())) assert.ok(n <= (was.get(kind) ?? 0), `${n} active ${kind} (before: ${was.get(kind) ?? 0})`);
}

describe('compiled WebAssembly modules', () => {
  test('runWasm with the same bytes twice, in different arrays, compiles them once', async (t) => {
    const pool = new SandboxPool({ size: 1 });
    try {
      const compile = t.mock.method(WebAssembly, 'compile');
      const bytes = importingGuest('compiled_once');
      const a = await runWasm(bytes, { pool, entry: 'add', args: [1, 2], imports: PLAIN_IMPORTS });
      const b = await runWasm(new Uint8Array(bytes), { pool, entry: 'add', args: [3, 4], imports: PLAIN_IMPORTS });
      assert.deepEqual([a.value, b.value], [3, 7]);
      assert.equal(compile.mock.callCount(), 1);
      assert.equal(await compileWasm(bytes.slice()), await compileWasm(bytes), 'compileWasm gives the same Module for equal bytes');
    } finally {
      await pool.close();
    }
  });

  test('a WebAssembly.Module that did not come from compileWasm is refused with a TypeError that says why', async () => {
    const foreign = new WebAssembly.Module(importingGuest('foreign'));
    await assert.rejects(runWasm(foreign, { imports: PLAIN_IMPORTS }), (e: Error) => e instanceof TypeError && /compileWasm/.test(e.message));
  });
});
