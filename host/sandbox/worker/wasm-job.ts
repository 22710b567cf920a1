/**
 * Runs one export of a WebAssembly guest inside a worker, with the sandtrace imports.
 *
 * The guest library keeps a small state block in linear memory (committed length, level filter,
 * frame time base, drop count, first span id) whose address it gives the host on first use. The
 * worker writes the level and the first span id before the call and, after the call — or after a
 * trap or abort, when the instance must never be called again — reads the buffered records
 * straight from memory.
 *
 * The imports check the stop word at every crossing and throw to unwind the guest. A guest can
 * catch that (WebAssembly exception handling is on in Node 20), which is why this is only the
 * first line: the host terminates the worker when the guest does not return in time.
 */
import type { TerminationCause } from '../../receiver/termination.js';
import { ROOM_CALL, StopCode, type JobOutcome, type WasmJob } from '../worker-messages.js';
import type { HostLink } from './host-link.js';

const PAGE = 65536;
/**
 * The guest's state block (shared/PROTOCOL.md, 5b), little-endian:
 *   +0  u32  committed bytes of records in the buffer      +4  i32  minimum level (host writes)
 *   +8  f64  time base of the current frame (host zeroes)   +16 u32  records the guest dropped
 *   +20 u32  attached flag (guest)
 *   +24 u32  first span id the execution may allocate (host writes; only to a block the guest
 *            declared at least 28 bytes long: the library's block is 32)
 *   +28 u32  reserved
 * Modules built before the block grew pass three arguments to `attach` and have 24 bytes: the
 * host reads and writes nothing past +24 unless the guest says its block reaches that far.
 */
const STATE_BYTES = 24;
/** Size of a block with the first span id (+24), as the guest declares it in `attach`. */
const STATE_BYTES_WITH_FIRST_SPAN = 28;
/** Longest name or target `sandtrace.resume` reads, in UTF-16 code units (longer: no match). */
const MAX_RESUME_NAME_UNITS = 4096;
/** Longest panic message or file `sandtrace.panic` reads, in bytes (longer: cut there). */
const MAX_PANIC_BYTES = 16384;

/** Thrown inside an import to unwind the guest: the host stops it (deadline or cancel). */
class HostStop extends Error {
  constructor(readonly reason: TerminationCause) {
    super(reason.kind);
  }
}

/** Thrown from `env.abort` to unwind the guest after recording where it aborted. */
class GuestAbort extends Error {}

