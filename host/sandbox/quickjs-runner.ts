/**
 * Runs JavaScript in a fresh QuickJS (quickjs-ng) runtime with the sandtrace SDK installed, and
 * wires its frames into a receiver. Every runtime, context and handle made here is disposed
 * before the promise settles, whatever the guest did.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import variant from '@jitl/quickjs-ng-wasmfile-release-sync';
import { newQuickJSWASMModuleFromVariant, type QuickJSContext, type QuickJSHandle, type QuickJSRuntime, type QuickJSWASMModule } from 'quickjs-emscripten-core';
import type { TerminationCause } from '../receiver/termination.js';
import { Execution, type RunOptions, type RunResult } from './execution.js';
import { parseTraceParent } from '../traceparent.js';

export interface QuickJSRunOptions extends RunOptions {
  /** Evaluate as an ES module (default: when the source has top-level import/export). */
  module?: boolean;
  /** The SDK hands its buffer to the host once it holds this many bytes (default 32 KiB). */
  flushBytes?: number;
}

const DEFAULTS = { deadlineMs: 5_000, memoryLimitBytes: 64 << 20, stackLimitBytes: 256 << 10, flushBytes: 32 << 10 };
/** Time the host gives the SDK to hand over its buffer after the guest stopped. */
const DRAIN_BUDGET_MS = 250;
/**
 * Largest QuickJS stack limit that still trips before the WebAssembly stack itself overflows
 * (measured: 384 KiB holds, 448 KiB lets a native RangeError escape evalCode).
 */
const MAX_STACK_BYTES = 384 << 10;
/**
 * How often, at least apart, the interrupt handler samples the guest heap. A sample walks the
 * whole heap (about 330 µs at 20,000 objects), so the gap also grows to 50× the last sample's
 * cost: sampling stays under about 2% of the guest's time.
 */
const MEMORY_SAMPLE_MS = 2;

/** Files of the compiled package that guests may import, under the `sandtrace/` prefix. */
const DIST = fileURLToPath(new URL('../../', import.meta.url));
const GUEST_MODULES = ['guest/quickjs/sdk.js', 'shared/frame-writer.js', 'shared/grow-buffer.js', 'shared/records.js'];
let moduleSources: Map<string, string> | undefined;

function guestModule(name: string): string | undefined {
  if (moduleSources === undefined) {
    moduleSources = new Map(GUEST_MODULES.map((f) => [`sandtrace/${f}`, readFileSync(DIST + f, 'utf8')]));
    moduleSources.set('sandtrace', `export { tracing, Span } from 'sandtrace/guest/quickjs/sdk.js';`);
  }
  return moduleSources.get(name);
}

// The variant's types describe its CommonJS build; under NodeNext, TypeScript then sees the
// default import as the module object, while at run time the ESM build's default is the variant.
const ngVariant = variant as unknown as Parameters<typeof newQuickJSWASMModuleFromVariant>[0];

let quickjs: Promise<QuickJSWASMModule> | undefined;
let engineResets = 0;

/** The QuickJS engine, loaded once per process (and again after a guest broke it, see below). */
export function loadQuickJS(): Promise<QuickJSWASMModule> {
  return (quickjs ??= newQuickJSWASMModuleFromVariant(ngVariant));
}

/** How many times a guest left the shared engine unusable and it was loaded afresh. */
export function quickJSEngineResets(): number {
  return engineResets;
}

/**
 * Frees a context and its runtime. quickjs-emscripten 0.32 can abort inside JS_FreeRuntime after
 * a guest ran out of memory or overflowed its stack (upstream issues #257 and #269); an abort
 * leaves the whole WebAssembly instance unusable, so the engine is dropped and the next run
 * loads a fresh one. Nothing else shares it: a run never yields between creating and freeing.
 */
function disposeSandbox(vm: QuickJSContext, runtime: QuickJSRuntime): void {
  try {
    vm.dispose();
    runtime.dispose();
  } catch (e) {
    if (!(e instanceof Error && e.name === 'RuntimeError')) throw e; // WebAssembly.RuntimeError: the instance aborted
    quickjs = undefined;
    engineResets++;
  }
}

/** Why the host stopped the guest, as decided by the interrupt handler. */
type StopReason = 'deadline' | 'host_cancel' | 'out_of_memory' | undefined;

/**
 * Runs `source` in QuickJS with `tracing` installed (global, and `import { tracing } from 'sandtrace'`).
 *
 * @example
 * const collector = new CaptureCollector();
 * const result = await runQuickJS(`tracing.inSpan('work', { n: 1 }, () => tracing.info('hi')); 42`, { collector, deadlineMs: 100 });
 * result.value;             // 42
 * result.summary.records;   // records received from the guest
 */
