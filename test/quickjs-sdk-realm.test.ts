/**
 * The QuickJS SDK loaded once into a realm (context) of its own, hardened, and serving guests
 * that each run in a fresh context of the same runtime: configure before a run, drain after it.
 * Real QuickJS (quickjs-ng), real SDK modules from dist/, and a small loader like the runner's.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import variant from '@jitl/quickjs-ng-wasmfile-release-sync';
import { newQuickJSWASMModuleFromVariant, type QuickJSContext, type QuickJSHandle, type QuickJSRuntime, type QuickJSWASMModule } from 'quickjs-emscripten-core';
import { FrameDecoder } from '../shared/event-codec.js';
import { FrameWriter } from '../shared/frame-writer.js';
import { PROTOCOL_MINOR, type TracingEvent, type Value } from '../shared/records.js';
import { SlotConverter } from '../host/sandbox/worker/quickjs-slots.js';

const ngVariant = variant as unknown as Parameters<typeof newQuickJSWASMModuleFromVariant>[0];
const DIST = fileURLToPath(new URL('../', import.meta.url));
const SDK_FILES = ['guest/quickjs/sdk.js', 'guest/quickjs/harden.js', 'shared/frame-writer.js', 'shared/grow-buffer.js', 'shared/records.js'];
const sources = new Map(SDK_FILES.map((f) => [`sandtrace/${f}`, readFileSync(DIST + f, 'utf8')]));

/**
 * A clock for the SDK realm, installed before the SDK loads (the SDK takes `performance.now` and
 * `Date.now` at load): steps of 30 ns, and every fifth read 1.5 ms, so times take both encodings;
 * `Date.now` stands still at `wallMs`.
 * `__resetClock()` starts it over, so two runs read the same times. (Inside a function: a script's
 * top-level `let` would be a global binding that freezing does not reach.)
 */
const FAKE_CLOCK = (wallMs = 1700000000000): string => `(() => {
  let t = 0, k = 0;
  globalThis.performance = { now: () => (t += ++k % 5 === 0 ? 1.5 : 0.00003) };
  Date.now = () => ${wallMs};
  globalThis.__resetClock = () => { t = 0; k = 0; };
})()`;

interface RunConfig {
  minLevel: number;
  flushBytes: number;
  executionId: string;
  traceparent?: string;
  carried?: Array<{ id: number; name: string; target: string; fields: string[] }>;
  cacheScope?: string;
  /** false: the SDK encodes every record itself (no slot records). */
  slots?: boolean;
}
interface CacheSizes {
  sites: number;
  siteBytes: number;
  messages: number;
  messageBytes: number;
  longestList: number;
}
/** The SDK's `caches()` hook: sizes now, and the most a run leaves to the next. */
interface CacheReport {
  now: CacheSizes;
  kept: CacheSizes;
}
interface RunOutput {
  frames: Uint8Array[];
  /** The guest's completion value (a module's exports), or its error. */
  value?: unknown;
  error?: unknown;
}

let engine: QuickJSWASMModule;
before(async () => {
  engine = await newQuickJSWASMModuleFromVariant(ngVariant);
});

function must(vm: QuickJSContext, result: ReturnType<QuickJSContext['evalCode']>): QuickJSHandle {
  return vm.unwrapResult(result);
}

/** Evaluates guest code in `vm`, runs its jobs, and returns its value or error (dumped). */
function evaluate(vm: QuickJSContext, source: string, asModule: boolean): { value?: unknown; error?: unknown } {
  const result = vm.evalCode(source, 'guest.js', { type: asModule ? 'module' : 'global' });
  if (result.error !== undefined) return result.error.consume((e) => ({ error: vm.dump(e) }));
  return result.value.consume((handle) => {
    const jobs = vm.runtime.executePendingJobs();
    if (jobs.error !== undefined) return jobs.error.consume((e) => ({ error: vm.dump(e) }));
    const state = vm.getPromiseState(handle);
    if (state.type === 'fulfilled') return state.notAPromise ? { value: vm.dump(handle) } : state.value.consume((v) => ({ value: vm.dump(v) }));
    if (state.type === 'rejected') return state.error.consume((e) => ({ error: vm.dump(e) }));
    return { error: 'the promise never settled' };
  });
}

/** The converter of the last run configured (what it converted tells whether slot records were written). */
let lastConverter: SlotConverter | undefined;

/** Calls `configure` in the SDK's context with a config built there, whose flush collects frames. */
function configure(sdk: QuickJSContext, configureFn: QuickJSHandle, config: RunConfig, frames: Uint8Array[]): void {
  const c = sdk.newObject();
  // As the worker's engine takes the SDK's buffers: slot records converted in place.
  const converter = (lastConverter = new SlotConverter());
  sdk.newFunction('flush', (...args) => {
    const frame = converter.convertHandOver(sdk, args);
    if (frame.length > 0) frames.push(frame.slice());
  }).consume((f) => sdk.setProp(c, 'flush', f));
  for (const [key, value] of Object.entries(config)) must(sdk, sdk.evalCode(`(${JSON.stringify(value)})`)).consume((h) => sdk.setProp(c, key, h));
  sdk.unwrapResult(sdk.callFunction(configureFn, sdk.undefined, c)).dispose();
  c.dispose();
}

/** What the drain returns (packed buffers), converted as the worker's engine does; or what it handed to the run's flush. */
function drain(sdk: QuickJSContext, drainFn: QuickJSHandle, frames: Uint8Array[]): void {
  sdk.unwrapResult(sdk.callFunction(drainFn, sdk.undefined)).consume((h) => {
    if (sdk.typeof(h) !== 'object') return;
    const packed = sdk.getArrayBuffer(h);
    const frame = lastConverter!.convertPacked(packed.value);
    if (frame.length > 0) frames.push(frame.slice());
    packed.dispose();
  });
}

function newRuntime(): QuickJSRuntime {
  const runtime = engine.newRuntime();
  runtime.setModuleLoader((name) => sources.get(name) ?? { error: new Error(`module '${name}' is not available`) });
  return runtime;
}

interface SdkHooks {
  configure: QuickJSHandle;
  drain: QuickJSHandle;
  /** What the caches kept from run to run hold, and their bounds. */
  caches: QuickJSHandle;
  /** `() => hardenRealm(sdk.realmRoots())`, in the SDK's realm. */
  harden: QuickJSHandle;
  /** Starts the fake clock over, when there is one. */
  resetClock?: QuickJSHandle;
  dispose(): void;
}

