/**
 * bench/guest-quickjs: the QuickJS SDK (events encoded in the guest, handed over per batch,
 * decoded by a receiver) against the obvious alternative, a host function called once per event,
 * in the same run. Both subtract the same loop without tracing.
 *
 * Also, guest side only, per span: declared span sites (`tracing.spanSite`), `tracing.inSpan` and
 * the other APIs, each against the interpreter's floor measured in the same run: a bare
 * quickjs-ng runtime (no SDK, no limits) running the same timed loop with four Float64Array
 * stores and one `performance.now()` in it (see runSpans).
 *
 * `node dist/bench/guest-quickjs.js` prints the table; `run()` returns its rows.
 */
import { pathToFileURL } from 'node:url';
import { NullCollector } from '../host/collectors/null-collector.js';
import variant from '@jitl/quickjs-ng-wasmfile-release-sync';
import { newQuickJSWASMModuleFromVariant, type QuickJSContext } from 'quickjs-emscripten-core';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { QuickJSEngine } from '../host/sandbox/worker/quickjs-engine.js';
import { median, printTable, type BenchRow } from './harness.js';

const N = 50_000;
/** Loops run inside a function, as plugin code does (top-level bindings are slow in QuickJS). */
const loop = (body: string, setup = '') => `(function () { ${setup} let sink = 0; for (let i = 0; i < ${N}; i++) { sink += i; ${body} } return sink; })()`;

async function timeSdk(body: string, setup = ''): Promise<number> {
  const t = performance.now();
  const r = await runQuickJS(loop(body, setup), { collector: new NullCollector(), deadlineMs: 120_000 });
  if (!r.ok) throw new Error(`bench guest failed: ${r.summary.cause}`);
  return performance.now() - t;
}

/** A guest that calls `emit(message, i, ok)` on the host for every event. */
async function timeHostCall(): Promise<number> {
  const engine = await newQuickJSWASMModuleFromVariant(variant as unknown as Parameters<typeof newQuickJSWASMModuleFromVariant>[0]);
  const t = performance.now();
  const runtime = engine.newRuntime();
  const vm = runtime.newContext();
  const events: Array<{ message: string; i: number; ok: boolean }> = [];
  try {
    const emit = vm.newFunction('emit', (message, i, ok) => {
      events.push({ message: vm.getString(message), i: vm.getNumber(i), ok: vm.dump(ok) as boolean });
      if (events.length > 1024) events.length = 0;
    });
    vm.setProp(vm.global, 'emit', emit);
    emit.dispose();
    vm.unwrapResult(vm.evalCode(loop(`emit('tick', i, true);`))).dispose();
  } finally {
    vm.dispose();
    runtime.dispose();
  }
  return performance.now() - t;
}

export async function run(): Promise<BenchRow[]> {
  const spanRows = await runSpans();
  await timeSdk(`tracing.info('tick', { i, ok: true });`); // warm up
  await timeHostCall();
  const bare: number[] = [];
  const site: number[] = [];
  const dynamic: number[] = [];
  const host: number[] = [];
  const spans: number[] = [];
  for (let r = 0; r < 5; r++) {
    bare.push(await timeSdk(''));
    site.push(await timeSdk(`tick.emit(i, true);`, `const tick = tracing.callsite('tick', ['i', 'ok']);`));
    dynamic.push(await timeSdk(`tracing.info('tick', { i, ok: true });`));
    host.push(await timeHostCall());
    spans.push(await timeSdk(`tracing.span('unit', { i }).enter().exit().close();`));
  }
  const base = median(bare);
  const ns = (xs: number[]) => ((median(xs) - base) * 1e6) / N;
  const perSite = ns(site);
  const perDynamic = ns(dynamic);
  const perHost = ns(host);
  const ratio = perHost / perSite;
  return [
    { bench: 'guest-quickjs', metric: 'host call per event, ns (baseline)', value: perHost.toFixed(0), target: '', ok: undefined },
    { bench: 'guest-quickjs', metric: 'SDK event via tracing.callsite, 2 fields, ns', value: perSite.toFixed(0), target: '', ok: undefined },
    { bench: 'guest-quickjs', metric: 'host call per event / SDK callsite event', value: `${ratio.toFixed(1)}×`, target: '≥ 10×', ok: ratio >= 10 },
    { bench: 'guest-quickjs', metric: 'SDK event via tracing.info(msg, fields), ns', value: perDynamic.toFixed(0), target: '', ok: undefined },
    { bench: 'guest-quickjs', metric: 'host call per event / tracing.info event', value: `${(perHost / perDynamic).toFixed(1)}×`, target: '', ok: undefined },
    { bench: 'guest-quickjs', metric: 'SDK span: create, enter, exit, close, ns', value: ns(spans).toFixed(0), target: '', ok: undefined },
    ...spanRows,
  ];
}

