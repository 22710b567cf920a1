/**
 * Completed telemetry records: what the pipeline collector hands to handlers, the batching
 * manager and the OTLP encoder. Ids are bytes (16 for traces, 8 for spans); times unix ns.
 */
import type { Level, Values } from '../../shared/records.js';
import type { ForcedClose } from '../collectors/collector.js';

export interface SpanLink {
  traceId: Uint8Array;
  spanId: Uint8Array;
  traceFlags: number;
  /** The linked context came from outside this process (a traceparent the guest supplied). */
  remote?: boolean;
}

export interface SpanEventRecord {
  time: bigint;
  name: string;
  attributes: Values;
}

/** A finished span. `scope` is the guest target (the OTLP instrumentation scope). */
export interface SpanRecord {
  traceId: Uint8Array;
  spanId: Uint8Array;
  parentSpanId: Uint8Array | undefined;
  traceFlags: number;
  /** The parent came from outside this process (the host's traceparent): OTLP flags say so. */
  parentRemote?: boolean;
  name: string;
  scope: string;
  start: bigint;
  end: bigint;
  attributes: Values;
  events: SpanEventRecord[];
  links: SpanLink[];
  status: { code: 'unset' | 'ok' | 'error'; message?: string };
  executionId: string | undefined;
  /** Set when the host closed the span (guest died or did not commit). */
  forced: ForcedClose | undefined;
  droppedEvents: number;
}

/** OTLP severity numbers for sandtrace's levels (TRACE 1, DEBUG 5, INFO 9, WARN 13, ERROR 17). */
export const SEVERITY: Record<Level, number> = { trace: 1, debug: 5, info: 9, warn: 13, error: 17 };

export interface LogRecord {
  time: bigint;
  level: Level;
  severityNumber: number;
  body: string;
  attributes: Values;
  scope: string;
  /** Trace context of the span the event happened in, if any. */
  traceId: Uint8Array | undefined;
  spanId: Uint8Array | undefined;
  traceFlags: number;
  executionId: string | undefined;
}

export interface MetricPoint {
  name: string;
  instrument: 'counter' | 'histogram' | 'gauge';
  /** A bigint stays one (integers beyond 2^53 exactly, exported as OTLP `as_int`). */
  value: number | bigint;
  attributes: Values;
  time: bigint;
  executionId: string | undefined;
}
