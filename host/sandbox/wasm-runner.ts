/**
 * Runs one export of an AssemblyScript module (loaded with @assemblyscript/loader) with the
 * sandtrace imports wired into a receiver.
 *
 * The guest library keeps a small state block in linear memory (committed length, level filter,
 * frame time base) whose address it gives the host on first use. The host writes the level
 * before each call and, after the call — or after a trap or abort, when the instance must never
 * be called again — reads the buffered records straight from memory.
 */
import * as loader from '@assemblyscript/loader';
import { hostNowNs } from '../clock.js';
import type { TerminationCause } from '../receiver/termination.js';
import { Execution, type RunOptions, type RunResult } from './execution.js';
import { readMemoryDeclaration } from './wasm-memory-limits.js';

export interface WasmRunOptions extends RunOptions {
  /** The export to call (default `run`). */
  entry?: string;
  /** Arguments for the export: numbers, bigints, or strings (passed as AssemblyScript strings). */
  args?: Array<number | bigint | boolean | string>;
  /** More imports for the guest, merged with sandtrace's own (`sandtrace`, `env.abort`, `env.seed`). */
  imports?: Record<string, Record<string, unknown>>;
}

const DEFAULTS = { deadlineMs: 5_000, entry: 'run', memoryLimitBytes: 64 << 20 };
const PAGE = 65536;

/** Thrown inside an import to unwind the guest: the host stops it (deadline or cancel). */
class HostStop extends Error {
  constructor(readonly reason: TerminationCause) {
    super(reason.kind);
  }
}

/** Thrown from `env.abort` to unwind the guest after recording where it aborted. */
class GuestAbort extends Error {}

/**
 * @example
 * const wasm = await compileAssemblyScript('plugin.ts');
 * const result = await runWasm(wasm, { entry: 'run', args: ['alice', 1], collector, deadlineMs: 100 });
 */
export async function runWasm(module: Uint8Array, options: WasmRunOptions = {}): Promise<RunResult> {
  const filename = options.filename ?? 'guest.wasm';
  // Refused before anything starts: a module whose memory the host cannot cap does not run.
  const provided = provideMemory(module, options.memoryLimitBytes ?? DEFAULTS.memoryLimitBytes);
  const started = performance.now();
  // Guest time is ns since the run started; the receiver maps it back to wall-clock time.
  const exec = new Execution('wasm', filename, options, hostNowNs());
  const deadline = started + (options.deadlineMs ?? DEFAULTS.deadlineMs);
  const minLevel = Execution.minLevel(options);
  let memory: WebAssembly.Memory | undefined = provided?.memory;
  let state = 0; // address of the guest's state block, once attached
  let buffer = 0;
  let stop: TerminationCause | undefined;

  const check = (nowMs: number): void => {
    exec.tick(nowMs);
    if (options.signal?.aborted) stop ??= { kind: 'host_cancel', message: 'cancelled through the run signal' };
    else if (nowMs > deadline) stop ??= { kind: 'deadline', message: `no return within ${options.deadlineMs ?? DEFAULTS.deadlineMs} ms` };
    if (stop !== undefined) throw new HostStop(stop);
  };
  const view = () => new DataView(memory!.buffer);
  /** Hands the committed records to the receiver and empties the buffer (the frame ends here). */
  const drain = (): void => {
    if (state === 0 || memory === undefined || !inBounds(memory, state, 24)) return;
    const v = view();
    const committed = v.getUint32(state, true);
    if (committed > 0 && inBounds(memory, buffer, committed)) exec.ingest(new Uint8Array(memory.buffer, buffer, committed));
    v.setUint32(state, 0, true);
    v.setFloat64(state + 8, 0, true);
    const dropped = v.getUint32(state + 16, true);
    if (dropped > 0) {
      exec.guestDropped(dropped);
      v.setUint32(state + 16, 0, true);
    }
  };

  let abortCause: TerminationCause | undefined;
  const imports = {
    ...options.imports,
    sandtrace: {
      attach(stateAddr: number, bufferAddr: number): void {
        // May run during instantiation, before the host holds the memory: checked at each use.
        state = stateAddr;
        buffer = bufferAddr;
        if (memory !== undefined && inBounds(memory, state, 24)) view().setInt32(state + 4, minLevel, true);
      },
      flush(ptr: number, length: number): void {
        check(performance.now());
        if (memory !== undefined && ptr === buffer && inBounds(memory, ptr, length)) exec.ingest(new Uint8Array(memory.buffer, ptr, length));
      },
      now(): number {
        const ms = performance.now();
        check(ms);
        return Math.round((ms - started) * 1e6);
      },
    },
    env: {
      ...options.imports?.env,
      abort(msg: number, file: number, line: number, column: number): never {
        abortCause = { kind: 'abort', message: readString(memory, msg) ?? 'abort', file: readString(memory, file) ?? '', line, column };
        throw new GuestAbort();
      },
      seed: () => Date.now(),
    },
  };
  if (provided?.memory !== undefined) ((imports as Record<string, Record<string, unknown>>)[provided.module!] ??= {})[provided.field!] = provided.memory;

  let value: unknown;
  let failure: unknown;
  try {
    const { exports } = await loader.instantiate(module, imports as loader.Imports);
    memory = exports.memory ?? memory;
    const fn = exports[options.entry ?? DEFAULTS.entry];
    if (typeof fn !== 'function') throw new TypeError(`the module has no function export '${options.entry ?? DEFAULTS.entry}'`);
    if (state !== 0 && inBounds(memory!, state, 24)) view().setInt32(state + 4, minLevel, true);
    const pinned: number[] = [];
    const args = (options.args ?? []).map((a) => (typeof a === 'string' ? pinString(exports, a, pinned) : a));
    value = (fn as (...a: unknown[]) => unknown)(...args);
    for (const p of pinned) exports.__unpin(p);
  } catch (e) {
    failure = e;
  }
  // Trapped or not, the memory is readable: take what the guest buffered.
  if (memory === undefined && failure === undefined) failure = new Error('the module exports no memory');
  drain();
  const termination = classify(failure, stop, abortCause, memory, provided?.maxPages);
  const { summary, state: persisted } = exec.finish(termination);
  const result: RunResult = { ok: termination === undefined, summary };
  if (termination === undefined) result.value = value;
  else if (failure instanceof Error && !(failure instanceof HostStop) && !(failure instanceof GuestAbort)) result.error = { name: failure.name, message: failure.message };
  if (persisted !== undefined) result.state = persisted;
  return result;
}