/**
 * Guest-side span costs: the SDK realm loaded and hardened in a QuickJSEngine as a worker has it,
 * one guest context, a flush that takes the frame and does nothing with it (no receiver: the
 * host's decode is not in these figures, unlike the rows above). Each case is a loop in a guest
 * function, called from here; what it costs is this process's CPU time (process.cpuUsage: on a
 * shared machine, time other processes take from it is not counted, as wall time would), its
 * empty loop subtracted. Every case runs in each of 7 rounds, in turn; the median round counts.
 */
const SPAN_N = 20_000;
const SPAN_CASES: Array<[key: string, body: string]> = [
  ['floor', 'f[0] = i; f[1] = 1; f[2] = 2; f[3] = performance.now();'],
  ['now', 'performance.now();'],
  ['clock', 'f[0] = Math.round(performance.now() * 1e6);'],
  ['call', 'nop(i, true);'],
  ['alloc2', 'spans[i & 1023] = new Two(i, site);'],
  ['alloc4', 'spans[i & 1023] = new Four(i, site, site, false);'],
  ['open', 'site.open(i, true).close();'],
  ['siteInSpan', 'site.inSpan(nop, i, true);'],
  ['siteInSpanArg', 'site.inSpan(nop1, i, true);'],
  ['openStr', "site.open('alice', i).close();"],
  ['openOnly', 'spans[i & 1023] = site.open(i, true);'],
  ['openEvent', 'const s = site.open(i, true); tick.emit(i, true); s.close();'],
  // The same shape without the event (a local holds the span): the baseline of the difference.
  ['openLocal', 'const s = site.open(i, true); s.close();'],
  ['event', 'tick.emit(i, true);'],
  ['inSpan', "tracing.inSpan('unit', { i, ok: true }, nop);"],
  ['inSpanEvent', "tracing.inSpan('unit', { i, ok: true }, () => tracing.info('tick', { i, ok: true }));"],
  ['info', "tracing.info('tick', { i, ok: true });"],
  ['span4', "tracing.span('unit', { i, ok: true }).enter().exit().close();"],
];

/**
 * Defines `__cases`, one function per case, each a loop over the case's body. Each declares what
 * it uses as locals first (`setup`, outside the loop): in QuickJS a captured variable costs more
 * to read than a local.
 */
function casesSource(cases: Array<[string, string]>, setup: string): string {
  const fn = (body: string) => `() => { const f = new Float64Array(8); ${setup} let sink = 0; for (let i = 0; i < ${SPAN_N}; i++) { sink += i; ${body} } return sink; }`;
  const fns = cases.map(([k, body]) => `${JSON.stringify(k)}: ${fn(body)}`);
  fns.push(`"empty": ${fn('')}`);
  return `globalThis.__cases = { ${fns.join(',\n')} }; 0`;
}

/** ns of CPU time per iteration of each case, the empty loop subtracted, median of 7 rounds. */
function timeCases(vm: QuickJSContext, cases: Array<[string, string]>, setup: string): Record<string, number> {
  vm.unwrapResult(vm.evalCode(casesSource(cases, setup))).dispose();
  const keys = [...cases.map(([k]) => k), 'empty'];
  const out: Record<string, number[]> = Object.fromEntries(keys.map((k) => [k, []]));
  for (let r = 0; r < 7; r++) {
    for (const k of keys) {
      const code = `__cases[${JSON.stringify(k)}]()`;
      const c0 = process.cpuUsage();
      vm.unwrapResult(vm.evalCode(code)).dispose();
      const c = process.cpuUsage(c0);
      out[k]!.push((c.user + c.system) / 1000);
    }
  }
  const empty = median(out.empty!);
  const res: Record<string, number> = {};
  for (const k of keys) res[k] = ((median(out[k]!) - empty) * 1e6) / SPAN_N;
  return res;
}

