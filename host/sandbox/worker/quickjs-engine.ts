/**
 * One QuickJS engine inside a worker: its own WebAssembly instance over a capped memory, one
 * long-lived runtime, and the SDK loaded once into a realm of its own. Each guest gets a fresh
 * context in that runtime with the SDK realm's `tracing` as its global, so a run pays for a
 * context (about 0.3 ms, made while the worker is idle when it can be), not for compiling the SDK
 * again (about 3 ms).
 *
 * Why the memory is capped here: quickjs-ng's own memory limit does not hold in this build
 * (`malloc_usable_size` is unavailable, so typed arrays go uncounted). A `WebAssembly.Memory`
 * with a maximum does: allocation past it fails inside the engine. Its `grow` is wrapped so the
 * host knows when that happened, even if the guest caught the resulting error.
 */
import { readFileSync } from 'node:fs';
import variant from '@jitl/quickjs-ng-wasmfile-release-sync';
import { newQuickJSWASMModuleFromVariant, newVariant, type QuickJSContext, type QuickJSHandle, type QuickJSRuntime } from 'quickjs-emscripten-core';
import { packagePath } from '../../package-root.js';
import type { GuestSettings } from '../worker-messages.js';
import { SlotConverter } from './quickjs-slots.js';

const PAGE = 65536;
/** Pages the engine's WebAssembly module declares as its minimum (16 MiB). */
const ENGINE_MIN_PAGES = 256;
/** How many sizes the engine's allocator tries per request before it fails (emscripten's resize loop). */
const RESIZE_ATTEMPTS = 3;
/** Memory kept back from the guest so the SDK's buffer can still be drained after it hit its limit. */
const DRAIN_RESERVE_BYTES = 1 << 20;

// The variant's types describe its CommonJS build; under NodeNext, TypeScript then sees the
// default import as the module object, while at run time the ESM build's default is the variant.
const ngVariant = variant as unknown as Parameters<typeof newQuickJSWASMModuleFromVariant>[0];

/** The SDK's modules (tsc's output under dist/, never a bundle) and the module guests import it as. */
const SDK_FILES = ['guest/quickjs/sdk.js', 'guest/quickjs/harden.js', 'shared/frame-writer.js', 'shared/grow-buffer.js', 'shared/records.js'];
let sdkSources: Map<string, string> | undefined;
function sdkSource(name: string): string | undefined {
  sdkSources ??= new Map(SDK_FILES.map((f) => [`sandtrace/${f}`, readFileSync(packagePath(`dist/${f}`), 'utf8')]));
  return sdkSources.get(name);
}
/** What `import … from 'sandtrace'` gives a guest: the SDK realm's objects, installed as globals. */
const GUEST_MODULE = `export const tracing = globalThis.tracing; export const Span = globalThis.__sandtraceSpan;`;

const BOOT = `
import * as sdk from 'sandtrace/guest/quickjs/sdk.js';
import { hardenRealm } from 'sandtrace/guest/quickjs/harden.js';
const hooks = sdk.takeHostHooks();
globalThis.__boot = { tracing: sdk.tracing, console: sdk.guestConsole, Span: sdk.Span, configure: hooks.configure, drain: hooks.drain, caches: hooks.caches, harden: () => hardenRealm(sdk.realmRoots()) };`;

export class QuickJSEngine {
  /** Set once the engine must not serve another guest; says why. */
  broken: string | undefined;
  /** True from the moment an allocation failed at the cap until the next guest's context is made. */
  hitLimit = false;
  private guestRunning = false;
  /** Pages the engine may grow to while a guest runs: its base plus the guest's limit. */
  private readonly softPages: number;
  private onFlush: ((frame: Uint8Array) => void) | undefined;
  /** A context made ahead, between runs: creating one is most of a run's fixed cost (0.3–0.5 ms). */
  private spare: QuickJSContext | undefined;
  private readonly config: QuickJSHandle;
  private lastSettings: GuestSettings | undefined;
  /** Turns the SDK's slot records into protocol records when it hands its buffers over. */
  private readonly slotConverter = new SlotConverter();
  /** Set while `drain` runs: the hand-over is the run's last frame, kept here instead of flushed. */
  private draining = false;
  private drained: Uint8Array | undefined;
  /**
   * Whether the SDK writes slot records (default) or encodes every record itself, from the next
   * run on: for tests and benches that compare the two.
   */
  slotRecords = true;
  private lastSlotRecords = true;

