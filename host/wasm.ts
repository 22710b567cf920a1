/**
 * sandtrace/wasm: run compiled WebAssembly guests (AssemblyScript with the sandtrace library),
 * with the shipped collectors: the part of `sandtrace` a host that runs only WebAssembly uses. As
 * published (bundled), it loads the same shared chunk as `sandtrace`; like every entry, it loads
 * neither the AssemblyScript compiler nor the exporter's protobufjs and node:http until used.
 *
 * @example
 * import { runWasm, FmtCollector } from 'sandtrace/wasm';
 * const result = await runWasm(wasmBytes, { entry: 'run', args: ['alice', 3], memoryLimitBytes: 32 << 20, collector: new FmtCollector() });
 * result.ok; // false if the guest died; result.summary.cause says how
 */
export { runWasm, MemoryLimitError, type WasmRunOptions } from './sandbox/wasm-runner.js';
export { compileWasm } from './sandbox/wasm-module-cache.js';
export { SandboxPool, defaultSandboxPool, PoolClosedError, type SandboxPoolOptions, type SandboxPoolStats, type HostFunction } from './sandbox/sandbox-pool.js';
export type { RunOptions, RunResult, ExecutionSummary, PersistedExecution } from './sandbox/execution.js';
export type { Collector, NewSpanInfo, EventInfo, MetricInfo, ForcedClose, RestoreSpanInfo } from './collectors/collector.js';
export { CaptureCollector, type CapturedSpan, type CapturedEvent, type NormalizedTrace, type NormalizedSpan, type NormalizedEvent } from './collectors/capture-collector.js';
export { FmtCollector, formatDuration, type FmtOptions } from './collectors/fmt-collector.js';
export { NullCollector } from './collectors/null-collector.js';
export { LevelFilter } from './collectors/level-filter.js';