/** The floor in a bare quickjs-ng runtime (no SDK, no limits, no interrupt handler). */
async function bareFloor(): Promise<Record<string, number>> {
  const engine = await newQuickJSWASMModuleFromVariant(variant as unknown as Parameters<typeof newQuickJSWASMModuleFromVariant>[0]);
  const runtime = engine.newRuntime();
  const vm = runtime.newContext();
  try {
    return timeCases(vm, SPAN_CASES.slice(0, 2), '');
  } finally {
    vm.dispose();
    runtime.dispose();
  }
}

/** `minLevel` 5: what an execution head sampling left untraced runs with (every level off). */
async function sdkCosts(engine: QuickJSEngine, minLevel = 0): Promise<Record<string, number>> {
  engine.prepareSpare();
  const vm = engine.newGuestContext({ minLevel, flushBytes: 32768, executionId: 'bench', carried: [], firstSpanId: 1 }, () => {});
  try {
    const setup = `const site = tracing.spanSite('unit', ['i', 'ok']); const tick = tracing.callsite('tick', ['i', 'ok']); const nop = () => 0; const nop1 = (s) => 0; const spans = new Array(1024);
      class Two { constructor(a, b) { this.a = a; this.b = b; } }
      class Four { constructor(a, b, c, d) { this.a = a; this.b = b; this.c = c; this.d = d; } }`;
    return timeCases(vm, SPAN_CASES, setup);
  } finally {
    engine.drain().release();
    vm.dispose();
  }
}

/**
 * Where each microsecond of a slot record goes: a replica of the SDK's written-out paths
 * (EventSite.emit, SpanCallsite.open and SiteSpan.close with two values, a number and a boolean)
 * as guest code, timed whole and with one piece removed at a time; a piece costs what removing it
 * saves. The SDK's own calls are timed in the same context, to show the replica is faithful.
 */
type Piece = 'hot' | 'types' | 'stores' | 'clock' | 'cursor' | 'alloc';
const PIECES: Record<Piece, string> = {
  hot: 'the `hot` check (callsite announced in this run, level enabled, slots on; close: the span still open)',
  types: 'value type checks (`typeof a === "number"`, `b === true`) and the head arithmetic',
  stores: 'typed-array stores of the head, the id and the number value',
  clock: 'the clock: `performance.now()` and its store',
  cursor: 'the cursor (`sp`), the span id counter and the flush check',
  alloc: 'the span object (`{ __proto__, s, site }`)',
};

/** The replica's source: an event site class and a span site class, with `without` left out. */
function replicaSource(tag: string, without: Piece | undefined): string {
  const on = (p: Piece, code: string, off = '') => (without === p ? off : code);
  const val = (v: string, at: number, add: number) =>
    on('types', `if (typeof ${v} === 'number') ${on('stores', `S[p + ${at}] = ${v};`, '{}')} else if (${v} === true) h += ${add}; else if (${v} === false) h += ${2 * add}; else if (${v} === undefined) h += ${3 * add}; else return;`, on('stores', `S[p + ${at}] = ${v};`));
  // As the SDK writes it: \`var\` locals, the module's buffer read in place, the cursor's store fused with its check.
  const tail = on('cursor', 'if ((sp = p + 6) >= limit) flush();');
  return `
    class E${tag} {
      constructor() { this.hot = 1; this.slotHead = 1 + 16 + 5 * 262144; }
      emit(a, b) {
        ${on('hot', 'if (this.hot !== run) return;')}
        var h = this.slotHead, p = sp;
        ${val('a', 2, 64)} ${val('b', 3, 512)}
        ${on('stores', 'S[p] = h;')} ${on('clock', 'S[p + 1] = clock();')}
        ${tail}
      }
    }
    class P${tag} {
      close() {
        var id = this.s; ${on('hot', 'if (id <= 0) return;')} this.s = -id;
        var p = sp;
        ${on('stores', 'S[p] = 3;')} ${on('clock', 'S[p + 1] = clock();')} ${on('stores', 'S[p + 2] = id;')}
        ${tail}
      }
    }
    const proto${tag} = P${tag}.prototype; const shared${tag} = new P${tag}();
    class O${tag} {
      constructor() { this.hot = 1; this.slotHead = 2 + 16 + 5 * 262144; }
      open(a, b) {
        ${on('hot', 'if (this.hot !== run) return;')}
        var h = this.slotHead, p = sp, id = ${on('cursor', 'nextId', '1')};
        ${val('a', 3, 64)} ${val('b', 4, 512)}
        ${on('stores', 'S[p] = h;')} ${on('clock', 'S[p + 1] = clock();')} ${on('stores', 'S[p + 2] = id;')}
        ${on('cursor', 'nextId = id + 1; if ((sp = p + 6) >= limit) flush();')}
        ${on('alloc', `return { __proto__: proto${tag}, s: id, site: this };`, `const o = shared${tag}; o.s = id; return o;`)}
      }
    }
    const e${tag} = new E${tag}(), o${tag} = new O${tag}();`;
}