/** Loads the SDK into `vm` (the fake clock first, if asked), takes its hooks, and leaves nothing on the global. */
function loadSdk(vm: QuickJSContext, fakeClock: boolean | { wallMs: number }): SdkHooks {
  if (fakeClock !== false) must(vm, vm.evalCode(FAKE_CLOCK(fakeClock === true ? undefined : fakeClock.wallMs))).dispose();
  must(
    vm,
    vm.evalCode(
      `import * as sdk from 'sandtrace/guest/quickjs/sdk.js';
       import { hardenRealm } from 'sandtrace/guest/quickjs/harden.js';
       globalThis.tracing = sdk.tracing;
       globalThis.__boot = { hooks: sdk.takeHostHooks(), harden: () => hardenRealm(sdk.realmRoots()) };`,
      'boot.js',
      { type: 'module' },
    ),
  ).dispose();
  vm.runtime.executePendingJobs().dispose();
  const boot = vm.getProp(vm.global, '__boot');
  const hooks = vm.getProp(boot, 'hooks');
  const out: SdkHooks = {
    configure: vm.getProp(hooks, 'configure'),
    drain: vm.getProp(hooks, 'drain'),
    caches: vm.getProp(hooks, 'caches'),
    harden: vm.getProp(boot, 'harden'),
    dispose() {
      for (const h of [this.configure, this.drain, this.caches, this.harden, this.resetClock]) if (h?.alive) h.dispose();
    },
  };
  hooks.dispose();
  boot.dispose();
  must(vm, vm.evalCode('delete globalThis.__boot')).dispose();
  if (fakeClock) {
    out.resetClock = vm.getProp(vm.global, '__resetClock');
    must(vm, vm.evalCode('delete globalThis.__resetClock')).dispose();
  }
  return out;
}

/**
 * The new model: one runtime, the SDK in a hardened realm of its own, and a fresh context per
 * guest with the SDK realm's `tracing` as its global.
 */
class SdkRealm {
  readonly runtime = newRuntime();
  readonly sdk = this.runtime.newContext();
  private readonly tracing: QuickJSHandle;
  private readonly hooks: SdkHooks;
  /** What `hardenRealm` returned: how many objects it froze. */
  readonly frozen: number;

  /** `fakeClock`: the fake clock, with `Date.now` at its default or at `wallMs`. */
  constructor(fakeClock: boolean | { wallMs: number }) {
    this.hooks = loadSdk(this.sdk, fakeClock);
    this.tracing = this.sdk.getProp(this.sdk.global, 'tracing');
    this.frozen = this.sdk.unwrapResult(this.sdk.callFunction(this.hooks.harden, this.sdk.undefined)).consume((n) => this.sdk.getNumber(n));
  }

  /** configure, the guest in a fresh context, drain. */
  run(source: string, config: RunConfig, asModule = false): RunOutput {
    return this.runIn(source, config, asModule, true);
  }

  /** A run cut short: configured, guest code run, never drained (a host error, say). */
  runUndrained(source: string, config: RunConfig): RunOutput {
    return this.runIn(source, config, false, false);
  }

  /** A run, with the caches' sizes read between `configure` and the guest: what the runs before left. */
  runReadingCaches(source: string, config: RunConfig): RunOutput & { caches: CacheReport } {
    let caches: CacheReport | undefined;
    const out = this.runIn(source, config, false, true, () => (caches = this.caches()));
    return { ...out, caches: caches! };
  }

  caches(): CacheReport {
    return this.sdk.unwrapResult(this.sdk.callFunction(this.hooks.caches, this.sdk.undefined)).consume((h) => this.sdk.dump(h) as CacheReport);
  }

  private runIn(source: string, config: RunConfig, asModule: boolean, drained: boolean, configured?: () => void): RunOutput {
    const frames: Uint8Array[] = [];
    if (this.hooks.resetClock !== undefined) this.sdk.unwrapResult(this.sdk.callFunction(this.hooks.resetClock, this.sdk.undefined)).dispose();
    configure(this.sdk, this.hooks.configure, config, frames);
    configured?.();
    const guest = this.runtime.newContext();
    try {
      guest.setProp(guest.global, 'tracing', this.tracing);
      const out = evaluate(guest, source, asModule);
      if (drained) drain(this.sdk, this.hooks.drain, frames);
      return { frames, ...out };
    } finally {
      guest.dispose();
    }
  }

  /** Evaluates code in the SDK realm itself (what a guest can do through `tracing.info.constructor`). */
  inSdkRealm(source: string): { value?: unknown; error?: unknown } {
    return evaluate(this.sdk, source, false);
  }

  dispose(): void {
    this.tracing.dispose();
    this.hooks.dispose();
    this.sdk.dispose();
    this.runtime.dispose();
  }
}

/** Today's model: a fresh runtime per run, the SDK loaded (not hardened) into the guest's own context. */
function runSharedRealm(source: string, config: RunConfig, fakeClock: boolean, asModule = false): RunOutput {
  const runtime = newRuntime();
  const vm = runtime.newContext();
  const hooks = loadSdk(vm, fakeClock);
  try {
    const frames: Uint8Array[] = [];
    configure(vm, hooks.configure, config, frames);
    const out = evaluate(vm, source, asModule);
    drain(vm, hooks.drain, frames);
    return { frames, ...out };
  } finally {
    hooks.dispose();
    vm.dispose();
    runtime.dispose();
  }
}

/** Every record of a run's frames, decoded as one stream. */
function decode(frames: readonly Uint8Array[]): TracingEvent[] {
  const decoder = new FrameDecoder();
  const events: TracingEvent[] = [];
  for (const frame of frames) {
    const { events: batch, truncated, errors } = decoder.decode(frame);
    assert.equal(truncated, false);
    assert.deepEqual(errors, []);
    events.push(...batch);
  }
  return events;
}

/** The records without their times (and the hello without its clock origin). */
function timeless(events: readonly TracingEvent[]): unknown[] {
  return events.map((e) => {
    const { time: _time, clockOrigin: _origin, ...rest } = e as TracingEvent & { time?: bigint; clockOrigin?: bigint };
    return rest;
  });
}

function concat(frames: readonly Uint8Array[]): number[] {
  return frames.flatMap((f) => [...f]);
}

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const CONFIG: RunConfig = {
  minLevel: 1,
  flushBytes: 256,
  executionId: 'exec-1',
  traceparent: TRACEPARENT,
  carried: [{ id: 7, name: 'wf', target: 'guest', fields: ['step', 'error'] }],
};

/** A guest that goes through every cache and counter of the SDK. */
const WORKLOAD = `
  const tick = tracing.callsite('tick', ['i', 'ok']);
  const wide = tracing.callsite('wide', ['a', 'b', 'c', 'd', 'e', 'f', 'g']);
  for (let i = 0; i < 130; i++) tracing.callsite('site' + i, ['x']).emit(i);
  const far = tracing.callsite('far', ['a', 'b']); // callsite id past 127: the general header
  for (let i = 0; i < 40; i++) { tick.emit(i * 1000, i % 2 === 0); far.emit(i, 'x'); }
  wide.emit(1, 2, 3, 4, 5, 6, 7);
  tracing.inSpan('outer', { user: 'alice', n: undefined }, (span) => {
    span.record('n', 3);
    tracing.info('hello', { a: 1 });
    tracing.info('hello', { a: 2 });
    tracing.warn('été', { b: true });
    for (let i = 0; i < 20; i++) tracing.debug('m' + (i % 3), { i });
    try { tracing.inSpan('inner', {}, () => { throw new TypeError('bad', { cause: new Error('root') }); }); } catch {}
    try { tracing.inSpan('plain', {}, () => { throw 'plain'; }); } catch {} // the SDK makes an Error of it
    const s = tracing.span('linked', { k: 'v' }, { link: '${TRACEPARENT}', target: 'db', level: 'warn' });
    s.followsFrom(span); s.enter(); s.exit(); s.close();
    tracing.trace('never: below the level');
    tracing.counter('requests', 1, { route: '/x' });
    tracing.histogram('latency', 2.5);
    tracing.gauge('queue', 7n);
  });
  const wf = tracing.resume('wf');
  wf.enter(); wf.record('step', 2); wf.exit();
  tracing.info('a message longer than thirty-two characters', { v: 'x'.repeat(40) });
  [tracing.traceContext(), tracing.executionId(), tracing.carried().length, tracing.enabled('debug'), tracing.enabled('trace')];`;

