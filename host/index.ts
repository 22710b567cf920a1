/**
 * sandtrace, host side: receive tracing data from sandboxed guests and hand it to collectors.
 *
 * @example
 * import { TracingEventReceiver, CaptureCollector } from 'sandtrace';
 * const collector = new CaptureCollector();
 * const receiver = new TracingEventReceiver({ collector });
 * receiver.receiveBatch(frameFromGuest);
 */
export { TracingEventReceiver, type ReceiverOptions, type BatchResult, type ReceiverStats, type ReceiverState } from './receiver/receiver.js';
export { ReceiveError, type ReceiveErrorCode } from './receiver/receive-error.js';
export { CallsiteRegistry, defaultCallsiteRegistry, type CallsiteMeta, type Interest } from './receiver/callsite-registry.js';
export { describeCause, type TerminationCause, type TerminationKind } from './receiver/termination.js';
export { PERSISTED_SPANS_VERSION, type PersistedMetadata, type PersistedSpan, type PersistedSpans } from './receiver/persisted-state.js';
export type { Collector, NewSpanInfo, EventInfo, MetricInfo, ForcedClose, RestoreSpanInfo, SpanSnapshot } from './collectors/collector.js';
export { TeeCollector } from './collectors/tee-collector.js';
export { TailSamplingCollector, type TailSamplingOptions } from './collectors/tail-sampling-collector.js';
export { alwaysOn, alwaysOff, traceIdRatio, parentBased, samplerFromEnv, type Sampler, type SamplingInput } from './sampling/sampler.js';
export { CaptureCollector, type CapturedSpan, type CapturedEvent, type NormalizedTrace, type NormalizedSpan, type NormalizedEvent } from './collectors/capture-collector.js';
export { FmtCollector, formatDuration, type FmtOptions } from './collectors/fmt-collector.js';
export { NullCollector } from './collectors/null-collector.js';
export { LevelFilter } from './collectors/level-filter.js';
export { formatValue, formatFields } from './collectors/format-value.js';
export { runQuickJS, type QuickJSRunOptions } from './sandbox/quickjs-runner.js';
export { SandboxPool, defaultSandboxPool, PoolClosedError, type SandboxPoolOptions, type SandboxPoolStats, type HostFunction } from './sandbox/sandbox-pool.js';
export { newExecutionId, type RunOptions, type RunResult, type ExecutionSummary, type PersistedExecution } from './sandbox/execution.js';
/**
 * Workflow state on disk: a locked, versioned state file committed atomically.
 *
 * @example
 * import { StateFile, StateFileLockedError, runQuickJS } from 'sandtrace';
 * const file = await StateFile.open('order-1001.json'); // StateFileLockedError while another process has it
 * try {
 *   const state = await file.read(); // undefined before the first commit
 *   const result = await runQuickJS(step, { persist: true, ...(state && { state }) });
 *   if (result.state !== undefined) await file.commit(result.state); // a crash leaves the old state or the new one
 * } finally {
 *   await file.release(); // or `await using file = …`
 * }
 */
export {
  StateFile,
  StateFileError,
  StateFileLockedError,
  StateFileCorruptError,
  StateFileVersionError,
  STATE_FORMAT,
  READABLE_STATE_FORMATS,
  type StateEnvelope,
} from './state/state-file.js';
export { parseTraceParent, formatTraceParent, type TraceParent } from './traceparent.js';
export { DEFAULT_LIMITS, type ReceiverLimits } from './receiver/receiver.js';
export { runWasm, MemoryLimitError, type WasmRunOptions } from './sandbox/wasm-runner.js';
export { compileWasm } from './sandbox/wasm-module-cache.js';
export { compileAssemblyScript, CompileError, type CompileOptions } from './sandbox/compile-assemblyscript.js';
export { PipelineCollector, SPAN_STARTED, type TelemetryHandlers, type PipelineOptions } from './pipeline/pipeline-collector.js';
export { SEVERITY, type SpanRecord, type LogRecord, type MetricPoint, type SpanEventRecord, type SpanLink } from './pipeline/telemetry-records.js';
export { BatchingManager, type BatchingConfig, type BatchingStats, type FlushEvent, type RecordKind, type DropReason, type ExportFailure } from './batching/batching-manager.js';
export { OtlpHttpExporter, ExportError, type ExporterStats } from './export/otlp-http-exporter.js';
export type { Exporter, ExportResult, ExportFailureReason, RecordEncoder, EncodedRecord } from './export/exporter.js';
export { FileExporter } from './export/otlp-json.js';
export { startViewer, type Viewer } from './viewer/view-server.js';
export { resolveConfig, InvalidEndpointError, ConfigError, type ExporterOptions, type Signal } from './export/exporter-config.js';
export { encodeTraces, encodeLogs, encodeMetrics, ProtoWriter } from './export/otlp-encoder.js';
export { MetricAggregator, DEFAULT_BOUNDS, type MetricSeries, type AggregatorOptions } from './export/metric-aggregation.js';
export * from '../shared/index.js';
export { toPlainValue, fromPlainValue, toPlainValues, fromPlainValues, type PlainValue } from './receiver/plain-value.js';