/** The replica's cases: whole, each piece removed, and the calls alone. */
function breakdownCases(): { cases: Array<[string, string]>; setup: string } {
  const variants: Array<Piece | undefined> = [undefined, 'hot', 'types', 'stores', 'clock', 'cursor', 'alloc'];
  let setup = `const S = new Float64Array(6 * 4200); let sp = 0; let run = 1; let nextId = 1; const limit = 6 * 4096; const clock = performance.now; function flush() { sp = 0; }
    const call = { emit(a, b) {}, open(a, b) { return this.span; }, span: { close() {} } };
    const tick = tracing.callsite('tick', ['i', 'ok']); const site = tracing.spanSite('unit', ['i', 'ok']);`;
  const cases: Array<[string, string]> = [
    ['sdkEvent', 'tick.emit(i, true);'],
    ['sdkSpan', 'site.open(i, true).close();'],
    ['callEvent', 'call.emit(i, true);'],
    ['callSpan', 'call.open(i, true).close();'],
  ];
  for (const v of variants) {
    const tag = v ?? 'full';
    setup += replicaSource(tag, v);
    if (v !== 'alloc') cases.push([`event_${tag}`, `e${tag}.emit(i, true);`]);
    cases.push([`span_${tag}`, `o${tag}.open(i, true).close();`]);
  }
  return { cases, setup };
}

/** The breakdown rows (markdown-ready): replica pieces for an event and a site span, against the floor of the same run. */
export async function runBreakdown(): Promise<BenchRow[]> {
  const engine = await QuickJSEngine.create(256 << 20);
  const { cases, setup } = breakdownCases();
  const runs: Array<Record<string, number>> = [];
  const floors: number[] = [];
  for (let r = 0; r < 3; r++) {
    floors.push((await bareFloor()).floor!);
    engine.prepareSpare();
    const vm = engine.newGuestContext({ minLevel: 0, flushBytes: 32768, executionId: 'bench', carried: [], firstSpanId: 1 }, () => {});
    try {
      runs.push(timeCases(vm, cases, setup));
    } finally {
      engine.drain().release();
      vm.dispose();
    }
  }
  const floor = median(floors);
  const at = (k: string) => median(runs.map((x) => x[k]!));
  const rows: BenchRow[] = [{ bench: 'guest-quickjs', metric: 'breakdown: floor (bare runtime, same run), ns', value: floor.toFixed(0), target: '', ok: undefined }];
  for (const [kind, sdk, call, pieces] of [
    ['event', 'sdkEvent', 'callEvent', ['hot', 'types', 'stores', 'clock', 'cursor']],
    ['span', 'sdkSpan', 'callSpan', ['hot', 'types', 'stores', 'clock', 'cursor', 'alloc']],
  ] as const) {
    const full = at(`${kind}_full`);
    const cell = (v: number) => `${(v / 1000).toFixed(2)} µs (${(v / floor).toFixed(2)}× floor)`;
    const row = (metric: string, v: number) => rows.push({ bench: 'guest-quickjs', metric: `breakdown ${kind}: ${metric}`, value: cell(v), target: '', ok: undefined });
    row(kind === 'event' ? 'the SDK: `tick.emit(i, true)`' : 'the SDK: `site.open(i, true).close()`', at(sdk));
    row('the replica, whole', full);
    row(kind === 'event' ? 'the method call (empty body)' : 'the two method calls (empty bodies)', at(call));
    let rest = full - at(call);
    for (const p of pieces) {
      const v = full - at(`${kind}_${p}`);
      rest -= v;
      row(PIECES[p], v);
    }
    row('the rest (locals, reading the head, `this.s`)', rest);
    // The replica hands nothing over: its flush only rewinds.
    row('the worker turning the record into protocol bytes when it takes the buffers (the SDK less the replica)', at(sdk) - full);
  }
  return rows;
}