/** Thrown when a module's memory cannot be held to the host's limit. */
export class MemoryLimitError extends Error {
  override name = 'MemoryLimitError';
}

/**
 * The guest's memory, capped at the limit: an imported memory is created here with that
 * maximum; a module that defines its own memory must declare a maximum within the limit.
 */
function provideMemory(bytes: Uint8Array, limitBytes: number): { memory?: WebAssembly.Memory; module?: string; field?: string; maxPages: number } | undefined {
  const decl = readMemoryDeclaration(bytes);
  const limitPages = Math.max(1, Math.floor(limitBytes / PAGE));
  if (decl.kind === 'own' && (decl.maximum === undefined || decl.maximum > limitPages)) {
    throw new MemoryLimitError(`the module defines its own memory with ${decl.maximum === undefined ? 'no maximum' : `a maximum of ${decl.maximum} pages`}; the limit is ${limitPages} pages (compile with --importMemory, or --maximumMemory ${limitPages})`);
  }
  if (decl.kind === 'own') return { maxPages: decl.maximum! };
  if (decl.kind !== 'import') return undefined;
  if (decl.initial > limitPages) throw new MemoryLimitError(`the module needs ${decl.initial} pages to start; the limit is ${limitPages}`);
  const maximum = Math.min(limitPages, decl.maximum ?? limitPages);
  return { memory: new WebAssembly.Memory({ initial: decl.initial, maximum }), module: decl.module!, field: decl.field!, maxPages: maximum };
}

function classify(failure: unknown, stop: TerminationCause | undefined, abortCause: TerminationCause | undefined, memory: WebAssembly.Memory | undefined, maxPages: number | undefined): TerminationCause | undefined {
  if (failure === undefined) return undefined;
  if (stop !== undefined) return stop;
  if (abortCause !== undefined) return abortCause;
  if (failure instanceof WebAssembly.RuntimeError) {
    // AssemblyScript's allocator traps (unreachable) when memory cannot grow enough. Release
    // builds carry no function names, so tell it apart by memory being close to its cap: within
    // one large allocation (max(16 pages, 1/8 of the cap)) of it.
    if (memory !== undefined && maxPages !== undefined && /unreachable/.test(failure.message)) {
      const pages = memory.buffer.byteLength / PAGE;
      if (maxPages - pages <= Math.max(16, maxPages >> 3)) return { kind: 'out_of_memory', message: `trap with memory at ${pages} of ${maxPages} pages: ${failure.message}` };
    }
    return { kind: 'trap', message: failure.message };
  }
  if (failure instanceof RangeError && /call stack/i.test(failure.message)) return { kind: 'stack_overflow', message: failure.message };
  const e = failure instanceof Error ? failure : new Error(String(failure));
  return { kind: 'exception', message: `${e.name}: ${e.message}` };
}

/** Reads an AssemblyScript string (UTF-16, byte length stored just before it) from memory. */
function readString(memory: WebAssembly.Memory | undefined, ptr: number): string | undefined {
  if (memory === undefined || ptr < 4 || ptr >= memory.buffer.byteLength) return undefined;
  const bytes = new DataView(memory.buffer).getUint32(ptr - 4, true);
  const len = Math.min(bytes >>> 1, 4096, (memory.buffer.byteLength - ptr) >>> 1);
  return String.fromCharCode(...new Uint16Array(memory.buffer, ptr, len));
}

/** A string argument, allocated in the guest and pinned so its collector keeps it during the call. */
function pinString(exports: loader.ASUtil & Record<string, unknown>, s: string, pinned: number[]): number {
  if (typeof exports.__newString !== 'function') throw new TypeError('string arguments need a module compiled with --exportRuntime');
  const ptr = exports.__pin(exports.__newString(s));
  pinned.push(ptr);
  return ptr;
}

function inBounds(memory: WebAssembly.Memory, ptr: number, length: number): boolean {
  return ptr > 0 && length >= 0 && ptr + length <= memory.buffer.byteLength;
}