export async function runWasmJob(job: WasmJob, link: HostLink): Promise<JobOutcome> {
  const started = link.guestStarting();
  const deadlineAt = started + job.deadlineMs;
  // This thread's performance.now() at the guest's time 0 (the host chose it as unix ns).
  const zero = Number(job.clockOriginNs) / 1e6 - performance.timeOrigin;
  const plan = job.memory;
  let memory: WebAssembly.Memory | undefined = plan.kind === 'import' ? new WebAssembly.Memory({ initial: plan.initial, maximum: plan.maximum }) : undefined;
  let state = 0; // address of the guest's state block, once attached
  let stateBytes = STATE_BYTES; // its size, as the guest declared it (older guests: 24)
  let buffer = 0;
  let stop: TerminationCause | undefined;

  const check = (nowMs: number): void => {
    if (stop === undefined) {
      const code = link.stopCode();
      if (code === StopCode.HOST_CANCEL) stop = { kind: 'host_cancel', message: 'cancelled through the run signal' };
      else if (code === StopCode.DEADLINE || nowMs > deadlineAt) stop = { kind: 'deadline', message: `no return within ${job.deadlineMs} ms` };
    }
    if (stop !== undefined) throw new HostStop(stop);
  };
  const view = () => new DataView(memory!.buffer);
  /** Writes what the host gives the guest into its state block: the level, and the first span id where the block has it. */
  const writeSettings = (): void => {
    if (state === 0 || memory === undefined || !inBounds(memory, state, stateBytes)) return;
    const v = view();
    v.setInt32(state + 4, job.minLevel, true);
    if (stateBytes >= STATE_BYTES_WITH_FIRST_SPAN) v.setUint32(state + 24, Math.min(job.firstSpanId, 0xffff_ffff), true); // the guest's ids are u32
  };
  /** Hands the committed records to the host with `done` and empties the buffer (the frame ends here). */
  const drain = (): void => {
    if (state === 0 || memory === undefined || !inBounds(memory, state, STATE_BYTES)) return;
    const v = view();
    const committed = v.getUint32(state, true);
    const dropped = v.getUint32(state + 16, true);
    const bytes = committed > 0 && inBounds(memory, buffer, committed) ? new Uint8Array(memory.buffer, buffer, committed) : new Uint8Array(0);
    if (job.waitForRoom && bytes.length > 0 && stop === undefined) link.call(ROOM_CALL, [bytes.length, deadlineAt - performance.now()], deadlineAt); // the last frame waits for room too
    link.finalFrame(bytes, dropped);
    v.setUint32(state, 0, true);
    v.setFloat64(state + 8, 0, true);
    v.setUint32(state + 16, 0, true);
  };

  let abortCause: TerminationCause | undefined;
  let invalidFrames = 0;
  const imports: Record<string, Record<string, unknown>> = {};
  for (const [module, name] of job.hostImports) (imports[module] ??= {})[name] = hostImport(link, `${module}.${name}`, deadlineAt, () => check(performance.now()));
  imports.sandtrace = {
    attach(stateAddr: number, bufferAddr: number, _capacity: number, declaredBytes?: number): void {
      // May run during instantiation, before the worker holds the memory: checked at each use.
      state = stateAddr;
      buffer = bufferAddr;
      // Older guests pass three arguments (undefined here): a 24-byte block, nothing written past it.
      stateBytes = typeof declaredBytes === 'number' && declaredBytes >= STATE_BYTES_WITH_FIRST_SPAN ? STATE_BYTES_WITH_FIRST_SPAN : STATE_BYTES;
      writeSettings();
    },
    flush(ptr: number, length: number): void {
      check(performance.now());
      if (memory !== undefined && ptr === buffer && inBounds(memory, ptr, length)) {
        if (job.waitForRoom) {
          link.call(ROOM_CALL, [length, deadlineAt - performance.now()], deadlineAt); // backpressure: wait for room on the host first
          check(performance.now()); // a stop during the wait unwinds the guest
        }
        link.postFrame(new Uint8Array(memory.buffer, ptr, length));
      }
      else invalidFrames++; // not the buffer it attached, or outside memory: counted, never read
    },
    now(): number {
      const ms = performance.now();
      check(ms);
      return ms > zero ? Math.round((ms - zero) * 1e6) : 0;
    },
    resume(namePtr: number, nameBytes: number, targetPtr: number, targetBytes: number): number {
      check(performance.now());
      // Any pointer or length a guest passes: outside memory, or too long to be a name, is no match.
      const name = readUtf16(memory, namePtr, nameBytes);
      const target = readUtf16(memory, targetPtr, targetBytes);
      if (name === undefined || target === undefined) return 0;
      for (const c of job.carried) if (c.name === name && c.target === target) return c.id;
      return 0;
    },
    // As resume, with UTF-8 texts (Rust, C); a target pointer of 0 matches any target.
    resume_utf8(namePtr: number, nameBytes: number, targetPtr: number, targetBytes: number): number {
      check(performance.now());
      const name = readUtf8(memory, namePtr, nameBytes, MAX_RESUME_NAME_UNITS);
      const anyTarget = targetPtr === 0;
      const target = anyTarget ? '' : readUtf8(memory, targetPtr, targetBytes, MAX_RESUME_NAME_UNITS);
      if (name === undefined || target === undefined) return 0;
      for (const c of job.carried) if (c.name === name && (anyTarget || c.target === target)) return c.id;
      return 0;
    },
    // A guest that is about to trap says why (Rust's panic hook): the cause, with its location.
    panic(msgPtr: number, msgBytes: number, filePtr: number, fileBytes: number, line: number, column: number): never {
      const message = readUtf8(memory, msgPtr, msgBytes, MAX_PANIC_BYTES, true) ?? 'panic';
      const file = readUtf8(memory, filePtr, fileBytes, MAX_PANIC_BYTES, true);
      abortCause = { kind: 'abort', message: `panicked: ${message}` };
      if (file !== undefined && file !== '') Object.assign(abortCause, { file, line: line >>> 0, column: column >>> 0 });
      throw new GuestAbort();
    },
  };
  imports.env = {
    // AssemblyScript's trace(), unless the host gives one: guest output goes through the sandtrace library.
    trace: () => {},
    ...imports.env,
    abort(msg: number, file: number, line: number, column: number): never {
      abortCause = { kind: 'abort', message: readString(memory, msg) ?? 'abort', file: readString(memory, file) ?? '', line, column };
      throw new GuestAbort();
    },
    seed: () => Date.now(),
  };
  if (plan.kind === 'import') (imports[plan.module] ??= {})[plan.field] = memory;

  let value: unknown;
  let failure: unknown;
  try {
    // Instantiated directly: the module is compiled already (compileWasm), and the AssemblyScript
    // loader's wrapping of every export costs more than the instantiation itself.
    imports.Math ??= Math as unknown as Record<string, unknown>;
    const exports = new WebAssembly.Instance(job.module, imports as WebAssembly.Imports).exports as GuestExports;
    memory = exports.memory ?? memory;
    const fn = exports[job.entry];
    if (typeof fn !== 'function') throw new TypeError(`the module has no function export '${job.entry}'`);
    writeSettings(); // attached during instantiation, before the worker held the memory
    const pinned: number[] = [];
    const args = job.args.map((a) => (typeof a === 'string' ? pinString(exports, memory!, a, pinned) : a));
    // AssemblyScript exports with optional parameters read how many arguments were passed.
    if (typeof exports.__setArgumentsLength === 'function') exports.__setArgumentsLength(args.length);
    value = (fn as (...a: unknown[]) => unknown)(...args);
    for (const p of pinned) exports.__unpin!(p);
  } catch (e) {
    failure = e;
  }
  link.guestReturned();
  // A guest that returned after its deadline without crossing to the host meanwhile overran it all the same.
  if (stop === undefined && performance.now() > deadlineAt) stop = { kind: 'deadline', message: `returned after its ${job.deadlineMs} ms deadline` };
  // Trapped or not, the memory is readable: take what the guest buffered.
  if (memory === undefined && failure === undefined) failure = new Error('the module exports no memory');
  drain();
  const termination = classify(failure, stop, abortCause, memory, plan.maximum);
  const outcome: JobOutcome = termination === undefined ? {} : { termination };
  if (invalidFrames > 0) outcome.invalidFrames = invalidFrames;
  if (termination === undefined) outcome.value = value;
  else if (failure instanceof Error && !(failure instanceof HostStop) && !(failure instanceof GuestAbort)) outcome.error = { name: failure.name, message: failure.message };
  return outcome;
}