  private constructor(
    readonly memoryLimitBytes: number,
    readonly memory: WebAssembly.Memory,
    readonly runtime: QuickJSRuntime,
    private readonly sdk: QuickJSContext,
    private readonly tracing: QuickJSHandle,
    private readonly guestConsole: QuickJSHandle,
    private readonly spanClass: QuickJSHandle,
    private readonly configureFn: QuickJSHandle,
    private readonly drainFn: QuickJSHandle,
    private readonly cachesFn: QuickJSHandle,
    flushFn: QuickJSHandle,
    /** Engine memory once the SDK realm was ready: the part no guest is charged for. */
    readonly basePages: number,
  ) {
    this.softPages = basePages + Math.ceil(memoryLimitBytes / PAGE);
    this.config = sdk.newObject();
    sdk.setProp(this.config, 'flush', flushFn);
  }

  /** Creates an engine whose memory is capped at its base plus `memoryLimitBytes` (and a drain reserve). */
  static async create(memoryLimitBytes: number): Promise<QuickJSEngine> {
    const capPages = ENGINE_MIN_PAGES + Math.ceil((memoryLimitBytes + DRAIN_RESERVE_BYTES) / PAGE) + 32; // + room for the SDK realm itself
    const memory = new WebAssembly.Memory({ initial: ENGINE_MIN_PAGES, maximum: capPages });
    const module = await newQuickJSWASMModuleFromVariant(newVariant(ngVariant as never, { wasmMemory: memory }) as typeof ngVariant);
    const runtime = module.newRuntime();
    let engine: QuickJSEngine | undefined;
    // The SDK's files load while the engine boots, before any guest exists; after that no context
    // loads anything but the guests' `sandtrace` (a file loaded later into the SDK realm would not be frozen).
    runtime.setModuleLoader((name) => {
      if (engine === undefined) return sdkSource(name) ?? { error: new Error(`module '${name}' is not part of the SDK`) };
      return name === 'sandtrace' ? GUEST_MODULE : { error: new Error(`module '${name}' is not available in this sandbox`) };
    });
    const sdk = runtime.newContext();
    sdk.unwrapResult(sdk.evalCode(BOOT, 'sandtrace-boot.js', { type: 'module' })).dispose();
    const pending = runtime.executePendingJobs();
    if (pending.error !== undefined) throw new Error(`the SDK did not load: ${JSON.stringify(sdk.dump(pending.error))}`);
    pending.dispose();
    const boot = sdk.getProp(sdk.global, '__boot');
    const take = (key: string) => sdk.getProp(boot, key);
    const tracing = take('tracing');
    const guestConsole = take('console');
    const span = take('Span');
    const configureFn = take('configure');
    const drainFn = take('drain');
    const cachesFn = take('caches');
    const harden = take('harden');
    boot.dispose();
    sdk.unwrapResult(sdk.evalCode('delete globalThis.__boot')).dispose();
    // Freeze the SDK realm: a guest can reach it (tracing.info.constructor), and must not be
    // able to change what the SDK does for the next guest.
    sdk.unwrapResult(sdk.callFunction(harden, sdk.undefined)).dispose();
    harden.dispose();
    const basePages = memory.buffer.byteLength / PAGE;
    let self: QuickJSEngine;
    const flushFn = sdk.newFunction('flush', (...args) => self.handOver(args));
    self = engine = new QuickJSEngine(memoryLimitBytes, memory, runtime, sdk, tracing, guestConsole, span, configureFn, drainFn, cachesFn, flushFn, basePages);
    engine.watchGrowth();
    return engine;
  }