/** Checks the workload's records: callsites numbered from 1, spans from the carried id + 1. */
function assertWorkload(events: readonly TracingEvent[]): void {
  assert.equal(events[0]!.type, 'hello');
  const sites = events.filter((e) => e.type === 'newCallSite');
  assert.deepEqual(sites.map((s) => s.id), sites.map((_, i) => i + 1), 'callsite ids from 1');
  const far = sites.find((s) => s.name === 'far')!;
  assert.equal(far.id, 132, 'callsites are announced on first use: 130 sites, then tick, then far');
  const spans = events.filter((e) => e.type === 'newSpan');
  assert.deepEqual(spans.map((s) => s.id), [8, 9, 10, 11], 'span ids from the carried id + 1');
  const evs = events.filter((e) => e.type === 'newEvent');
  const named = (id: number) => sites.find((s) => s.id === id)!.name;
  assert.equal(evs.filter((e) => named(e.metadataId) === 'tick').length, 40);
  assert.deepEqual(evs.filter((e) => named(e.metadataId) === 'far')[39]!.values, [['a', 39], ['b', 'x']]);
  assert.deepEqual(evs.find((e) => named(e.metadataId) === 'wide')!.values.map(([, v]) => v), [1, 2, 3, 4, 5, 6, 7]);
  const messages = evs.filter((e) => e.values[0]?.[0] === 'message').map((e) => e.values[0]![1]);
  assert.deepEqual(messages.slice(0, 3), ['hello', 'hello', 'été']);
  assert.equal(messages.length, 24, 'trace is below the level');
  const recorded = events.filter((e) => e.type === 'valuesRecorded');
  assert.deepEqual(recorded.map((r) => [r.id, r.values]), [
    [8, [['n', 3]]],
    [9, [['error', { error: { message: 'TypeError: bad', source: { message: 'Error: root' } } }]]],
    [10, [['error', { error: { message: 'Error: plain' } }]]],
    [7, [['#0', 2]]], // the carried span: its callsite is the host's to know, not the decoder's
  ]);
  assert.deepEqual(events.filter((e) => e.type === 'followsFrom'), [{ type: 'followsFrom', id: 11, followsFrom: 8 }]);
  assert.deepEqual(
    events.filter((e) => e.type === 'metric').map((m) => [m.instrument, m.name, m.value, m.attributes]),
    [
      ['counter', 'requests', 1, [['route', '/x']]],
      ['histogram', 'latency', 2.5, undefined],
      ['gauge', 'queue', 7, undefined], // a small bigint is a plain integer on the wire
    ],
  );
}

