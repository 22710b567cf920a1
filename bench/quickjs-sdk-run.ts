/**
 * bench/quickjs-sdk-run: what the QuickJS SDK costs per run inside a worker's engine, for the
 * trivial guest of bench/sandbox-cost (2 spans, 10 events). The real engine (SDK realm loaded once
 * from dist/ and hardened, a fresh context per guest, configure before and drain after), driven
 * in this thread, so the worker round trip and the host's receiver are not in these figures.
 * The guest times its own records with performance.now (about 0.5 µs a reading, not subtracted).
 *
 * `node dist/bench/quickjs-sdk-run.js` prints the table; `run()` returns its rows.
 */
import { pathToFileURL } from 'node:url';
import { QuickJSEngine } from '../host/sandbox/worker/quickjs-engine.js';
import type { GuestSettings } from '../host/sandbox/worker-messages.js';
import { median, printTable, type BenchRow } from './harness.js';

const BENCH = 'quickjs-sdk-run';
const RUNS = 400;

/** The trivial guest, with a clock reading between its calls; returns the readings' differences in µs. */
const TIMED = `(() => {
  const now = performance.now;
  const t = [now()];
  tracing.inSpan('a', { n: 1 }, () => {
    t.push(now());
    tracing.info('hi', { k: 1 });
    t.push(now());
    tracing.inSpan('b', undefined, () => {
      t.push(now());
      for (let i = 0; i < 9; i++) { tracing.info('ev', { i }); t.push(now()); }
    });
  });
  t.push(now());
  return t.slice(1).map((x, i) => (x - t[i]) * 1000);
})()`;
/** The trivial guest with declared sites (tracing.spanSite, tracing.callsite), timed as TIMED. */
const TIMED_SITES = `(() => {
  const now = performance.now;
  const a = tracing.spanSite('a', ['n']), b = tracing.spanSite('b'), hi = tracing.callsite('hi', ['k']), ev = tracing.callsite('ev', ['i']);
  const t = [now()];
  a.inSpan(() => {
    t.push(now());
    hi.emit(1);
    t.push(now());
    b.inSpan(() => {
      t.push(now());
      for (let i = 0; i < 9; i++) { ev.emit(i); t.push(now()); }
    });
  }, 1);
  t.push(now());
  return t.slice(1).map((x, i) => (x - t[i]) * 1000);
})()`;
const SITES = `const a = tracing.spanSite('a', ['n']), b = tracing.spanSite('b'), hi = tracing.callsite('hi', ['k']), ev = tracing.callsite('ev', ['i']);
a.inSpan(() => { hi.emit(1); b.inSpan(() => { for (let i = 0; i < 9; i++) ev.emit(i); }); }, 1);`;
/** The same calls without tracing: no-op functions defined in the guest. */
const UNTRACED = `const tracing = { inSpan(name, fields, fn) { return fn(); }, info(message, fields) {} };
tracing.inSpan('a', { n: 1 }, () => { tracing.info('hi', { k: 1 }); tracing.inSpan('b', undefined, () => { for (let i = 0; i < 9; i++) tracing.info('ev', { i }); }); });`;
const TRACED = UNTRACED.slice(UNTRACED.indexOf('\n') + 1);

interface Run {
  configure: number;
  evaluate: number;
  drain: number;
  /** The guest's own readings (TIMED only). */
  pieces?: number[];
}

function oneRun(engine: QuickJSEngine, settings: GuestSettings, source: string, timed: boolean): Run {
  engine.prepareSpare(); // as the worker does between jobs: not part of a run
  const t0 = performance.now();
  const vm = engine.newGuestContext(settings, () => {});
  const t1 = performance.now();
  const result = vm.unwrapResult(vm.evalCode(source));
  const t2 = performance.now();
  const pieces = timed ? (vm.dump(result) as number[]) : undefined;
  result.dispose();
  const t3 = performance.now();
  engine.drain().release();
  const t4 = performance.now();
  vm.dispose();
  return { configure: (t1 - t0) * 1000, evaluate: (t2 - t1) * 1000, drain: (t4 - t3) * 1000, pieces };
}