  /**
   * Wraps the memory's `grow` (which the engine's allocator calls) to enforce the guest's share
   * and see failures. The allocator asks for more than it needs and retries smaller
   * (RESIZE_ATTEMPTS sizes per request, 20%, 10% and 5% above the current size, never below what
   * it needs): one refused attempt is not a failure, all of them for one request are.
   */
  private watchGrowth(): void {
    const memory = this.memory;
    const grow = memory.grow.bind(memory);
    let refusals = 0;
    let refusedAtPages = -1;
    const refused = (pages: number): void => {
      if (refusedAtPages !== pages) {
        refusedAtPages = pages;
        refusals = 0;
      }
      if (++refusals >= RESIZE_ATTEMPTS) this.hitLimit = true;
    };
    Object.defineProperty(memory, 'grow', {
      value: (delta: number): number => {
        const pages = memory.buffer.byteLength / PAGE;
        if (this.guestRunning && pages + delta > this.softPages) {
          refused(pages);
          throw new RangeError('the guest reached its memory limit');
        }
        try {
          const before = grow(delta);
          refusals = 0;
          refusedAtPages = -1;
          return before;
        } catch (e) {
          refused(pages);
          throw e;
        }
      },
    });
  }

  /**
   * The SDK hands its buffers over (a flush, or the drain): the frame they make, slot records
   * converted in place, goes to the run's flush (or, while draining, is kept for `drain`). Only
   * the SDK realm holds this function; what the buffers hold is still checked (see quickjs-slots).
   */
  private handOver(args: QuickJSHandle[]): void {
    const frame = this.slotConverter.convertHandOver(this.sdk, args);
    if (frame.length === 0) return;
    // The converter's buffer is reused: the host link copies a frame before it posts it.
    if (this.draining) this.drained = frame.slice();
    else this.onFlush?.(frame);
  }

  /** Slot records converted into protocol records so far, by this engine. */
  slotRecordsConverted(): number {
    return this.slotConverter.converted;
  }

  /** Slot records left out of frames (not valid) since the last call: counted as invalid frames of the run. */
  takeInvalidSlots(): number {
    return this.slotConverter.takeInvalid();
  }

  /** A fresh context for one guest, with `tracing` installed and the SDK configured for this run. */
  newGuestContext(settings: GuestSettings, onFlush: (frame: Uint8Array) => void): QuickJSContext {
    this.onFlush = onFlush;
    this.hitLimit = false;
    this.slotConverter.takeInvalid(); // counted per run
    this.updateConfig(settings);
    const sdk = this.sdk;
    sdk.unwrapResult(sdk.callFunction(this.configureFn, sdk.undefined, this.config)).dispose();
    const vm = this.spare ?? this.newContext();
    this.spare = undefined;
    return vm;
  }

  /**
   * The SDK's config object lives in the SDK realm for the engine's life (no guest can reach it)
   * and only what changed since the last run is written: each write crosses into the engine
   * (about 15 µs), and most runs change nothing but the execution id.
   */
  private updateConfig(settings: GuestSettings): void {
    const sdk = this.sdk;
    const last = this.lastSettings;
    const set = (key: string, value: QuickJSHandle) => {
      sdk.setProp(this.config, key, value);
      value.dispose();
    };
    if (last?.minLevel !== settings.minLevel) set('minLevel', sdk.newNumber(settings.minLevel));
    if (last?.flushBytes !== settings.flushBytes) set('flushBytes', sdk.newNumber(settings.flushBytes));
    set('executionId', sdk.newString(settings.executionId));
    if (last === undefined || last.traceparent !== settings.traceparent) set('traceparent', settings.traceparent === undefined ? sdk.undefined : sdk.newString(settings.traceparent));
    if (last?.firstSpanId !== settings.firstSpanId) set('firstSpanId', sdk.newNumber(settings.firstSpanId));
    if (last === undefined || last.carried.length > 0 || settings.carried.length > 0) set('carried', settings.carried.length === 0 ? sdk.undefined : this.toSdkValue(settings.carried));
    if (last === undefined || last.cacheScope !== settings.cacheScope) set('cacheScope', settings.cacheScope === undefined ? sdk.undefined : sdk.newString(settings.cacheScope));
    if (last === undefined || this.lastSlotRecords !== this.slotRecords) set('slots', this.slotRecords ? sdk.true : sdk.false);
    this.lastSlotRecords = this.slotRecords;
    this.lastSettings = settings;
  }

