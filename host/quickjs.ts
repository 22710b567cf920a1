/**
 * sandtrace/quickjs: run JavaScript guests in QuickJS, with what a QuickJS host needs around them
 * (the shipped collectors, traceparent helpers, causes of death): the part of `sandtrace` a host
 * that runs no WebAssembly and exports nothing itself uses. As published (bundled), it loads the
 * same shared chunk as `sandtrace` and imports about as fast; like every entry, it loads neither
 * the AssemblyScript compiler nor the exporter's protobufjs and node:http until they are used.
 *
 * @example
 * import { runQuickJS, FmtCollector } from 'sandtrace/quickjs';
 * const result = await runQuickJS(pluginSource, { collector: new FmtCollector(), deadlineMs: 100, traceparent: req.headers.traceparent });
 * if (!result.ok) console.error(result.summary.cause);
 */
export { runQuickJS, type QuickJSRunOptions } from './sandbox/quickjs-runner.js';
export { SandboxPool, defaultSandboxPool, PoolClosedError, type SandboxPoolOptions, type SandboxPoolStats, type HostFunction } from './sandbox/sandbox-pool.js';
export { newExecutionId, type RunOptions, type RunResult, type ExecutionSummary, type PersistedExecution } from './sandbox/execution.js';
export { parseTraceParent, formatTraceParent, type TraceParent } from './traceparent.js';
export type { Collector, NewSpanInfo, EventInfo, MetricInfo, ForcedClose, RestoreSpanInfo } from './collectors/collector.js';
export { CaptureCollector, type CapturedSpan, type CapturedEvent, type NormalizedTrace, type NormalizedSpan, type NormalizedEvent } from './collectors/capture-collector.js';
export { FmtCollector, formatDuration, type FmtOptions } from './collectors/fmt-collector.js';
export { NullCollector } from './collectors/null-collector.js';
export { LevelFilter } from './collectors/level-filter.js';
export { describeCause, type TerminationCause, type TerminationKind } from './receiver/termination.js';
export { CallsiteRegistry, defaultCallsiteRegistry, type CallsiteMeta, type Interest } from './receiver/callsite-registry.js';
export { DEFAULT_LIMITS, type ReceiverLimits } from './receiver/receiver.js';
export type { Level, Value, Values } from '../shared/records.js';
