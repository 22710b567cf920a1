/**
 * sandtrace/opentelemetry: the bridge into a host's OpenTelemetry JS setup. A separate entry so
 * that `sandtrace` itself never requires @opentelemetry/api (a peer dependency of this entry).
 */
export { OpenTelemetryCollector, type OpenTelemetryCollectorOptions, type OpenTelemetrySnapshot } from './bridge/opentelemetry-collector.js';
export { SandtraceIdGenerator } from './bridge/id-generator.js';