describe('QuickJS SDK in a realm of its own, serving one guest context after another', () => {
  let realm: SdkRealm;
  before(() => {
    realm = new SdkRealm(false);
  });
  after(() => realm.dispose());

  test('runs 2 and 3 write the records of run 1, times apart, and a fresh clock origin each', () => {
    const runs = [1, 2, 3].map(() => {
      const before = BigInt(Date.now()) * 1_000_000n;
      const out = realm.run(WORKLOAD, CONFIG);
      return { before, out, events: decode(out.frames) };
    });
    for (const { out, events, before } of runs) {
      assert.equal(out.error, undefined);
      assert.deepEqual(out.value, [TRACEPARENT, 'exec-1', 1, true, false]);
      assert.ok(out.frames.length > 10, 'flushed along the way (256-byte batches)');
      assertWorkload(events);
      const hello = events[0] as { clockOrigin: bigint };
      assert.ok(hello.clockOrigin > before - 10_000_000_000n && hello.clockOrigin <= BigInt(Date.now()) * 1_000_000n, 'clock origin measured for this run');
    }
    assert.deepEqual(timeless(runs[1]!.events), timeless(runs[0]!.events));
    assert.deepEqual(timeless(runs[2]!.events), timeless(runs[0]!.events));
  });

  test('with the same clock readings, every run writes the bytes a freshly loaded SDK writes', () => {
    const reused = new SdkRealm(true);
    const fresh = new SdkRealm(true);
    try {
      const big = { ...CONFIG, flushBytes: 1 << 20 };
      const first = fresh.run(WORKLOAD, CONFIG).frames;
      const firstBig = runSharedRealm(WORKLOAD, big, true).frames;
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(concat(reused.run(WORKLOAD, CONFIG).frames), concat(first), `run ${i + 1}, small batches`);
        assert.deepEqual(concat(reused.run(WORKLOAD, big).frames), concat(firstBig), `run ${i + 1}, one frame`);
      }
    } finally {
      reused.dispose();
      fresh.dispose();
    }
  });

  test('slot records decode to exactly the records of the byte path, times included (same clock readings), through flushes, interleaved with byte records', () => {
    // Values of every kind in slot records and in records that stay bytes (more values, a link,
    // an explicit parent, record, followsFrom, metrics), strings mid-stream, callsites announced
    // between slot records, throwing getters, small frames (256 bytes) so that both streams flush often.
    const MIXED = `
      const tick = tracing.callsite('tick', ['a', 'b']);
      const three = tracing.callsite('three', ['a', 'b', 'c']);
      const four = tracing.callsite('four', ['a', 'b', 'c', 'd']);
      const five = tracing.callsite('five', ['a', 'b', 'c', 'd', 'e']);
      const site = tracing.spanSite('site', ['x', 'y']);
      const site3 = tracing.spanSite('site3', ['x', 'y', 'z']);
      const site4 = tracing.spanSite('site4', ['w', 'x', 'y', 'z']);
      const values = [0, -0, 1, -1, 127, 128, -33, 2 ** 31, -(2 ** 31) - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53 + 2, -(2 ** 60), 0.5, NaN, Infinity, -Infinity,
        true, false, undefined, null, '', 'short', 'x'.repeat(40), 'été', '😀', 5n, 2n ** 64n - 1n, -(2n ** 70n), new Uint8Array([1, 2, 3]),
        new TypeError('bad', { cause: new Error('root') }), { k: [1, 'two'] }, [1, 2], Symbol.iterator === 0];
      const throwing = { toJSON() { throw new Error('no json'); }, toString() { throw new Error('no string'); } };
      const out = [];
      for (let i = 0; i < values.length; i++) {
        const v = values[i], w = values[values.length - 1 - i];
        tick.emit(v, w);
        tick.emit(i, v);
        three.emit(v, i, w);
        four.emit(w, v, i, 'mid');
        five.emit(i, v, w, i, v);
        if (i % 5 === 0) tracing.callsite('late' + i, ['v']).emit(v); // announced between slot records
        const s = site.open(v, w);
        tracing.info('inside', { v, i });
        tracing.info('inside ' + (i % 3), { v });
        tracing.warn('été', { v, w, i });
        tracing.info('wide', { a: v, b: w, c: i, d: 1 });
        s.record('y', i);
        s.close();
        site3.inSpan(() => tick.emit(i, true), v, 'z' + i, w);
        site4.inSpan((span) => span.record('w', v), i, v, w, i);
        tracing.inSpan('dyn', { v, w }, () => tracing.debug('deep', { v }));
        tracing.inSpan('dyn', { v, w }, (span) => span.record('v', i));
        const p = tracing.span('plain', { v }); p.enter(); tracing.info('in plain'); p.exit(); p.close();
        const child = tracing.span('child', { v }, { parent: null }); child.enter(); child.exit(); child.close();
        tracing.counter('n', i, { v: String(v) });
      }
      tracing.callsite('throwing part').emit();
      for (const call of [() => tick.emit(throwing, 1), () => tick.emit(1, throwing), () => site.open(1, throwing), () => site3.open(1, 2, throwing),
          () => tracing.info('t', { a: 1, b: throwing }), () => tracing.info(throwing), () => tracing.inSpan('t', { a: throwing }, () => 1),
          () => tracing.info('getter', { get a() { throw new Error('getter'); } })]) {
        try { call(); out.push('wrote'); } catch (e) { out.push(e.message); }
        tick.emit(7, false);
      }
      const a = site.open(1, 2), b = site.open(3, 4);
      b.followsFrom(a); a.close(); b.close();
      out`;
    const slotted = new SdkRealm(true);
    const bytes = new SdkRealm(true);
    try {
      for (const program of [WORKLOAD, MIXED]) {
        const withSlots = slotted.run(program, CONFIG);
        const converted = lastConverter!.converted;
        const withoutSlots = bytes.run(program, { ...CONFIG, slots: false });
        assert.equal(lastConverter!.converted, 0, 'slots off: no slot record');
        assert.ok(converted > 150, `slot records converted: ${converted}`);
        assert.equal(withSlots.error, undefined, JSON.stringify(withSlots.error));
        assert.deepEqual(withSlots.value, withoutSlots.value);
        const records = decode(withSlots.frames);
        const other = decode(withoutSlots.frames);
        // Up to the calls with throwing values, times too; after them without: the byte path
        // reads the clock before it converts a value, the slot path after, so an abandoned
        // record took a clock reading on the byte path only.
        const cut = records.findIndex((e) => e.type === 'newCallSite' && e.name === 'throwing part');
        assert.deepEqual(records.slice(0, cut < 0 ? undefined : cut), other.slice(0, cut < 0 ? undefined : cut));
        assert.deepEqual(timeless(records), timeless(other));
        assert.ok(records.length > 300, `${records.length} records`);
        assert.ok(withSlots.frames.length > 5, 'flushed along the way');
      }
      const mixed = slotted.run(MIXED, CONFIG);
      assert.deepEqual((mixed.value as string[]).slice(0, 8), ['no string', 'no string', 'no string', 'no string', 'no string', 'no string', 'no string', 'getter'], 'each throwing call threw, and wrote nothing');
    } finally {
      slotted.dispose();
      bytes.dispose();
    }
  });

  test("the hello record is FrameWriter.hello's for any clock origin, in every run", () => {
    // The first clock read after __resetClock is 30 ns: the origin is wallMs × 10^6 − 30.
    for (const wallMs of [1700000000000, 9007199254, 4295, 4294, 0]) { // uint64 (beyond 2^53 and below), uint32, negative
      const realm = new SdkRealm({ wallMs });
      try {
        const hello = new FrameWriter();
        hello.hello(1, 'quickjs', '0.1.0', BigInt(wallMs) * 1_000_000n - 30n, PROTOCOL_MINOR);
        const expected = [...hello.finish()];
        for (let run = 0; run < 2; run++) assert.deepEqual(realm.run('', CONFIG).frames.flatMap((f) => [...f.subarray(0, expected.length)]), expected, `Date.now ${wallMs}, run ${run + 1}`);
      } finally {
        realm.dispose();
      }
    }
  });

  test('configure starts over even when the previous run was never drained', () => {
    const reused = new SdkRealm(true);
    const fresh = new SdkRealm(true);
    try {
      const big = { ...CONFIG, flushBytes: 1 << 20 };
      const cut = reused.runUndrained(`tracing.inSpan('left open', { a: 1 }, () => { tracing.callsite('x', ['y']).emit(1); tracing.info('half'); throw new Error('cut'); })`, big);
      assert.deepEqual([cut.frames.length, (cut.error as Error).message], [0, 'cut']);
      assert.deepEqual(concat(reused.run(WORKLOAD, big).frames), concat(fresh.run(WORKLOAD, big).frames));
    } finally {
      reused.dispose();
      fresh.dispose();
    }
  });

  test('what one run leaves in the caches of encoded bytes, a hostile run included, changes no byte of the next run, and stays within its bounds', () => {
    /**
     * Before the workload's own strings (so the next run finds its callsites and messages cached
     * by this one): lookalikes of its callsites (equal to them if a cache key joined parts with a
     * separator), parts that are not strings (a target object, a name whose string
     * changes from one read to the next, a guest-made EventSite whose field names are objects),
     * and a span's field list changed to look like another site's (the workload's 'inner').
     */
    const PRIMING = `
      const fields = tracing.span('inner', { q: 1 }).fields;
      try { fields.shift(); } catch {}
      fields[0] = 'changed'; // ignored: the array is frozen
      tracing.callsite('far', ['a\\0b']).emit(1);
      tracing.span('outer', { 'user\\0n': 1 }).close();
      tracing.info('hello', { 'a\\0b': 1 });
      tracing.span('outer', { user: 1, n: 2 }, { level: 'info', target: 12 }).close();
      // A level that only prints as one is no level: refused at the call, nothing written or cached.
      try { tracing.span('outer', { user: 1, n: 2 }, { level: { toString: () => 'info' } }); throw new Error('accepted'); } catch (e) { if (e.name !== 'TypeError') throw e; }
      let reads = 0; // 'outer' for the site, 'inner' for the span, if the name were read twice
      tracing.span({ toString: () => (reads++ % 2 === 0 ? 'outer' : 'inner') }, { user: 1, n: 2 }).close();
      const EventSite = Object.getPrototypeOf(tracing.callsite('x')).constructor;
      new EventSite('tick', [{ toString: () => 'i' }, 'ok'], 'info', 'guest').emit(1, true);
      new EventSite('tick', ['i', 'ok'], 'info', { toString: () => 'guest' }).emit(2, false);
      try { new EventSite('tick', ['i', 'ok'], { toString: () => 'info' }, 'guest'); throw new Error('accepted'); } catch (e) { if (e.name !== 'TypeError') throw e; }
      ${WORKLOAD};
      [Object.isFrozen(fields), fields.join()]`;
    /** Many distinct strings: callsites, messages and span names past every bound, long ones too. */
    const FLOOD = `
      for (let i = 0; i < 3000; i++) tracing.info('message ' + i, { ['k' + i]: i });
      for (let i = 0; i < 1000; i++) tracing.span('span ' + i, { ['f' + i]: 1 }).close();
      for (let i = 0; i < 300; i++) tracing.callsite('site ' + i, ['a' + i]).emit(i);
      tracing.span('x'.repeat(40000)).close();
      tracing.info('y'.repeat(40000), { v: 1 });`;
    /** Within the entry bounds, but every recent-site list full: 32 event shapes per level, 32 field lists for one span name. */
    const LISTS = `
      for (let i = 0; i < 40; i++) tracing.warn('w', { ['k' + i]: i });
      for (let i = 0; i < 40; i++) tracing.span('many', { ['f' + i]: i }).close();`;
    const reference = new SdkRealm(true);
    const reused = new SdkRealm(true);
    try {
      const expected = concat(reference.run(WORKLOAD, CONFIG).frames);
      const big = { ...CONFIG, flushBytes: 1 << 16 };

      const primed = reused.run(PRIMING, big);
      assert.equal(primed.error, undefined, JSON.stringify(primed.error));
      assert.deepEqual(primed.value, [true, 'q,error'], 'the fields a span exposes are frozen');
      const primedSites = decode(primed.frames).filter((e) => e.type === 'newCallSite');
      const fieldsOf = (name: string, kind: string) => primedSites.filter((s) => s.name === name && s.kind === kind && s.target === 'guest').map((s) => s.fields);
      assert.deepEqual(fieldsOf('far', 'event'), [['a\0b'], ['a', 'b']], 'a lookalike is a callsite of its own');
      assert.deepEqual(fieldsOf('outer', 'span'), [['user\0n', 'error'], ['user', 'n', 'error']]);
      assert.deepEqual(fieldsOf('tick', 'event'), [['i', 'ok']], 'guest-made sites with object parts are the same callsite');
      assert.ok(primedSites.some((s) => s.kind === 'span' && s.name === 'outer' && s.target === '12'), 'a target that is no string is its string');

      const afterPriming = reused.runReadingCaches(WORKLOAD, CONFIG);
      assert.deepEqual(concat(afterPriming.frames), expected, 'after priming: byte for byte what a fresh SDK writes');
      const { now, kept } = afterPriming.caches;
      assert.ok(now.sites > 130 && now.messages > 5, `the caches were kept: ${JSON.stringify(now)}`);
      assert.ok(now.sites <= kept.sites && now.siteBytes <= kept.siteBytes && now.messages <= kept.messages && now.messageBytes <= kept.messageBytes, JSON.stringify(afterPriming.caches));

      for (const [name, filler] of [['flood', FLOOD], ['full lists', LISTS]] as const) {
        const filled = reused.run(filler, big);
        assert.equal(filled.error, undefined, `${name}: ${JSON.stringify(filled.error)}`);
        const next = reused.runReadingCaches(WORKLOAD, CONFIG);
        assert.deepEqual(concat(next.frames), expected, `after ${name}: byte for byte what a fresh SDK writes`);
        const { now, kept } = next.caches;
        for (const key of Object.keys(kept) as Array<keyof CacheSizes>) assert.ok(now[key] <= kept[key], `after ${name}, ${key}: ${now[key]} > ${kept[key]}`);
        if (name === 'flood') assert.deepEqual([now.sites, now.messages], [0, 0], 'past their bounds, the caches start empty');
        else assert.ok(now.sites > 70, 'within their bounds, the sites are kept; only the lists are cut');
        assert.deepEqual(concat(reused.run(WORKLOAD, CONFIG).frames), expected, `after ${name}, and after the workload itself`);
      }

      // The same shapes and span sites in another order, some new ones among them: the kept lists
      // are reordered as the run uses them.
      const shapes = (order: number[]) =>
        order.map((i) => `tracing.info('s', { k${i}: ${i} }); tracing.span('sp', { f${i}: 1 }).close(); tracing.warn('w${i % 3}', { k: ${i} });`).join('\n');
      const forward = shapes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
      const backward = shapes([11, 3, 12, 9, 0, 13, 5, 5, 1, 14, 11, 2, 8]);
      reused.run(forward, CONFIG);
      const fresh = [new SdkRealm(true), new SdkRealm(true)];
      try {
        assert.deepEqual(concat(reused.run(backward, CONFIG).frames), concat(fresh[0]!.run(backward, CONFIG).frames), 'another order');
        assert.deepEqual(concat(reused.run(forward, CONFIG).frames), concat(fresh[1]!.run(forward, CONFIG).frames), 'and back');
      } finally {
        for (const realm of fresh) realm.dispose();
      }
    } finally {
      reference.dispose();
      reused.dispose();
    }
  });

  test('tracing.inSpan writes the bytes of a declared span site: spanSite(name, keys).inSpan(fn, ...values): returning, throwing, closing inside, nested', () => {
    const body = (inSpan: string) => `
      const inSpan = ${inSpan};
      const results = [];
      results.push(inSpan('ok', { a: 1 }, (s) => { tracing.info('in', { s: s.id }); return 7; }));
      for (const thrown of [new TypeError('bad'), 'plain', { toString: () => 'object' }]) {
        try { inSpan('throws', {}, () => { throw thrown; }); } catch (e) { results.push(e === thrown); }
      }
      results.push(inSpan('closes itself', undefined, (s) => { s.close(); tracing.info('after close'); return 'closed'; }));
      results.push(inSpan('outer', { n: 1 }, () => inSpan('inner', { m: 2 }, () => inSpan('quiet', undefined, () => 3))));
      try { inSpan('closes and throws', undefined, (s) => { s.close(); throw new Error('late'); }); } catch (e) { results.push(e.message); }
      results`;
    const flat = new SdkRealm(true);
    const layered = new SdkRealm(true);
    try {
      const a = flat.run(body('tracing.inSpan'), { ...CONFIG, flushBytes: 1 << 20 });
      const b = layered.run(body(`(name, fields, fn) => tracing.spanSite(name, Object.keys(fields ?? {})).inSpan(fn, ...Object.values(fields ?? {}))`), { ...CONFIG, flushBytes: 1 << 20 });
      assert.deepEqual(a.value, [7, true, true, true, 'closed', 3, 'late']);
      assert.deepEqual(b.value, a.value);
      assert.deepEqual(concat(a.frames), concat(b.frames));
    } finally {
      flat.dispose();
      layered.dispose();
    }
  });

  test('a run in another cache scope starts with the caches empty, one in the same scope finds them', () => {
    const realm = new SdkRealm(true);
    const reference = new SdkRealm(true);
    try {
      const expected = concat(reference.run(WORKLOAD, { ...CONFIG, cacheScope: 'tenant b' }).frames);
      realm.run(WORKLOAD, { ...CONFIG, cacheScope: 'tenant a' });
      const same = realm.runReadingCaches(WORKLOAD, { ...CONFIG, cacheScope: 'tenant a' });
      assert.ok(same.caches.now.sites > 100 && same.caches.now.messages > 5, JSON.stringify(same.caches.now));
      const other = realm.runReadingCaches(WORKLOAD, { ...CONFIG, cacheScope: 'tenant b' });
      assert.deepEqual(other.caches.now, { sites: 0, siteBytes: 0, messages: 0, messageBytes: 0, longestList: 0 });
      assert.deepEqual(concat(other.frames), expected);
      assert.equal(realm.runReadingCaches(WORKLOAD, CONFIG).caches.now.sites, 0, 'no scope is a scope of its own');
    } finally {
      realm.dispose();
      reference.dispose();
    }
  });

  test('guest values from the guest realm are encoded as when the guest shares the SDK realm', () => {
    const VALUES = `
      const root = new Error('root cause');
      const mid = new RangeError('middle', { cause: root });
      class AppError extends Error { constructor(m, o) { super(m, o); this.name = 'AppError'; } }
      const cyclic = { a: 1 }; cyclic.self = cyclic;
      const values = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(300).fill(7), new AppError('top', { cause: mid }),
        2n ** 63n, -(2n ** 63n), 2n ** 70n, 5n, NaN, -0, Infinity, 2 ** 53, 1.5, null, undefined, { a: [1, 'x'] }, [1, 2], 'été',
        'x'.repeat(40), Symbol('s'), () => 1, new Date(0), new Uint16Array([1]), new DataView(new ArrayBuffer(2)), cyclic,
        { debug: 'explicit' }, { error: { message: 'explicit' } }, Object.create(Error.prototype)];
      const one = tracing.callsite('one', ['v']);
      const pair = tracing.callsite('pair', ['a', 'b']);
      for (const v of values) {
        one.emit(v); pair.emit(v, v); tracing.info('value', { v });
        const s = tracing.span('holder', { v }); s.record('v', v); s.close();
      }
      try { tracing.inSpan('throws error', {}, () => { throw mid; }); } catch {}
      try { tracing.inSpan('throws string', {}, () => { throw 'plain'; }); } catch {}
      tracing.counter('big', 2n ** 63n - 1n);
      tracing.histogram('nan', NaN, { bytes: new Uint8Array([9]), err: root });`;
    const config = { ...CONFIG, flushBytes: 1 << 20 };
    const realmed = new SdkRealm(true);
    try {
      const own = realmed.run(VALUES, config);
      const shared = runSharedRealm(VALUES, config, true);
      assert.equal(own.error, undefined);
      assert.deepEqual(concat(own.frames), concat(shared.frames), 'byte for byte');
      const events = decode(own.frames);
      const ones = events.filter((e) => e.type === 'newEvent' && e.metadataId === 1).map((e) => (e as { values: [string, Value][] }).values[0]![1]);
      assert.deepEqual(ones.slice(0, 4), [
        new Uint8Array([1, 2, 3]),
        new Uint8Array(0),
        new Uint8Array(300).fill(7),
        { error: { message: 'AppError: top', source: { message: 'RangeError: middle', source: { message: 'Error: root cause' } } } },
      ]);
      assert.deepEqual(ones.slice(4, 9), [2n ** 63n, -(2n ** 63n), { debug: String(2n ** 70n) }, 5, NaN]);
      assert.ok(Object.is(ones[9], -0));
      assert.deepEqual(ones.slice(21, 24), [{ debug: '"1970-01-01T00:00:00.000Z"' }, { debug: '{"0":1}' }, { debug: '{}' }], 'a date, other typed arrays and views stay debug text');
      assert.deepEqual(ones.at(-1), { debug: '{}' }, 'an object that only inherits from Error.prototype is no error');
      const thrown = events.filter((e) => e.type === 'valuesRecorded').slice(-2).map((e) => (e as { values: [string, Value][] }).values);
      assert.deepEqual(thrown, [
        [['error', { error: { message: 'RangeError: middle', source: { message: 'Error: root cause' } } }]],
        [['error', { error: { message: 'Error: plain' } }]],
      ]);
      const metrics = events.filter((e) => e.type === 'metric');
      assert.deepEqual(metrics.map((m) => [m.name, m.value, m.attributes]), [
        ['big', 2n ** 63n - 1n, undefined],
        ['nan', NaN, [['bytes', new Uint8Array([9])], ['err', { error: { message: 'Error: root cause' } }]]],
      ]);
    } finally {
      realmed.dispose();
    }
  });
});

