/**
 * sandtrace/wasm: run compiled WebAssembly guests (AssemblyScript with the sandtrace library),
 * without loading the QuickJS runner, the AssemblyScript compiler or the export pipeline.
 *
 * @example
 * import { runWasm, MemoryLimitError } from 'sandtrace/wasm';
 * const result = await runWasm(wasmBytes, { entry: 'run', args: ['alice', 3], memoryLimitBytes: 32 << 20 });
 * result.ok; // false if the guest died; result.summary.cause says how
 */
export { runWasm, MemoryLimitError, type WasmRunOptions } from './sandbox/wasm-runner.js';
export { compileWasm } from './sandbox/wasm-module-cache.js';
export { SandboxPool, defaultSandboxPool, PoolClosedError, type SandboxPoolOptions, type SandboxPoolStats, type HostFunction } from './sandbox/sandbox-pool.js';
export type { RunOptions, RunResult, ExecutionSummary, PersistedExecution } from './sandbox/execution.js';
