/**
 * Wire protocol v1: the record types both sides share.
 *
 * A frame is a plain concatenation of msgpack values, one per record. Every record is a msgpack
 * array whose first element is a small integer tag (see {@link Tag}). PROTOCOL.md in this folder
 * is the normative description; this file is its TypeScript mirror.
 */

/** Major protocol version spoken by this build. A receiver rejects any other major version. */
export const PROTOCOL_VERSION = 1;
/**
 * Minor revision of version 1 written by this build in `hello` (an optional sixth element).
 * 1 adds `newSpanEntered` (tag 12); a reader of minor 0 rejects that tag (see PROTOCOL.md).
 */
export const PROTOCOL_MINOR = 1;

/** Record tags: the first element of every record array. */
export const Tag = {
  hello: 0,
  newCallSite: 1,
  newSpan: 2,
  followsFrom: 3,
  spanEntered: 4,
  spanExited: 5,
  spanCloned: 6,
  spanDropped: 7,
  valuesRecorded: 8,
  newEvent: 9,
  metric: 10,
  dropped: 11,
  /** Minor 1: `newSpan` and `spanEntered` at the same time, in one record (newSpan's layout). */
  newSpanEntered: 12,
} as const;
export type Tag = (typeof Tag)[keyof typeof Tag];

/** msgpack extension type codes used for values that plain msgpack cannot mark. */
export const ExtType = {
  /** UTF-8 text produced by a debug formatter (`{:?}` in Rust terms). */
  debug: 1,
  /** An error: the payload is a msgpack array `[message, source]`, source being another error or nil. */
  error: 2,
} as const;

/** Severity, most verbose first. The wire carries the index into this list. */
export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type Level = (typeof LEVELS)[number];

/** Wire number of a level: trace 0 … error 4. A callsite is enabled when its level ≥ the filter. */
export function levelNumber(level: Level): number {
  return LEVELS.indexOf(level);
}

/**
 * A span field carrying a trace context the guest got from elsewhere (a W3C traceparent). The
 * host turns it into a link, never a parent: a guest cannot choose the host's trace.
 */
export const LINK_FIELD = 'sandtrace.link';

export const INSTRUMENTS = ['counter', 'histogram', 'gauge'] as const;
export type Instrument = (typeof INSTRUMENTS)[number];

export const CALLSITE_KINDS = ['span', 'event'] as const;
export type CallsiteKind = (typeof CALLSITE_KINDS)[number];

/** An error value with its chain of causes. */
export interface ErrorValue {
  message: string;
  source?: ErrorValue;
}

/**
 * A field value. Integers beyond ±2^53 arrive as bigint; floats keep NaN and ±Infinity.
 * `{ empty: true }` marks a field that is declared but not recorded yet.
 */
export type Value =
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | { debug: string }
  | { error: ErrorValue }
  | { empty: true };

/** Field values in declaration order, as `[fieldName, value]` pairs. */
export type Values = Array<[string, Value]>;

/** Parent of a span or event: `undefined` = contextual, `null` = explicit root, a number = that span. */
export type ParentRef = number | null | undefined;

/** Callsite content: everything but the guest's id. Interned by the host on this content. */
export interface CallsiteData {
  kind: CallsiteKind;
  name: string;
  target: string;
  level: Level;
  modulePath?: string;
  file?: string;
  line?: number;
  fields: string[];
}

export interface HelloEvent {
  type: 'hello';
  version: number;
  guestKind: string;
  sdkVersion: string;
  /** Unix time in nanoseconds at which the guest's monotonic clock read zero. */
  clockOrigin: bigint;
  /** The minor revision of version 1 the guest writes (absent: 0). */
  minor?: number;
}
export interface NewCallSiteEvent extends CallsiteData {
  type: 'newCallSite';
  id: number;
}
export interface NewSpanEvent {
  type: 'newSpan';
  id: number;
  parentId?: number | null;
  metadataId: number;
  values: Values;
  time?: bigint;
  /** Created and entered in one record (`newSpanEntered`, tag 12): the enter has the span's start time. */
  entered?: true;
}
export interface FollowsFromEvent {
  type: 'followsFrom';
  id: number;
  followsFrom: number;
}
export interface SpanTimeEvent {
  type: 'spanEntered' | 'spanExited' | 'spanDropped';
  id: number;
  time?: bigint;
}
export interface SpanClonedEvent {
  type: 'spanCloned';
  id: number;
}
export interface ValuesRecordedEvent {
  type: 'valuesRecorded';
  id: number;
  values: Values;
}
export interface NewEventEvent {
  type: 'newEvent';
  metadataId: number;
  parentId?: number | null;
  values: Values;
  time?: bigint;
}
export interface MetricEvent {
  type: 'metric';
  name: string;
  instrument: Instrument;
  value: number | bigint;
  attributes?: Values;
  time?: bigint;
}
export interface DroppedEvent {
  type: 'dropped';
  count: number;
}

/** One decoded record. `time` is guest-monotonic nanoseconds. */
export type TracingEvent =
  | HelloEvent
  | NewCallSiteEvent
  | NewSpanEvent
  | FollowsFromEvent
  | SpanTimeEvent
  | SpanClonedEvent
  | ValuesRecordedEvent
  | NewEventEvent
  | MetricEvent
  | DroppedEvent;
