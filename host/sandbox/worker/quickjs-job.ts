/**
 * Runs one QuickJS guest inside a worker: a fresh context in the worker's engine, the interrupt
 * handler as the first line of the deadline (the host terminates the worker if it does not
 * hold), host functions answered through the HostLink, and the SDK's buffer drained whatever
 * happened.
 */
import type { QuickJSContext, QuickJSHandle, QuickJSRuntime } from 'quickjs-emscripten-core';
import type { TerminationCause } from '../../receiver/termination.js';
import { ROOM_CALL, StopCode, type GuestError, type JobOutcome, type QuickJSJob } from '../worker-messages.js';
import type { HostLink } from './host-link.js';
import { QuickJSEngine } from './quickjs-engine.js';

/** Time the SDK gets to hand over its buffer after the guest stopped. */
const DRAIN_BUDGET_MS = 250;
/**
 * Largest QuickJS stack limit that still trips before the WebAssembly stack itself overflows
 * (measured: 384 KiB holds, 448 KiB lets a native RangeError escape evalCode).
 */
const MAX_STACK_BYTES = 384 << 10;
/**
 * Largest guest value that crosses to the host (the result, a host function's arguments), in
 * characters of JSON: a guest must not be able to fill the worker's own heap with one value.
 */
const MAX_VALUE_CHARS = 1 << 20;
/** An engine that grew this far above its base is retired after the run, so a worker does not keep it. */
const RETAIN_BYTES = 32 << 20;

let engine: QuickJSEngine | undefined;

/** The worker's engine, made anew when the memory limit differs or the last one broke. */
async function engineFor(memoryLimitBytes: number): Promise<QuickJSEngine> {
  if (engine === undefined || engine.broken !== undefined || engine.memoryLimitBytes !== memoryLimitBytes) {
    engine = undefined; // the old instance and its memory go with the last reference
    engine = await QuickJSEngine.create(memoryLimitBytes);
  }
  return engine;
}

/** Called when the worker is idle after a job: the next QuickJS guest then starts sooner. */
export function prepareNextRun(): void {
  engine?.prepareSpare();
}

/** Why the run stopped early; `late`: it returned, but after its deadline. */
type Stop = 'deadline' | 'late' | 'host_cancel' | 'out_of_memory' | undefined;
type Outcome = { value: unknown } | { error: GuestError | undefined };

export async function runQuickJSJob(job: QuickJSJob, link: HostLink): Promise<JobOutcome> {
  const e = await engineFor(job.memoryLimitBytes);
  const runtime = e.runtime;
  const deadlineAt = link.guestStarting() + job.deadlineMs;
  let stop: Stop;
  const stopNow = (): boolean => {
    if (stop !== undefined) return true;
    const code = link.stopCode();
    if (code === StopCode.HOST_CANCEL) stop = 'host_cancel';
    else if (code === StopCode.DEADLINE || performance.now() > deadlineAt) stop = 'deadline';
    else if (e.hitLimit) stop = 'out_of_memory';
    return stop !== undefined;
  };
  // With backpressure the guest waits for room on the host before each frame; a stop ends the wait.
  const flush = job.waitForRoom
    ? (frame: Uint8Array) => {
        link.call(ROOM_CALL, [frame.byteLength, deadlineAt - performance.now()], deadlineAt);
        link.postFrame(frame);
      }
    : (frame: Uint8Array) => link.postFrame(frame);
  const vm = e.newGuestContext(job.settings, flush);
  let outcome: Outcome;
  try {
    installHostFunctions(vm, job.hostFunctions, link, deadlineAt, stopNow);
    runtime.setMaxStackSize(Math.min(job.stackLimitBytes, MAX_STACK_BYTES));
    runtime.setInterruptHandler(stopNow);
    e.guestStarted();
    try {
      outcome = evaluate(vm, runtime, job.source, job.filename, job.module, () => stop);
    } catch (err) {
      // The WebAssembly stack itself overflowed: QuickJS could not turn it into a guest error.
      if (!(err instanceof RangeError)) throw err;
      outcome = { error: { name: 'RangeError', message: 'Maximum call stack size exceeded (engine stack)' } };
    } finally {
      e.guestStopped();
      link.guestReturned();
    }
    if (stop === undefined && e.hitLimit) stop = 'out_of_memory';
    // A guest whose last native call ended inside the grace returned, but after its deadline.
    if (stop === undefined && performance.now() > deadlineAt) stop = 'late';
    // Whatever happened, the context is still usable: take what the SDK buffered.
    const drainEnd = performance.now() + DRAIN_BUDGET_MS;
    runtime.setInterruptHandler(() => performance.now() > drainEnd);
    const drained = e.drain();
    try {
      if (drained.frame !== undefined) {
        // The last frame waits for room too (a guest that was stopped does not wait: the call returns at once).
        if (job.waitForRoom && stop === undefined) link.call(ROOM_CALL, [drained.frame.byteLength, deadlineAt - performance.now()], deadlineAt);
        link.finalFrame(drained.frame);
      }
    } finally {
      drained.release();
    }
  } catch (err) {
    // The engine itself failed (a WebAssembly abort inside QuickJS): it serves no other guest.
    e.broken = `engine failure: ${(err as Error).message}`;
    throw err;
  } finally {
    runtime.removeInterruptHandler();
    if (e.broken === undefined) {
      if (runtime.hasPendingJob()) e.broken = 'the guest left promise jobs behind';
      vm.dispose();
    }
  }
  const termination = classify(outcome, stop);
  const result: JobOutcome = termination === undefined ? {} : { termination };
  // Slot records the SDK's buffers held that made no sense (only a guest forging them writes those).
  const invalidSlots = e.takeInvalidSlots();
  if (invalidSlots > 0) result.invalidFrames = invalidSlots;
  if ('value' in outcome) result.value = outcome.value;
  else if (outcome.error !== undefined) result.error = outcome.error;
  // quickjs-emscripten can abort while freeing a runtime after an out-of-memory or a stack
  // overflow (upstream issues #257, #269), and engine memory never shrinks: start afresh.
  if (termination?.kind === 'out_of_memory' || termination?.kind === 'stack_overflow') e.broken = termination.kind;
  else if (e.grownPages() * 65536 > RETAIN_BYTES) e.broken = 'engine memory grew past what a worker keeps';
  if (e.broken !== undefined) result.retire = e.broken;
  return result;
}