describe('a hardened SDK realm', () => {
  test('everything reachable in it is frozen, and it still runs: promises, generators, typed arrays, maps, classes', () => {
    const realm = new SdkRealm(false);
    try {
      assert.ok(realm.frozen > 500, `froze ${realm.frozen} objects`);
      // Walk the realm as a guest could: the global, the SDK's objects, hidden intrinsics, and
      // every SDK module (a guest reaches them with import() through the realm's Function).
      const walk = `(async () => {
        const modules = await Promise.all(${JSON.stringify(SDK_FILES.map((f) => `sandtrace/${f}`))}.map((m) => import(m)));
        // What lasts from one guest to the next; of the objects a guest makes (spans, sites,
        // iterators), only their prototypes last.
        const made = [tracing.span('x'), tracing.callsite('x'), (async () => {}), (function* () {}), (async function* () {}),
          [][Symbol.iterator](), new Map().entries(), new Set().values(), ''[Symbol.iterator](), /x/[Symbol.matchAll](''), [].values().map((x) => x)];
        const start = [globalThis, tracing, ...modules, ...made.map((o) => Object.getPrototypeOf(o))];
        const seen = new Set(), open = [];
        const visit = (o, path) => {
          if ((typeof o !== 'object' && typeof o !== 'function') || o === null || seen.has(o)) return;
          seen.add(o);
          if (!modules.includes(o) && !Object.isFrozen(o)) open.push(path);
          visit(Object.getPrototypeOf(o), path + '.[[Prototype]]');
          for (const k of Reflect.ownKeys(o)) {
            const d = Object.getOwnPropertyDescriptor(o, k);
            for (const [v, how] of [[d.value, ''], [d.get, '(get)'], [d.set, '(set)']]) visit(v, path + '.' + String(k) + how);
          }
        };
        start.forEach((o, i) => visit(o, 'start[' + i + ']'));
        return [seen.size, open];
      })()`;
      const walked = realm.inSdkRealm(walk);
      assert.equal(walked.error, undefined, JSON.stringify(walked.error));
      const [count, open] = walked.value as [number, string[]];
      assert.ok(count > 500);
      assert.deepEqual(open, [], 'nothing that lasts from one guest to the next is left unfrozen');

      const works = realm.inSdkRealm(`(async () => {
        const m = new Map([[1, 'a']]); m.set(2, 'b');
        const u = new Uint8Array([1, 2, 3]); u.set([9], 1);
        const d = new DataView(new ArrayBuffer(8)); d.setFloat64(0, 2.5);
        class K { x = 1; static s = 2; get y() { return this.x + 1; } }
        const k = new K(); k.x = 5;
        const o = { toString: () => 'own' }; // an own property named like a frozen inherited one
        const e = new TypeError('t', { cause: 1 });
        const r = await Promise.all([Promise.resolve(1), new Promise((res) => queueMicrotask(() => res(2)))]);
        const g = [...(function* () { yield 1; yield 2; })()];
        const a = []; a.push(3, 1, 2); a.sort();
        const pinned = Object.getOwnPropertyDescriptor(Error, 'prepareStackTrace');
        return [m.get(2), [...u], d.getFloat64(0), k.y, K.s, String(o), e.message, e.cause, r, g, a, JSON.stringify({ a: [1] }), 'abc'.replace(/b/, 'x'), [1, 2].map((x) => x * 2),
          typeof e.stack, e.stack.includes('at '), [typeof pinned.value, pinned.writable, Error.stackTraceLimit]];
      })()`);
      assert.deepEqual(works, { value: ['b', [1, 9, 3], 2.5, 6, 2, 'own', 't', 1, [1, 2], [1, 2], [1, 2, 3], '{"a":[1]}', 'axc', [2, 4], 'string', true, ['undefined', false, 10]] });
    } finally {
      realm.dispose();
    }
  });

  test('a hostile guest cannot change the SDK or its realm, and the next guest traces as in a fresh realm', () => {
    const HOSTILE = `
      const results = {};
      const attempt = (name, f) => {
        try { results[name] = f() ?? 'no error'; } catch (e) { results[name] = e.name; }
      };
      const inSdk = (code) => tracing.info.constructor('"use strict"; ' + code)();
      attempt('assign tracing.info', () => { tracing.info = () => {}; });
      attempt('delete tracing.info', () => { delete tracing.info; });
      attempt('add to tracing', () => { tracing.extra = 1; });
      attempt("tracing's prototype", () => { Object.setPrototypeOf(tracing, null); });
      attempt('Span.prototype', () => { Object.getPrototypeOf(tracing.span('x')).enter = () => {}; });
      attempt('EventSite.prototype', () => { Object.getPrototypeOf(tracing.callsite('x')).emit = () => {}; });
      attempt('SpanCallsite.prototype', () => { Object.getPrototypeOf(tracing.spanSite('x')).open = () => {}; });
      attempt('a span site', () => { tracing.spanSite('x', ['a']).fields.push('b'); });
      attempt('the disabled span', () => { tracing.span('quiet', {}, { level: 'trace' }).id = 5; });
      attempt('Uint8Array.prototype.set', () => inSdk('Uint8Array.prototype.set = null'));
      attempt('Map.prototype.get', () => inSdk('Map.prototype.get = null'));
      attempt('Object.prototype.x', () => inSdk('Object.prototype.x = 1'));
      attempt('Math.round', () => inSdk('Math.round = () => 0'));
      attempt('performance.now', () => inSdk('performance.now = () => 0'));
      attempt('globalThis.performance', () => inSdk('globalThis.performance = { now: () => 0 }'));
      attempt('DataView.prototype.setInt32', () => inSdk('DataView.prototype.setInt32 = () => {}'));
      attempt('array iterator', () => inSdk('Object.getPrototypeOf([][Symbol.iterator]()).next = () => ({ done: true })'));
      attempt('Function.prototype.call', () => inSdk('Function.prototype.call = () => 0'));
      attempt('JSON.stringify', () => inSdk('JSON.stringify = () => "x"'));
      attempt('Error.isError', () => inSdk('Error.isError = () => false'));
      attempt('Array.prototype.push', () => inSdk('Object.defineProperty(Array.prototype, "push", { value: () => 0 })'));
      attempt('AsyncFunction.prototype', () => inSdk('(async () => {}).constructor.prototype.x = 1'));
      attempt('a global var', () => inSdk('(0, eval)("var leaked = 1")'));
      // Freezing leaves an accessor's setter callable: these two write engine state, so they are pinned.
      const sdkError = tracing.info.constructor('return Error')();
      attempt('Error.prepareStackTrace', () => { sdkError.prepareStackTrace = () => { tracing.info('planted'); return 'x'; }; });
      attempt('Error.stackTraceLimit', () => { sdkError.stackTraceLimit = 0; });
      attempt('sloppy code', () => tracing.info.constructor('Map.prototype.get = null; Object.prototype.x = 1; return typeof Map.prototype.get + typeof ({}).x')());
      const sdkModule = (name) => tracing.info.constructor('return import("sandtrace/' + name + '")')();
      for (const [name, patch] of [
        ['guest/quickjs/sdk.js', (m) => { m.Span.prototype.close = () => {}; }],
        ['shared/frame-writer.js', (m) => { m.FrameWriter.prototype.hello = () => {}; }],
        ['shared/records.js', (m) => { m.Tag.newEvent = 99; }],
        ['shared/grow-buffer.js', (m) => { m.grownBuffer.x = 1; }],
        ['guest/quickjs/harden.js', (m) => { m.hardenRealm.x = 1; }],
      ]) {
        const m = await sdkModule(name);
        attempt(name, () => patch(m));
      }
      results.hooks = String((await sdkModule('guest/quickjs/sdk.js')).takeHostHooks());
      // Its own realm is the guest's to break; the SDK reads its values' slots, not their prototypes.
      Object.defineProperty(Object.getPrototypeOf(Uint8Array.prototype), 'length', { get: () => 1e6 });
      Object.defineProperty(Object.getPrototypeOf(Uint8Array.prototype), Symbol.toStringTag, { get: () => 'Nope' });
      Error.isError = () => false;
      Object.prototype.toString = () => '[object Nope]';
      tracing.info('still', { bytes: new Uint8Array([1, 2]), err: new Error('e', { cause: new Error('c') }) });
      export { results };`;
    const realm = new SdkRealm(true);
    const fresh = new SdkRealm(true);
    try {
      const hostile = realm.run(HOSTILE, CONFIG, true);
      assert.equal(hostile.error, undefined, JSON.stringify(hostile.error));
      const { results } = hostile.value as { results: Record<string, string> };
      const { 'sloppy code': sloppy, hooks, ...refused } = results;
      assert.equal(sloppy, 'functionundefined', 'sloppy code fails silently: no effect');
      assert.equal(hooks, 'undefined');
      assert.deepEqual(Object.entries(refused).filter(([, r]) => r !== 'TypeError'), [], 'every other attempt threw a TypeError');
      assert.equal(Object.keys(refused).length, 30);
      const still = decode(hostile.frames).filter((e) => e.type === 'newEvent').at(-1) as { values: [string, Value][] };
      assert.deepEqual(still.values, [
        ['message', 'still'],
        ['bytes', new Uint8Array([1, 2])],
        ['err', { error: { message: 'Error: e', source: { message: 'Error: c' } } }],
      ]);

      const next = realm.run(WORKLOAD, CONFIG);
      assert.equal(next.error, undefined);
      assertWorkload(decode(next.frames));
      assert.deepEqual(concat(next.frames), concat(fresh.run(WORKLOAD, CONFIG).frames), 'byte for byte what a realm no hostile guest saw writes');
    } finally {
      realm.dispose();
      fresh.dispose();
    }
  });

  test('declared span sites run in a hardened realm: open, inSpan, close, past six fields, with events inside', () => {
    const realm = new SdkRealm(false);
    try {
      const out = realm.run(
        `const site = tracing.spanSite('handle', ['user', 'n']);
         const wide = tracing.spanSite('wide', ['a', 'b', 'c', 'd', 'e', 'f', 'g'], { level: 'warn', target: 'w' });
         const tick = tracing.callsite('tick', ['i']);
         let caught;
         const r = site.inSpan((s) => { tick.emit(1); s.record('n', 300); return 'ret'; }, 'alice', 2);
         const s = site.open('été', true); tick.emit(2); s.close(); s.close();
         wide.open(1, 2, 3, 4, 5, 6, 7).close();
         wide.inSpan(() => tick.emit(3), 7, 6);
         wide.openValues([9, 8, 7, 6, 5, 4, 3, 2]).close();
         try { site.inSpan(() => { throw new Error('no'); }, 'bob'); } catch (e) { caught = e.message; }
         [r, caught]`,
        { minLevel: 2, flushBytes: 1 << 20, executionId: 'sites' },
      );
      assert.deepEqual(out.value, ['ret', 'no']);
      const events = decode(out.frames);
      const sites = new Map(events.filter((e) => e.type === 'newCallSite').map((s) => [s.id, s]));
      assert.deepEqual(sites.get(1), { type: 'newCallSite', id: 1, kind: 'span', name: 'handle', target: 'guest', level: 'info', fields: ['user', 'n', 'error'] });
      assert.deepEqual(events.filter((e) => e.type !== 'hello' && e.type !== 'newCallSite').map((e) => (e.type === 'newSpan' ? [e.type, e.id, e.entered, sites.get(e.metadataId)!.name, e.values.map(([, v]) => v)] : e.type === 'newEvent' ? [e.type, e.values[0]![1]] : e.type === 'valuesRecorded' ? [e.type, e.id, e.values] : [e.type, (e as { id: number }).id])), [
        ['newSpan', 1, true, 'handle', ['alice', 2]],
        ['newEvent', 1],
        ['valuesRecorded', 1, [['n', 300]]],
        ['spanDropped', 1],
        ['newSpan', 2, true, 'handle', ['été', true]],
        ['newEvent', 2],
        ['spanDropped', 2],
        ['newSpan', 3, true, 'wide', [1, 2, 3, 4, 5, 6, 7]],
        ['spanDropped', 3],
        ['newSpan', 4, true, 'wide', [7, 6, { empty: true }, { empty: true }, { empty: true }, { empty: true }, { empty: true }]],
        ['newEvent', 3],
        ['spanDropped', 4],
        ['newSpan', 5, true, 'wide', [9, 8, 7, 6, 5, 4, 3]],
        ['spanDropped', 5],
        ['newSpan', 6, true, 'handle', ['bob', { empty: true }]],
        ['valuesRecorded', 6, [['error', { error: { message: 'Error: no' } }]]],
        ['spanDropped', 6],
      ]);
      assert.ok(events.every((e) => e.type !== 'spanEntered' && e.type !== 'spanExited'), 'enter and exit are fused into the span records');
    } finally {
      realm.dispose();
    }
  });

  test('the hot paths run in a hardened realm: callsite emit, inSpan, info with fields, metrics', () => {
    const realm = new SdkRealm(false);
    try {
      const out = realm.run(
        `const site = tracing.callsite('tick', ['i', 'ok']);
         const wide = tracing.callsite('wide', ['a', 'b', 'c', 'd', 'e', 'f', 'g']);
         let caught;
         tracing.inSpan('loop', { n: 3 }, () => {
           for (let i = 0; i < 3; i++) { site.emit(i, i === 1); tracing.info('step', { i, label: 'x' + i }); }
           wide.emit(1, 2, 3, 4, 5, 6, 7);
           wide.emitValues([7, 6, 5, 4, 3, 2, 1]);
           try { tracing.inSpan('fails', {}, () => { throw new Error('no'); }); } catch (e) { caught = e.message; }
           tracing.counter('n', 3, { k: 'v' });
           tracing.gauge('g', 1.5);
         });
         caught`,
        { minLevel: 2, flushBytes: 1 << 20, executionId: 'hot' },
      );
      assert.equal(out.value, 'no');
      const events = decode(out.frames);
      const sites = new Map(events.filter((e) => e.type === 'newCallSite').map((s) => [s.id, s.name]));
      const named = events.filter((e) => e.type === 'newEvent').map((e) => [sites.get(e.metadataId), Object.fromEntries(e.values)]);
      assert.deepEqual(named, [
        ['tick', { i: 0, ok: false }],
        ['event', { message: 'step', i: 0, label: 'x0' }],
        ['tick', { i: 1, ok: true }],
        ['event', { message: 'step', i: 1, label: 'x1' }],
        ['tick', { i: 2, ok: false }],
        ['event', { message: 'step', i: 2, label: 'x2' }],
        ['wide', { a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7 }],
        ['wide', { a: 7, b: 6, c: 5, d: 4, e: 3, f: 2, g: 1 }],
      ]);
      const spans = events.filter((e) => e.type === 'newSpan');
      assert.deepEqual(spans.map((s) => [s.id, sites.get(s.metadataId), s.values]), [
        [1, 'loop', [['n', 3]]], // fewer values than fields: error is not recorded yet
        [2, 'fails', []],
      ]);
      assert.deepEqual(events.filter((e) => e.type === 'valuesRecorded').map((r) => [r.id, r.values]), [[2, [['error', { error: { message: 'Error: no' } }]]]]);
      assert.deepEqual(events.flatMap((e) => (e.type === 'spanDropped' ? [e.id] : [])), [2, 1]);
      assert.deepEqual(events.filter((e) => e.type === 'metric').map((m) => [m.instrument, m.name, m.value, m.attributes]), [
        ['counter', 'n', 3, [['k', 'v']]],
        ['gauge', 'g', 1.5, undefined],
      ]);
    } finally {
      realm.dispose();
    }
  });
});