export async function runQuickJS(source: string, options: QuickJSRunOptions = {}): Promise<RunResult> {
  const engine = await loadQuickJS();
  const filename = options.filename ?? 'guest.js';
  const memoryLimit = options.memoryLimitBytes ?? DEFAULTS.memoryLimitBytes;
  const exec = new Execution('quickjs', filename, options);
  const runtime = engine.newRuntime();
  // QuickJS's own limit sits above the host's: the guest can catch QuickJS's out-of-memory error,
  // so the host enforces its limit itself, by sampling, and keeps headroom to drain the buffer.
  const hardLimit = memoryLimit + Math.max(1 << 20, memoryLimit >> 2);
  runtime.setMemoryLimit(hardLimit);
  runtime.setMaxStackSize(Math.min(options.stackLimitBytes ?? DEFAULTS.stackLimitBytes, MAX_STACK_BYTES));
  runtime.setModuleLoader((name) => guestModule(name) ?? { error: new Error(`module '${name}' is not available in this sandbox`) });
  const vm = runtime.newContext();
  let hostError: unknown;
  let stop: StopReason;
  try {
    const hooks = installSdk(vm, exec, options, (e) => (hostError ??= e));
    const deadline = Date.now() + (options.deadlineMs ?? DEFAULTS.deadlineMs);
    let nextSample = 0;
    runtime.setInterruptHandler(() => {
      exec.tick();
      const now = performance.now();
      if (options.signal?.aborted) stop = 'host_cancel';
      else if (Date.now() > deadline) stop = 'deadline';
      else if (now >= nextSample) {
        if (memoryUsed(runtime, vm) > memoryLimit) stop = 'out_of_memory';
        const took = performance.now() - now;
        nextSample = now + Math.max(MEMORY_SAMPLE_MS, 50 * took);
      }
      return stop !== undefined;
    });
    let outcome: Outcome;
    try {
      outcome = evaluate(vm, runtime, source, filename, options.module ?? /^\s*(import|export)\b/m.test(source), () => stop);
    } catch (e) {
      // The WebAssembly stack itself overflowed: QuickJS could not turn it into a guest error.
      if (!(e instanceof RangeError)) throw e;
      outcome = { error: { name: 'RangeError', message: 'Maximum call stack size exceeded (engine stack)' }, raw: undefined };
    }
    if (stop === undefined && memoryUsed(runtime, vm) > memoryLimit) stop = 'out_of_memory';
    // Whatever happened, the context is still usable: take what the SDK buffered.
    runtime.setInterruptHandler(((end) => () => Date.now() > end)(Date.now() + DRAIN_BUDGET_MS));
    runtime.setMemoryLimit(hardLimit + (4 << 20));
    drain(vm, hooks.drain, exec);
    hooks.dispose();
    const termination = classify(outcome, stop);
    const { summary, state } = exec.finish(termination);
    const result: RunResult = { ok: termination === undefined, summary };
    if ('value' in outcome) result.value = outcome.value;
    if ('error' in outcome && outcome.error !== undefined) result.error = outcome.error;
    if (state !== undefined) result.state = state;
    if (hostError !== undefined) throw hostError;
    return result;
  } finally {
    disposeSandbox(vm, runtime);
  }
}

interface SdkHooks {
  drain: QuickJSHandle;
  dispose(): void;
}

/** Loads the SDK module, takes its private hooks and configures it. */
function installSdk(vm: QuickJSContext, exec: Execution, options: QuickJSRunOptions, onHostError: (e: unknown) => void): SdkHooks {
  const boot = vm.evalCode(`import * as sdk from 'sandtrace/guest/quickjs/sdk.js'; globalThis.tracing = sdk.tracing; globalThis.__sandtraceHooks = sdk.takeHostHooks();`, 'sandtrace-boot.js', { type: 'module' });
  vm.unwrapResult(boot).dispose();
  vm.runtime.executePendingJobs();
  const hooks = vm.getProp(vm.global, '__sandtraceHooks');
  vm.unwrapResult(vm.evalCode('delete globalThis.__sandtraceHooks')).dispose();
  const configure = vm.getProp(hooks, 'configure');
  const drain = vm.getProp(hooks, 'drain');
  hooks.dispose();

  const flush = vm.newFunction('flush', (frame) => {
    try {
      const bytes = vm.getArrayBuffer(frame);
      try {
        exec.ingest(bytes.value); // a view into guest memory: the receiver copies what it keeps
      } finally {
        bytes.dispose();
      }
    } catch (e) {
      onHostError(e);
    }
  });
  const config = vm.newObject();
  const set = (key: string, value: QuickJSHandle) => {
    vm.setProp(config, key, value);
    value.dispose();
  };
  vm.setProp(config, 'flush', flush);
  flush.dispose();
  set('minLevel', vm.newNumber(Execution.minLevel(options)));
  set('flushBytes', vm.newNumber(options.flushBytes ?? DEFAULTS.flushBytes));
  set('executionId', vm.newString(exec.executionId));
  if (options.traceparent !== undefined && parseTraceParent(options.traceparent) !== undefined) set('traceparent', vm.newString(options.traceparent));
  const carried = Execution.carried(options);
  if (carried.length > 0) {
    const json = vm.newString(JSON.stringify(carried));
    const parse = vm.getProp(vm.global, 'JSON').consume((j) => vm.getProp(j, 'parse'));
    const parsed = vm.callFunction(parse, vm.undefined, json);
    parse.dispose();
    json.dispose();
    set('carried', vm.unwrapResult(parsed));
  }
  vm.unwrapResult(vm.callFunction(configure, vm.undefined, config)).dispose();
  config.dispose();
  configure.dispose();
  return { drain, dispose: () => drain.dispose() };
}