export async function run(): Promise<BenchRow[]> {
  const engine = await QuickJSEngine.create(64 << 20);
  // The byte path (`slots: false`, every record encoded in the guest), in the same runs: what the
  // slot records' drain is measured against.
  const bytesEngine = await QuickJSEngine.create(64 << 20);
  bytesEngine.slotRecords = false;
  const byteRuns: Run[] = [];
  const settings: GuestSettings = { minLevel: 2, flushBytes: 32768, executionId: 'bench', carried: [], firstSpanId: 1 };
  const runs: Run[] = [];
  const timed: Run[] = [];
  const siteRuns: Run[] = [];
  const siteTimed: Run[] = [];
  const untraced: number[] = [];
  for (let i = 0; i < RUNS + 50; i++) {
    settings.executionId = `bench-${i}`;
    const plain = oneRun(engine, settings, TRACED, false);
    const bytePath = oneRun(bytesEngine, settings, TRACED, false);
    const withClock = oneRun(engine, settings, TIMED, true);
    const sites = oneRun(engine, settings, SITES, false);
    const sitesWithClock = oneRun(engine, settings, TIMED_SITES, true);
    const vm = engine.runtime.newContext(); // the untraced guest, in a fresh context of the same runtime
    const t = performance.now();
    vm.unwrapResult(vm.evalCode(UNTRACED)).dispose();
    const elapsed = (performance.now() - t) * 1000;
    vm.dispose();
    if (i < 50) continue; // warm-up
    runs.push(plain);
    byteRuns.push(bytePath);
    timed.push(withClock);
    siteRuns.push(sites);
    siteTimed.push(sitesWithClock);
    untraced.push(elapsed);
  }
  const us = (x: number) => `${x.toFixed(1)} µs`;
  const piece = (i: number) => median(timed.map((r) => r.pieces![i]!));
  const laterEvents = median(timed.flatMap((r) => r.pieces!.slice(6, 12))); // info('ev') 4 to 9
  const rows: Array<[string, number]> = [
    ['configure (engine.newGuestContext: config written, configure called; spare context made before), µs', median(runs.map((r) => r.configure))],
    ['trivial guest, evaluated in its context (parse + run), µs', median(runs.map((r) => r.evaluate))],
    ['same guest untraced (no-op tracing defined in the guest), fresh context, µs', median(untraced)],
    ['drain (engine.drain and release), µs', median(runs.map((r) => r.drain))],
    ['drain, byte path (slots: false, same runs), µs', median(byteRuns.map((r) => r.drain))],
    ['configure + evaluate + drain, µs', median(runs.map((r) => r.configure + r.evaluate + r.drain))],
    ["first inSpan of a run (new span, enter), µs", piece(0)],
    ["first tracing.info of a run, µs", piece(1)],
    ["second inSpan (another span site), µs", piece(2)],
    ["first info('ev', { i }) (another event shape), µs", piece(3)],
    ['info, 4th to 9th of the same shape, µs', laterEvents],
    ['declared sites (spanSite, callsite): the same guest evaluated, µs', median(siteRuns.map((r) => r.evaluate))],
    ['declared sites: configure + evaluate + drain, µs', median(siteRuns.map((r) => r.configure + r.evaluate + r.drain))],
    ['declared sites: first a.inSpan of a run (callsite announced, newSpanEntered), µs', median(siteTimed.map((r) => r.pieces![0]!))],
    ['declared sites: first hi.emit of a run, µs', median(siteTimed.map((r) => r.pieces![1]!))],
    ['declared sites: second span site, b.inSpan, µs', median(siteTimed.map((r) => r.pieces![2]!))],
    ['declared sites: ev.emit, 4th to 9th, µs', median(siteTimed.flatMap((r) => r.pieces!.slice(6, 12)))],
  ];
  const drainRatio = median(runs.map((r, i) => r.drain / byteRuns[i]!.drain));
  return [
    ...rows.map(([metric, value]) => ({ bench: BENCH, metric, value: us(value), target: '', ok: undefined })),
    { bench: BENCH, metric: 'drain: slot records / byte path (median of per-run ratios)', value: `${drainRatio.toFixed(2)}×`, target: '', ok: undefined },
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) printTable(await run());
