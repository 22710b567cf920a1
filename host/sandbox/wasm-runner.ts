/**
 * Runs one export of a WebAssembly guest that follows sandtrace's WebAssembly ABI
 * (shared/PROTOCOL.md, 5b: an AssemblyScript module using the sandtrace library, a Rust one using
 * the sandtrace-guest crate, or any other) on a worker of a SandboxPool, and wires its frames into a receiver on this thread. The module
 * is compiled once per distinct content (see compileWasm) and its memory capped at the limit.
 */
import { hostNowNs } from '../clock.js';
import { Execution, type RunOptions, type RunResult } from './execution.js';
import { runInPool } from './run-in-pool.js';
import type { HostFunction } from './sandbox-pool.js';
import { compileWasm, declarationOf } from './wasm-module-cache.js';
import { MemoryLimitError, type MemoryDeclaration } from './wasm-memory-limits.js';

export { MemoryLimitError };
import type { WasmJob, WasmMemoryPlan } from './worker-messages.js';

export interface WasmRunOptions extends RunOptions {
  /** The export to call (default `run`). */
  entry?: string;
  /** Arguments for the export: numbers, bigints, booleans, or strings (AssemblyScript modules only: passed as AssemblyScript strings). */
  args?: Array<number | bigint | boolean | string>;
  /**
   * More imports for the guest, as functions (`{ env: { log: (a, b) => … } }`), merged with
   * sandtrace's own (`sandtrace`, `env.abort`, `env.seed`). They run on the host's thread while
   * the guest waits; numbers and bigints cross, and the deadline and signal hold meanwhile.
   */
  imports?: Record<string, Record<string, HostFunction>>;
}

const DEFAULTS = { deadlineMs: 5_000, entry: 'run', memoryLimitBytes: 64 << 20 };
const PAGE = 65536;
/** Imports sandtrace provides itself; a host function of the same name would never be called. */
const OWN_IMPORTS = new Set(['env.abort', 'env.seed', 'sandtrace.attach', 'sandtrace.flush', 'sandtrace.now', 'sandtrace.resume', 'sandtrace.resume_utf8', 'sandtrace.panic']);

/**
 * @example
 * const wasm = await compileAssemblyScript('plugin.ts');
 * const result = await runWasm(wasm, { entry: 'run', args: ['alice', 1], collector, deadlineMs: 100 });
 */
export async function runWasm(module: Uint8Array | WebAssembly.Module, options: WasmRunOptions = {}): Promise<RunResult> {
  const compiled = module instanceof WebAssembly.Module ? module : await compileWasm(module);
  const declaration = declarationOf(compiled);
  if (declaration === undefined) throw new TypeError('runWasm takes the module bytes, or a WebAssembly.Module from compileWasm (its memory limits cannot be read back from other compiled modules)');
  // Refused before anything starts: a module whose memory the host cannot cap does not run.
  const memory = planMemory(declaration, options.memoryLimitBytes ?? DEFAULTS.memoryLimitBytes);
  const hostFunctions: Record<string, HostFunction> = {};
  const hostImports: Array<[string, string]> = [];
  for (const [mod, fields] of Object.entries(options.imports ?? {})) {
    for (const [name, fn] of Object.entries(fields)) {
      if (typeof fn !== 'function') throw new TypeError(`import ${mod}.${name} is not a function: only functions can be given to a guest that runs on a worker`);
      if (OWN_IMPORTS.has(`${mod}.${name}`)) throw new TypeError(`import ${mod}.${name} is provided by sandtrace`);
      hostFunctions[`${mod}.${name}`] = fn;
      hostImports.push([mod, name]);
    }
  }
  for (const a of options.args ?? []) {
    if (!['number', 'bigint', 'boolean', 'string'].includes(typeof a)) throw new TypeError(`runWasm args are numbers, bigints, booleans or strings; got a ${typeof a}`);
  }
  const deadlineMs = options.deadlineMs ?? DEFAULTS.deadlineMs;
  // Guest time is ns since this moment; the worker maps its clock onto it.
  const clockOriginNs = hostNowNs();
  const exec = new Execution('wasm', options.filename ?? 'guest.wasm', options, clockOriginNs);
  const job: WasmJob = {
    kind: 'wasm',
    module: compiled,
    memory,
    entry: options.entry ?? DEFAULTS.entry,
    args: options.args ?? [],
    minLevel: exec.minLevel,
    deadlineMs,
    hostImports,
    waitForRoom: options.backpressure !== undefined,
    clockOriginNs,
    firstSpanId: Execution.firstSpanId(options),
    carried: Execution.carried(options).map(({ id, name, target }) => ({ id, name, target })),
  };
  return runInPool(exec, job, options, hostFunctions);
}

/**
 * The guest's memory, capped at the limit: an imported memory is created by the worker with that
 * maximum; a module that defines its own memory must declare a maximum within the limit.
 */
function planMemory(decl: MemoryDeclaration, limitBytes: number): WasmMemoryPlan {
  const limitPages = Math.max(1, Math.floor(limitBytes / PAGE));
  if (decl.kind === 'own') {
    if (decl.maximum === undefined || decl.maximum > limitPages) {
      throw new MemoryLimitError(`the module defines its own memory with ${decl.maximum === undefined ? 'no maximum' : `a maximum of ${decl.maximum} pages`}; the limit is ${limitPages} pages (import it, or declare a maximum: AssemblyScript --importMemory or --maximumMemory ${limitPages}; Rust/C with wasm-ld -C link-arg=--import-memory or -C link-arg=--max-memory=${limitPages * PAGE})`);
    }
    return { kind: 'own', maximum: decl.maximum };
  }
  if (decl.kind === 'none') return { kind: 'own', maximum: 0 };
  if (decl.initial > limitPages) throw new MemoryLimitError(`the module needs ${decl.initial} pages to start; the limit is ${limitPages}`);
  if (decl.shared) throw new MemoryLimitError('the module imports a shared memory, which sandtrace does not provide');
  return { kind: 'import', module: decl.module!, field: decl.field!, initial: decl.initial, maximum: Math.min(limitPages, decl.maximum ?? limitPages) };
}