test('hardenRealm refuses what freezing cannot protect (internal slots, unknown setters), and names its path', () => {
  const runtime = newRuntime();
  const vm = runtime.newContext();
  try {
    const tried = evaluate(
      vm,
      `import { hardenRealm } from 'sandtrace/guest/quickjs/harden.js';
       const attempt = (roots) => { try { hardenRealm(roots); return 'hardened'; } catch (e) { return e.name + ': ' + e.message; } };
       let state;
       export const results = [attempt([{ cache: new Map() }]), attempt([{ list: [1, { bytes: new Uint8Array(4) }] }]), attempt([{ when: new Date(0) }]),
         attempt([{ store: { set value(v) { state = v; } } }]), attempt([{ plain: [1, { a: 'b' }], get computed() { return 1; } }])];`,
      true,
    );
    assert.deepEqual((tried.value as { results: string[] }).results, [
      'TypeError: hardenRealm: roots[0].cache is a Map, which freezing does not protect',
      'TypeError: hardenRealm: roots[0].list.1.bytes is a typed array or DataView, which freezing does not protect',
      'TypeError: hardenRealm: roots[0].when is a Date, which freezing does not protect',
      'TypeError: hardenRealm: roots[0].store.value has a setter, which freezing does not disarm',
      'hardened',
    ]);
  } finally {
    vm.dispose();
    runtime.dispose();
  }
});