/**
 * Host functions as guest globals; each call waits for the host thread's answer. A call cut
 * short by the deadline or the signal records the stop (`stopNow`), so the run ends with that
 * cause even if the guest catches the error it gets.
 */
function installHostFunctions(vm: QuickJSContext, names: string[], link: HostLink, deadlineAt: number, stopNow: () => boolean): void {
  for (const name of names) {
    const fn = vm.newFunction(name, (...args) => {
      const plain: unknown[] = [];
      for (const a of args) {
        const p = plainValue(vm, a);
        if (!p.ok) return { error: vm.newError(`argument ${plain.length} of ${name}: ${p.message}`) };
        plain.push(p.value);
      }
      const answer = link.call(name, plain, deadlineAt);
      if ('stopped' in answer) {
        stopNow();
        return { error: vm.newError('the host stopped this guest') };
      }
      if ('error' in answer) return { error: vm.newError(answer.error) };
      return toGuest(vm, answer.value, 0);
    });
    vm.setProp(vm.global, name, fn);
    fn.dispose();
  }
}

/** Plain data from the host into the guest's own realm. */
function toGuest(vm: QuickJSContext, value: unknown, depth: number): QuickJSHandle {
  if (depth > 64) throw new TypeError('a host function returned a value nested deeper than 64 levels');
  switch (typeof value) {
    case 'undefined':
      return vm.undefined;
    case 'boolean':
      return value ? vm.true : vm.false;
    case 'number':
      return vm.newNumber(value);
    case 'string':
      return vm.newString(value);
    case 'bigint':
      return vm.newBigInt(value);
  }
  if (value === null) return vm.null;
  if (Array.isArray(value)) {
    const arr = vm.newArray();
    value.forEach((v, i) => toGuest(vm, v, depth + 1).consume((h) => vm.setProp(arr, i, h)));
    return arr;
  }
  if (value instanceof Uint8Array) return vm.newArrayBuffer(value.slice().buffer);
  if (typeof value === 'object') {
    const obj = vm.newObject();
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) toGuest(vm, v, depth + 1).consume((h) => vm.setProp(obj, k, h));
    return obj;
  }
  throw new TypeError(`a host function returned a ${typeof value}, which cannot cross to the guest`);
}