type Outcome = { value: unknown } | { error: { name: string; message: string; stack?: string } | undefined; raw: unknown };

/** Runs the guest to completion (including its promise jobs) and captures its value or error. */
function evaluate(vm: QuickJSContext, runtime: QuickJSRuntime, source: string, filename: string, asModule: boolean, stopped: () => StopReason): Outcome {
  const result = vm.evalCode(source, filename, { type: asModule ? 'module' : 'global' });
  if (result.error !== undefined) return errorOutcome(vm, result.error);
  let handle = result.value;
  if (vm.typeof(handle) === 'object' && isPromise(vm, handle)) {
    for (;;) {
      const state = vm.getPromiseState(handle);
      if (state.type === 'fulfilled') {
        handle.dispose();
        if (state.notAPromise) return { value: vm.dump(state.value) };
        handle = state.value;
        break;
      }
      if (state.type === 'rejected') {
        handle.dispose();
        return errorOutcome(vm, state.error);
      }
      const jobs = runtime.executePendingJobs();
      if (jobs.error !== undefined) {
        handle.dispose();
        return errorOutcome(vm, jobs.error);
      }
      if (jobs.value === 0 && !runtime.hasPendingJob()) {
        handle.dispose();
        const stop = stopped();
        return { error: { name: 'Error', message: stop ?? 'the guest promise never settled' }, raw: undefined };
      }
    }
  }
  const jobs = runtime.executePendingJobs();
  if (jobs.error !== undefined) {
    handle.dispose();
    return errorOutcome(vm, jobs.error);
  }
  try {
    return { value: vm.dump(handle) };
  } finally {
    handle.dispose();
  }
}

function isPromise(vm: QuickJSContext, handle: QuickJSHandle): boolean {
  const state = vm.getPromiseState(handle);
  if (state.type === 'fulfilled' && state.notAPromise) return false;
  if (state.type === 'fulfilled') state.value.dispose();
  if (state.type === 'rejected') state.error.dispose();
  return true;
}

function errorOutcome(vm: QuickJSContext, handle: QuickJSHandle): Outcome {
  const raw: unknown = vm.dump(handle);
  handle.dispose();
  if (typeof raw === 'object' && raw !== null && 'message' in raw) {
    const e = raw as { name?: string; message: string; stack?: string };
    return { error: { name: e.name ?? 'Error', message: String(e.message), ...(e.stack !== undefined && { stack: e.stack }) }, raw };
  }
  return { error: { name: 'Error', message: `uncaught ${typeof raw}: ${String(raw)}` }, raw };
}

/** Names the cause of death, or undefined for a normal end. */
function classify(outcome: Outcome, stop: StopReason): TerminationCause | undefined {
  if (stop === 'out_of_memory') return { kind: 'out_of_memory', message: 'the guest reached its memory limit' };
  if (!('error' in outcome) || outcome.error === undefined) return undefined;
  const { name, message } = outcome.error;
  if (stop === 'host_cancel') return { kind: 'host_cancel', message: 'cancelled through the run signal' };
  if (stop === 'deadline') return { kind: 'deadline', message: 'interrupted at the deadline' };
  if (/out of memory/i.test(message)) return { kind: 'out_of_memory', message: `${name}: ${message}` };
  if (/stack overflow|call stack size/i.test(message)) return { kind: 'stack_overflow', message: `${name}: ${message}` };
  return { kind: 'exception', message: `${name}: ${message}` };
}

/** Bytes the guest's heap uses now. */
function memoryUsed(runtime: QuickJSRuntime, vm: QuickJSContext): number {
  const usage = runtime.computeMemoryUsage();
  try {
    return vm.getProp(usage, 'memory_used_size').consume((h) => vm.getNumber(h));
  } finally {
    usage.dispose();
  }
}

/** Takes the SDK's buffered records. A guest that broke its SDK only loses its own telemetry. */
function drain(vm: QuickJSContext, drainFn: QuickJSHandle, exec: Execution): void {
  let result: ReturnType<QuickJSContext['callFunction']>;
  try {
    result = vm.callFunction(drainFn, vm.undefined);
  } catch {
    return; // the engine itself failed (see disposeSandbox); what was flushed before is kept
  }
  if (result.error !== undefined) {
    result.error.dispose();
    return;
  }
  result.value.consume((buffer) => {
    if (vm.typeof(buffer) !== 'object') return;
    try {
      const bytes = vm.getArrayBuffer(buffer);
      try {
        exec.ingest(bytes.value);
      } finally {
        bytes.dispose();
      }
    } catch {
      // not an ArrayBuffer: nothing to take
    }
  });
}
