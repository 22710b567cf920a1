/**
 * OTLP protobuf encoding of completed records, by hand: one growable buffer, and for nested
 * messages a single reserved length byte that is widened (by shifting the message) only when
 * the message turns out longer than 127 bytes. Field numbers are those of otlp-proto.ts.
 */
import { utf8Length, writeUtf8 } from '../../shared/frame-writer.js';
import { grownBuffer } from '../../shared/grow-buffer.js';
import { isEmptyValue } from '../../shared/values.js';
import type { Value, Values } from '../../shared/records.js';
import { formatError, formatValue } from '../collectors/format-value.js';
import type { LogRecord, SpanRecord } from '../pipeline/telemetry-records.js';
import type { EncodedRecord } from './exporter.js';
import type { MetricSeries } from './metric-aggregation.js';

/** Resource attributes (service.name and friends) sent with every request. */
export type ResourceAttributes = Values;

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

export class ProtoWriter {
  buf: Uint8Array;
  view: DataView;
  pos = 0;

  constructor(size = 64 * 1024) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }

  /** The bytes written so far (a copy), and resets for the next message. */
  finish(): Uint8Array {
    const out = this.buf.slice(0, this.pos);
    this.pos = 0;
    return out;
  }

  ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.grow(n);
  }

  private grow(n: number): void {
    this.buf = grownBuffer(this.buf, this.pos, n);
    this.view = new DataView(this.buf.buffer);
  }

  varint(v: number): void {
    this.ensure(10);
    const buf = this.buf;
    while (v >= 0x80) {
      buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    buf[this.pos++] = v;
  }

  /** A signed 64-bit varint (two's complement: negatives take ten bytes). */
  varint64(v: bigint): void {
    let u = BigInt.asUintN(64, v);
    this.ensure(10);
    while (u >= 0x80n) {
      this.buf[this.pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.pos++] = Number(u);
  }

  tag(field: number, wire: number): void {
    const t = (field << 3) | wire;
    if (t < 0x80) {
      this.ensure(1);
      this.buf[this.pos++] = t;
    } else this.varint(t);
  }

  fixed64(field: number, v: bigint): void {
    this.tag(field, WIRE_I64);
    this.ensure(8);
    // setBigUint64 takes the value modulo 2^64 itself: a negative one is written as two's complement.
    this.view.setBigUint64(this.pos, v, true);
    this.pos += 8;
  }

  fixed32(field: number, v: number): void {
    this.tag(field, WIRE_I32);
    this.ensure(4);
    this.view.setUint32(this.pos, v >>> 0, true);
    this.pos += 4;
  }

  double(field: number, v: number): void {
    this.tag(field, WIRE_I64);
    this.ensure(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  uint(field: number, v: number): void {
    this.tag(field, WIRE_VARINT);
    this.varint(v);
  }

  bool(field: number, v: boolean): void {
    this.tag(field, WIRE_VARINT);
    this.ensure(1);
    this.buf[this.pos++] = v ? 1 : 0;
  }

  bytes(field: number, b: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    const n = b.length;
    this.varint(n);
    this.ensure(n);
    if (n <= 16) {
      // Ids: a loop beats TypedArray.prototype.set at this size.
      const buf = this.buf;
      const at = this.pos;
      for (let i = 0; i < n; i++) buf[at + i] = b[i]!;
    } else this.buf.set(b, this.pos);
    this.pos += n;
  }

  string(field: number, s: string): void {
    this.tag(field, WIRE_LEN);
    if (s.length <= 42) {
      // At most 126 bytes of UTF-8: one length byte, written after the string (one pass, not two).
      this.ensure(1 + s.length * 3);
      const at = this.pos;
      const end = writeUtf8(s, this.buf, at + 1);
      this.buf[at] = end - at - 1;
      this.pos = end;
      return;
    }
    const n = utf8Length(s);
    this.varint(n);
    this.ensure(n);
    this.pos = writeUtf8(s, this.buf, this.pos);
  }

  /** Starts a nested message: tag, and one byte reserved for its length. Returns where it starts. */
  begin(field: number): number {
    this.tag(field, WIRE_LEN);
    this.ensure(1);
    return this.pos++;
  }

  /** Ends a nested message started at `at`, widening the length prefix if it needs more than one byte. */
  end(at: number): void {
    const len = this.pos - at - 1;
    if (len < 0x80) {
      this.buf[at] = len;
      return;
    }
    const width = len < 1 << 14 ? 2 : len < 1 << 21 ? 3 : len < 1 << 28 ? 4 : 5;
    this.ensure(width - 1);
    this.buf.copyWithin(at + width, at + 1, this.pos);
    this.pos += width - 1;
    let v = len;
    for (let i = 0; i < width - 1; i++) {
      this.buf[at + i] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[at + width - 1] = v;
  }
}

/** An attribute value as OTLP AnyValue (fields: 1 string, 2 bool, 3 int, 4 double, 7 bytes). */
function anyValue(w: ProtoWriter, field: number, v: Value): void {
  const at = w.begin(field);
  switch (typeof v) {
    case 'string':
      w.string(1, v);
      break;
    case 'boolean':
      w.bool(2, v);
      break;
    case 'number':
      if (Number.isSafeInteger(v) && !Object.is(v, -0)) {
        w.tag(3, WIRE_VARINT);
        if (v >= 0) w.varint(v);
        else w.varint64(BigInt(v));
      } else w.double(4, v);
      break;
    case 'bigint':
      if (v >= -(1n << 63n) && v < 1n << 63n) {
        w.tag(3, WIRE_VARINT);
        w.varint64(v);
      } else w.string(1, v.toString()); // beyond int64: keep the digits
      break;
    default:
      if (v instanceof Uint8Array) w.bytes(7, v);
      else if ('error' in v) w.string(1, formatError(v.error));
      else w.string(1, formatValue(v));
  }
  w.end(at);
}

/** KeyValue list (field number given), skipping fields not recorded. */
function attributes(w: ProtoWriter, field: number, values: Values): void {
  for (let i = 0; i < values.length; i++) {
    const [key, v] = values[i]!;
    if (isEmptyValue(v)) continue;
    const at = w.begin(field);
    w.string(1, key);
    anyValue(w, 2, v);
    w.end(at);
  }
}

function resource(w: ProtoWriter, attrs: ResourceAttributes): void {
  const at = w.begin(1);
  attributes(w, 1, attrs);
  w.end(at);
}

function scope(w: ProtoWriter, name: string): void {
  const at = w.begin(1);
  w.string(1, name);
  w.end(at);
}

function groupByScope<T extends { scope: string }>(items: readonly T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    let g = groups.get(item.scope);
    if (g === undefined) groups.set(item.scope, (g = []));
    g.push(item);
  }
  return groups;
}

const STATUS_CODE = { unset: 0, ok: 1, error: 2 } as const;

function span(w: ProtoWriter, s: SpanRecord): void {
  const at = w.begin(2);
  w.bytes(1, s.traceId);
  w.bytes(2, s.spanId);
  if (s.parentSpanId !== undefined) w.bytes(4, s.parentSpanId);
  w.string(5, s.name);
  w.uint(6, 1); // SPAN_KIND_INTERNAL
  w.fixed64(7, s.start);
  w.fixed64(8, s.end);
  attributes(w, 9, s.attributes);
  for (const e of s.events) {
    const ea = w.begin(11);
    w.fixed64(1, e.time);
    w.string(2, e.name);
    attributes(w, 3, e.attributes);
    w.end(ea);
  }
  if (s.droppedEvents > 0) w.uint(12, s.droppedEvents);
  for (const l of s.links) {
    const la = w.begin(13);
    w.bytes(1, l.traceId);
    w.bytes(2, l.spanId);
    w.fixed32(6, l.traceFlags | (l.remote === true ? 0x300 : 0x100)); // bit 8: is-remote is known; bit 9: remote
    w.end(la);
  }
  if (s.status.code !== 'unset') {
    const sa = w.begin(15);
    if (s.status.message !== undefined) w.string(2, s.status.message);
    w.uint(3, STATUS_CODE[s.status.code]);
    w.end(sa);
  }
  w.fixed32(16, s.traceFlags | (s.parentRemote === true ? 0x300 : 0x100)); // as OpenTelemetry JS writes them
  w.end(at);
}

/**
 * One span as the entry of a ScopeSpans (its tag, length and Span message): a view into `w`,
 * valid until `w` writes again. `encodeEncodedRequest` puts such entries into a request.
 */
export function encodeSpanEntry(s: SpanRecord, w: ProtoWriter): Uint8Array {
  return entry(w, span, s);
}

/** What `write` writes for one record, from the start of `w`, as a view into it. */
function entry<R>(w: ProtoWriter, write: (w: ProtoWriter, record: R) => void, record: R): Uint8Array {
  w.pos = 0;
  write(w, record);
  const n = w.pos;
  w.pos = 0;
  return w.buf.subarray(0, n);
}

/** One log record as the entry of a ScopeLogs: a view into `w`, valid until `w` writes again. */
export function encodeLogEntry(l: LogRecord, w: ProtoWriter): Uint8Array {
  return entry(w, logRecord, l);
}

/**
 * An Export{Trace,Logs}ServiceRequest from entries that `encodeSpanEntry` or `encodeLogEntry`
 * encoded (both requests nest the same way: Resource{Spans,Logs} field 1, Scope{Spans,Logs}
 * field 2): byte for byte what `encodeTraces` or `encodeLogs` writes for the same records.
 */
export function encodeEncodedRequest(records: readonly EncodedRecord[], res: ResourceAttributes, w: ProtoWriter): Uint8Array {
  const rs = w.begin(1);
  resource(w, res);
  if (sameScope(records)) scopeOfEncoded(w, records[0]!.scope, records);
  else for (const [name, group] of groupByScope(records)) scopeOfEncoded(w, name, group);
  w.end(rs);
  return w.finish();
}

function sameScope(items: readonly { scope: string }[]): boolean {
  for (let i = 1; i < items.length; i++) if (items[i]!.scope !== items[0]!.scope) return false;
  return items.length > 0;
}

/** A Scope{Spans,Logs} of encoded entries; entries queued one after another in one buffer are copied in one go. */
function scopeOfEncoded(w: ProtoWriter, name: string, records: readonly EncodedRecord[]): void {
  const ss = w.begin(2);
  scope(w, name);
  let i = 0;
  while (i < records.length) {
    const first = records[i]!;
    let end = first.end;
    for (i++; i < records.length && records[i]!.buf === first.buf && records[i]!.start === end; i++) end = records[i]!.end;
    const n = end - first.start;
    w.ensure(n);
    w.buf.set(first.buf.subarray(first.start, end), w.pos);
    w.pos += n;
  }
  w.end(ss);
}

/**
 * ExportTraceServiceRequest for these spans, one ResourceSpans, one ScopeSpans per guest target.
 *
 * @example
 * const body = encodeTraces(spans, [['service.name', 'plugin-host']]);
 */
export function encodeTraces(spans: readonly SpanRecord[], res: ResourceAttributes, w = new ProtoWriter()): Uint8Array {
  const rs = w.begin(1);
  resource(w, res);
  for (const [name, group] of groupByScope(spans)) {
    const ss = w.begin(2);
    scope(w, name);
    for (let i = 0; i < group.length; i++) span(w, group[i]!);
    w.end(ss);
  }
  w.end(rs);
  return w.finish();
}

/** A LogRecord entry of a ScopeLogs (field 2). */
function logRecord(w: ProtoWriter, l: LogRecord): void {
  const at = w.begin(2);
  w.fixed64(1, l.time);
  w.fixed64(11, l.time);
  w.uint(2, l.severityNumber);
  w.string(3, l.level.toUpperCase());
  anyValue(w, 5, l.body);
  attributes(w, 6, l.executionId === undefined ? l.attributes : [...l.attributes, ['sandtrace.execution.id', l.executionId]]);
  if (l.traceId !== undefined && l.spanId !== undefined) {
    w.fixed32(8, l.traceFlags);
    w.bytes(9, l.traceId);
    w.bytes(10, l.spanId);
  }
  w.end(at);
}

/** ExportLogsServiceRequest: severity numbers per OTLP, the span's trace context when inside one. */
export function encodeLogs(logs: readonly LogRecord[], res: ResourceAttributes, w = new ProtoWriter()): Uint8Array {
  const rl = w.begin(1);
  resource(w, res);
  for (const [name, group] of groupByScope(logs)) {
    const sl = w.begin(2);
    scope(w, name);
    for (const l of group) logRecord(w, l);
    w.end(sl);
  }
  w.end(rl);
  return w.finish();
}

const TEMPORALITY_DELTA = 1;

/** A NumberDataPoint (field 1 of Sum and Gauge): `as_int` for an integer series, else `as_double`. */
function numberPoint(w: ProtoWriter, s: MetricSeries, value: number | bigint): void {
  const p = w.begin(1);
  attributes(w, 7, s.attributes);
  w.fixed64(2, s.start);
  w.fixed64(3, s.time);
  if (typeof value === 'bigint') w.fixed64(6, BigInt.asUintN(64, value)); // sfixed64: two's complement
  else w.double(4, value);
  w.end(p);
}

/** ExportMetricsServiceRequest for aggregated series (sums, last-value gauges, explicit-bucket histograms). */
export function encodeMetrics(series: readonly MetricSeries[], res: ResourceAttributes, w = new ProtoWriter()): Uint8Array {
  const rm = w.begin(1);
  resource(w, res);
  const sm = w.begin(2);
  scope(w, 'sandtrace');
  for (const s of series) {
    const m = w.begin(2);
    w.string(1, s.name);
    if (s.kind === 'sum') {
      const d = w.begin(7);
      numberPoint(w, s, s.sum);
      w.uint(2, TEMPORALITY_DELTA);
      w.bool(3, s.monotonic);
      w.end(d);
    } else if (s.kind === 'gauge') {
      const d = w.begin(5);
      numberPoint(w, s, s.last);
      w.end(d);
    } else {
      const d = w.begin(9);
      const p = w.begin(1);
      attributes(w, 9, s.attributes);
      w.fixed64(2, s.start);
      w.fixed64(3, s.time);
      w.fixed64(4, BigInt(s.count));
      w.double(5, s.sum);
      for (const c of s.buckets) w.fixed64(6, BigInt(c));
      for (const b of s.bounds) w.double(7, b);
      w.double(11, s.min);
      w.double(12, s.max);
      w.end(p);
      w.uint(2, TEMPORALITY_DELTA);
      w.end(d);
    }
    w.end(m);
  }
  w.end(sm);
  w.end(rm);
  return w.finish();
}