/** Runs the guest to completion (including its promise jobs) and captures its value or error. */
function evaluate(vm: QuickJSContext, runtime: QuickJSRuntime, source: string, filename: string, asModule: boolean, stopped: () => Stop): Outcome {
  const result = vm.evalCode(source, filename, { type: asModule ? 'module' : 'global' });
  if (result.error !== undefined) return errorOutcome(vm, result.error);
  let handle = result.value;
  if (vm.typeof(handle) === 'object' && isPromise(vm, handle)) {
    for (;;) {
      const state = vm.getPromiseState(handle);
      if (state.type === 'fulfilled') {
        handle.dispose();
        if (state.notAPromise) return resultOutcome(vm, state.value);
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
        return { error: { name: 'Error', message: stop ?? 'the guest promise never settled' } };
      }
    }
  }
  const jobs = runtime.executePendingJobs();
  if (jobs.error !== undefined) {
    handle.dispose();
    return errorOutcome(vm, jobs.error);
  }
  try {
    return resultOutcome(vm, handle);
  } finally {
    handle.dispose();
  }
}

function resultOutcome(vm: QuickJSContext, handle: QuickJSHandle): Outcome {
  const p = plainValue(vm, handle);
  return p.ok ? { value: p.value } : { error: { name: 'RangeError', message: `the guest's result ${p.message}` } };
}

/**
 * A guest value as plain host data, through JSON (the guest's own `JSON.stringify`, so a guest
 * that replaced it only changes its own result), refused past MAX_VALUE_CHARS before the host
 * copies it out of the engine.
 */
function plainValue(vm: QuickJSContext, handle: QuickJSHandle): { ok: true; value: unknown } | { ok: false; message: string } {
  const type = vm.typeof(handle);
  if (type === 'string') {
    const length = vm.getProp(handle, 'length').consume((h) => vm.getNumber(h));
    return length > MAX_VALUE_CHARS ? { ok: false, message: `is a string of ${length} characters; at most ${MAX_VALUE_CHARS} cross to the host` } : { ok: true, value: vm.getString(handle) };
  }
  if (type === 'symbol' || type === 'function') return { ok: true, value: undefined }; // nothing of them can cross (as JSON drops them)
  if (type !== 'object') return { ok: true, value: vm.dump(handle) }; // numbers, bigints, booleans, undefined: small
  const stringify = vm.getProp(vm.global, 'JSON').consume((json) => vm.getProp(json, 'stringify'));
  const result = vm.callFunction(stringify, vm.undefined, handle);
  stringify.dispose();
  if (result.error !== undefined) {
    const e = vm.dump(result.error) as { message?: unknown } | undefined;
    result.error.dispose();
    return { ok: false, message: `cannot be serialized: ${String(e?.message ?? e)}` };
  }
  return result.value.consume((json) => {
    if (vm.typeof(json) !== 'string') return { ok: true, value: undefined };
    const length = vm.getProp(json, 'length').consume((h) => vm.getNumber(h));
    if (length > MAX_VALUE_CHARS) return { ok: false, message: `is ${length} characters of JSON; at most ${MAX_VALUE_CHARS} cross to the host` };
    return { ok: true, value: JSON.parse(vm.getString(json)) as unknown };
  });
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
    return { error: { name: String(e.name ?? 'Error'), message: String(e.message), ...(typeof e.stack === 'string' && { stack: e.stack }) } };
  }
  return { error: { name: 'Error', message: `uncaught ${typeof raw}: ${String(raw)}` } };
}

/** Names the cause of death, or undefined for a normal end. */
function classify(outcome: Outcome, stop: Stop): TerminationCause | undefined {
  if (stop === 'out_of_memory') return { kind: 'out_of_memory', message: 'the guest reached its memory limit' };
  // Before the guest's own outcome: a guest that caught the error of a host call cut short by
  // the stop, and returned, was still stopped.
  if (stop === 'host_cancel') return { kind: 'host_cancel', message: 'cancelled through the run signal' };
  if (stop === 'deadline') return { kind: 'deadline', message: 'interrupted at the deadline' };
  if (stop === 'late') return { kind: 'deadline', message: 'returned after its deadline' };
  if (!('error' in outcome) || outcome.error === undefined) return undefined;
  const { name, message } = outcome.error;
  if (/out of memory/i.test(message)) return { kind: 'out_of_memory', message: `${name}: ${message}` };
  if (/stack overflow|call stack size/i.test(message)) return { kind: 'stack_overflow', message: `${name}: ${message}` };
  return { kind: 'exception', message: `${name}: ${message}` };
}