  /** Makes the next guest's context now, while the worker is idle. */
  prepareSpare(): void {
    if (this.broken === undefined) this.spare ??= this.newContext();
  }

  private newContext(): QuickJSContext {
    const vm = this.runtime.newContext();
    vm.setProp(vm.global, 'tracing', this.tracing);
    vm.setProp(vm.global, 'console', this.guestConsole); // routed to log events at the matching level
    vm.defineProp(vm.global, '__sandtraceSpan', { value: this.spanClass, enumerable: false, configurable: false });
    return vm;
  }

  /** Plain data into the SDK realm (through its own JSON.parse, captured before any guest ran). */
  private toSdkValue(value: unknown): QuickJSHandle {
    return this.sdk.unwrapResult(this.sdk.evalCode(`JSON.parse(${JSON.stringify(JSON.stringify(value))})`));
  }

  /** Guest code runs between these two: only then does the memory cap apply to it. */
  guestStarted(): void {
    this.guestRunning = true;
  }
  guestStopped(): void {
    this.guestRunning = false;
  }

  /**
   * Takes what the SDK buffered, as one frame (slot records converted), or undefined. Throws
   * only if the engine failed. The frame is valid until `release()` is called or the engine
   * converts again (a flush or drain of the next run): copy it to keep it.
   */
  drain(): { frame: Uint8Array | undefined; release(): void } {
    const sdk = this.sdk;
    this.drained = undefined;
    this.draining = true;
    let result;
    try {
      result = sdk.callFunction(this.drainFn, sdk.undefined);
    } finally {
      this.draining = false;
    }
    if (result.error !== undefined) {
      const error = sdk.dump(result.error);
      result.error.dispose();
      throw new Error(`the SDK failed to drain: ${JSON.stringify(error)}`);
    }
    const handle = result.value;
    let frame: Uint8Array | undefined = this.drained; // handed over through the flush (the SDK could not allocate its packed buffer)
    this.drained = undefined;
    try {
      // The SDK's drain returns an ArrayBuffer whatever happened (an empty pack when nothing is
      // left): no typeof first. The frame is the converter's own buffer, not copied (the host
      // link copies it): valid until release() or the engine's next conversion.
      if (frame === undefined) {
        const packed = sdk.getArrayBuffer(handle);
        try {
          const converted = this.slotConverter.convertPacked(packed.value);
          if (converted.length > 0) frame = converted;
        } finally {
          packed.dispose();
        }
      }
    } finally {
      handle.dispose();
    }
    return { frame, release: () => {} };
  }

  /** What the SDK keeps from run to run (its caches of encoded strings), and their bounds. */
  sdkCaches(): { now: { sites: number; messages: number }; kept: { sites: number; messages: number } } {
    const sdk = this.sdk;
    return sdk.unwrapResult(sdk.callFunction(this.cachesFn, sdk.undefined)).consume((h) => sdk.dump(h) as ReturnType<QuickJSEngine['sdkCaches']>);
  }

  /** Pages of engine memory above the base, now. */
  grownPages(): number {
    return this.memory.buffer.byteLength / PAGE - this.basePages;
  }
}