/** An import answered by a host function on the host thread; numbers and bigints cross. */
function hostImport(link: HostLink, name: string, deadlineAt: number, checkStop: () => void): (...args: unknown[]) => unknown {
  return (...args: unknown[]) => {
    const answer = link.call(name, args, deadlineAt);
    if ('stopped' in answer) checkStop(); // throws HostStop (deadline, or the host's stop)
    if ('error' in answer) throw new Error(answer.error);
    return 'value' in answer ? answer.value : undefined;
  };
}

function classify(failure: unknown, stop: TerminationCause | undefined, abortCause: TerminationCause | undefined, memory: WebAssembly.Memory | undefined, maxPages: number): TerminationCause | undefined {
  // The stop is thrown from an import: a guest that catches it (catch_all) and returns was still stopped.
  if (stop !== undefined) return stop;
  if (failure === undefined) return undefined;
  if (abortCause !== undefined) return abortCause;
  if (failure instanceof WebAssembly.RuntimeError) {
    // AssemblyScript's allocator traps (unreachable) when memory cannot grow enough. Release
    // builds carry no function names, so tell it apart by memory being close to its cap: within
    // one large allocation (max(16 pages, 1/8 of the cap)) of it.
    if (memory !== undefined && /unreachable/.test(failure.message)) {
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

/**
 * Reads `bytes` bytes of UTF-16LE text at `ptr` (a guest's i32 arguments, so any value at all):
 * undefined when the range is not inside memory or longer than MAX_RESUME_NAME_UNITS.
 */
function readUtf16(memory: WebAssembly.Memory | undefined, ptr: number, bytes: number): string | undefined {
  if (memory === undefined || !Number.isInteger(ptr) || !Number.isInteger(bytes)) return undefined;
  const start = ptr >>> 0;
  const length = bytes >>> 0;
  if (length % 2 !== 0 || length > MAX_RESUME_NAME_UNITS * 2 || start + length > memory.buffer.byteLength) return undefined;
  const units = new Uint8Array(memory.buffer, start, length);
  let s = '';
  for (let i = 0; i < length; i += 2) s += String.fromCharCode(units[i]! | (units[i + 1]! << 8));
  return s;
}

/**
 * Reads `bytes` bytes of UTF-8 at `ptr` (a guest's i32 arguments): undefined when the range is
 * not inside memory, or longer than `max` bytes (or, with `cut`, only its first `max` bytes).
 */
function readUtf8(memory: WebAssembly.Memory | undefined, ptr: number, bytes: number, max: number, cut = false): string | undefined {
  if (memory === undefined || !Number.isInteger(ptr) || !Number.isInteger(bytes)) return undefined;
  const start = ptr >>> 0;
  let length = bytes >>> 0;
  if (start + length > memory.buffer.byteLength) return undefined;
  if (length > max) {
    if (!cut) return undefined;
    length = max;
  }
  return new TextDecoder().decode(new Uint8Array(memory.buffer, start, length));
}

/** What the worker uses of a guest's exports (AssemblyScript's runtime ones with --exportRuntime). */
type GuestExports = Record<string, unknown> & {
  memory?: WebAssembly.Memory;
  __new?: (size: number, classId: number) => number;
  __pin?: (ptr: number) => number;
  __unpin?: (ptr: number) => void;
  __setArgumentsLength?: (n: number) => void;
};

/** AssemblyScript's class id of `String`. */
const STRING_CLASS_ID = 2;

/** A string argument, allocated in the guest as an AssemblyScript string (UTF-16) and pinned for the call. */
function pinString(exports: GuestExports, memory: WebAssembly.Memory, s: string, pinned: number[]): number {
  if (exports.__new === undefined || exports.__pin === undefined || exports.__unpin === undefined) throw new TypeError('string arguments need a module compiled with --exportRuntime');
  const ptr = exports.__pin(exports.__new(s.length << 1, STRING_CLASS_ID));
  pinned.push(ptr);
  const units = new Uint16Array(memory.buffer, ptr, s.length); // after __new: it may have grown the memory
  for (let i = 0; i < s.length; i++) units[i] = s.charCodeAt(i);
  return ptr;
}

function inBounds(memory: WebAssembly.Memory, ptr: number, length: number): boolean {
  return ptr > 0 && length >= 0 && ptr + length <= memory.buffer.byteLength;
}