/**
 * Targets: a declared span site's span with two values ≤ 2.5 µs and an event with two values
 * inside it ≤ 1 µs where the bare floor is 450 ns: ≤ 5.6× and ≤ 2.2× the floor of the same run.
 * Three repetitions (the bare floor, then the SDK's cases; 7 rounds each), medians.
 */
export async function runSpans(): Promise<BenchRow[]> {
  const engine = await QuickJSEngine.create(256 << 20);
  const bare: Array<Record<string, number>> = [];
  const sdk: Array<Record<string, number>> = [];
  const unsampled: Array<Record<string, number>> = [];
  for (let r = 0; r < 3; r++) {
    bare.push(await bareFloor());
    sdk.push(await sdkCosts(engine));
    unsampled.push(await sdkCosts(engine, 5));
  }
  const off = (k: string) => median(unsampled.map((s) => s[k]!));
  const floor = median(bare.map((b) => b.floor!));
  const at = (k: string) => median(sdk.map((s) => s[k]!));
  const engineFloor = at('floor');
  // Against the same loop with the span in a local and no event: against the chained
  // `site.open(i, true).close()`, the difference also counted the local's store and load.
  const eventInside = median(sdk.map((s) => s.openEvent! - s.openLocal!));
  const eventInsideChained = median(sdk.map((s) => s.openEvent! - s.open!));
  const infoInside = median(sdk.map((s) => s.inSpanEvent! - s.inSpan!));
  const cell = (v: number) => `${v.toFixed(0)} ns = ${(v / floor).toFixed(1)}× floor (${(v / engineFloor).toFixed(1)}× in-engine floor)`;
  const row = (metric: string, v: number, target = '', ok: boolean | undefined = undefined): BenchRow => ({ bench: 'guest-quickjs', metric, value: cell(v), target, ok });
  const open = at('open');
  return [
    { bench: 'guest-quickjs', metric: 'floor: 4 Float64Array stores + 1 performance.now(), bare runtime, ns', value: floor.toFixed(0), target: '', ok: undefined },
    { bench: 'guest-quickjs', metric: 'the same loop in a guest context of the engine, ns', value: engineFloor.toFixed(0), target: '', ok: undefined },
    row('performance.now() alone, in the guest', at('now')),
    row('clock read as the SDK does it: Math.round(performance.now() * 1e6), stored', at('clock')),
    row('a call of a guest function with two arguments', at('call')),
    row('allocating an object of two properties (as a SiteSpan)', at('alloc2')),
    row('allocating an object of four properties (as a Span)', at('alloc4')),
    row('spanSite: open(i, true).close() (newSpanEntered + drop: 2 records, 2 clock reads)', open, '≤ 5.6× floor', open <= 5.6 * floor),
    row('spanSite: inSpan(fn, i, true), fn declares no parameter (no span object)', at('siteInSpan'), '≤ 5.6× floor', at('siteInSpan') <= 5.6 * floor),
    row('spanSite: inSpan((span) => …, i, true) (span object made)', at('siteInSpanArg')),
    row("spanSite: open('alice', i).close() (a string value)", at('openStr')),
    row('spanSite: open(i, true) alone (record + span object)', at('openOnly')),
    row('callsite event with 2 values inside an open span (difference against the loop without it)', eventInside, '≤ 2.2× floor', eventInside <= 2.2 * floor),
    row('the same, against site.open(i, true).close() chained (no local: the earlier baseline)', eventInsideChained),
    row('callsite event tick.emit(i, true), top level', at('event')),
    row("tracing.inSpan('unit', { i, ok: true }, fn)", at('inSpan')),
    row('tracing.info with 2 fields inside tracing.inSpan (difference)', infoInside),
    row("tracing.info('tick', { i, ok: true }), top level", at('info')),
    row("tracing.span('unit', { i, ok: true }).enter().exit().close() (4 records)", at('span4')),
    row('unsampled execution (every level off): spanSite inSpan(fn, i, true)', off('siteInSpan')),
    row("unsampled execution: tracing.inSpan('unit', { i, ok: true }, fn)", off('inSpan')),
    row("unsampled execution: tracing.info('tick', { i, ok: true }) / tick.emit(i, true), as a disabled callsite", Math.max(off('info'), off('event'))),
  ];
}

// `--spans`: the guest-side span rows alone; `--breakdown`: where each microsecond goes.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) printTable(process.argv.includes('--spans') ? await runSpans() : process.argv.includes('--breakdown') ? await runBreakdown() : await run());
