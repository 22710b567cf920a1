/**
 * The QuickJS guest SDK: `tracing`, as guest code sees it (global `tracing`, or
 * `import { tracing } from 'sandtrace'`).
 *
 * It runs inside the sandbox. Records are encoded into one FrameWriter in guest memory and
 * handed to the host in one call per batch (a host call costs ~3 µs in QuickJS; encoding an
 * event costs a fraction of that). Nothing here may use Node APIs.
 */
import { FrameWriter } from '../../shared/frame-writer.js';
import { LINK_FIELD, type Level, type Value } from '../../shared/records.js';

const LEVEL_NUM: Record<string, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4 };
const SDK_VERSION = '0.1.0';

/** What the host passes in before guest code runs. */
export interface GuestConfig {
  /** Host function taking one ArrayBuffer: a complete frame. */
  flush: (frame: ArrayBuffer) => void;
  /** Most verbose level the host wants (trace 0 … error 4). */
  minLevel: number;
  /** Flush once the buffer holds this many bytes. */
  flushBytes: number;
  /** W3C traceparent of the host's parent context, if any. */
  traceparent?: string;
  executionId?: string;
  /** Spans carried over from a persisted execution: guest id, name and declared fields. */
  carried?: Array<{ id: number; name: string; target: string; fields: string[] }>;
}

export type Fields = Record<string, unknown>;
export interface SpanOptions {
  level?: Level;
  target?: string;
  /** Explicit parent: a span, or null for a root. Default: the innermost entered span. */
  parent?: Span | null;
  /**
   * A trace context the guest got from elsewhere (a W3C traceparent, say from a message it
   * handles). It becomes a link on the span, never its parent: guests cannot pick the host's trace.
   */
  link?: string;
}


const writer = new FrameWriter(8192);
let config: GuestConfig | undefined;
let minLevel = 2;
let nextSpanId = 1;
let nextCallsite = 1;
const callsites = new Map<string, number>();
const originNs = BigInt(Date.now()) * 1_000_000n - BigInt(Math.round(performance.now() * 1e6));

function now(): number {
  return Math.round(performance.now() * 1e6);
}

function flushIfFull(): void {
  if (writer.length >= config!.flushBytes) flushNow();
}

function flushNow(): void {
  if (writer.length === 0 || config === undefined) return;
  const frame = writer.finish();
  config.flush(frame.buffer as ArrayBuffer);
}

/** Converts a guest value to a protocol value. */
function toValue(v: unknown): Value {
  switch (typeof v) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'bigint':
      return v;
    case 'undefined':
      return { empty: true };
  }
  if (v === null) return { debug: 'null' };
  if (v instanceof Uint8Array) return v;
  if (v instanceof Error) return { error: errorValue(v, 0) };
  try {
    return { debug: JSON.stringify(v) ?? String(v) };
  } catch {
    return { debug: String(v) };
  }
}

function errorValue(e: Error, depth: number): { message: string; source?: { message: string } } {
  const out: { message: string; source?: { message: string } } = { message: `${e.name}: ${e.message}` };
  const cause = (e as { cause?: unknown }).cause;
  if (cause instanceof Error && depth < 8) out.source = errorValue(cause, depth + 1);
  return out;
}

function callsite(kind: 'span' | 'event', level: Level, target: string, name: string, keys: string[]): number {
  const key = `${kind}\0${level}\0${target}\0${name}\0${keys.join('\0')}`;
  let id = callsites.get(key);
  if (id === undefined) {
    id = nextCallsite++;
    callsites.set(key, id);
    writer.newCallSite(id, kind, name, target, level, undefined, undefined, undefined, keys);
  }
  return id;
}

/** A span handle. Spans are closed explicitly with `close()` (there is no GC hook to rely on). */
export class Span {
  private closed = false;
  constructor(
    readonly id: number,
    readonly name: string,
    private readonly fields: readonly string[],
  ) {}

  enter(): this {
    if (!this.closed) writer.spanEntered(this.id, now());
    return this;
  }

  exit(): this {
    if (!this.closed) writer.spanExited(this.id, now());
    return this;
  }

  /** Sets a field declared when the span was created (or `error`). */
  record(key: string, value: unknown): this {
    const i = this.fields.indexOf(key);
    if (i < 0 || this.closed) return this;
    writer.valuesRecorded(this.id, [i], [toValue(value)]);
    flushIfFull();
    return this;
  }

  followsFrom(other: Span): this {
    if (!this.closed) writer.followsFrom(this.id, other.id);
    return this;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    writer.spanDropped(this.id, now());
    flushIfFull();
  }

  /** Enters, runs `fn`, exits. An exception sets the span's `error` field and is rethrown. */
  inSpan<T>(fn: (span: this) => T): T {
    this.enter();
    try {
      return fn(this);
    } catch (e) {
      this.record('error', e instanceof Error ? e : new Error(String(e)));
      throw e;
    } finally {
      this.exit();
    }
  }
}

function event(level: Level, message: string, fields?: Fields, target = 'guest'): void {
  if (LEVEL_NUM[level]! < minLevel || config === undefined) return;
  const keys = fields === undefined ? ['message'] : ['message', ...Object.keys(fields)];
  const id = callsite('event', level, target, 'event', keys);
  const values: Value[] = [String(message)];
  if (fields !== undefined) for (const k in fields) values.push(toValue(fields[k]));
  writer.newEvent(id, undefined, now(), values);
  flushIfFull();
}

const disabledSpan = new Span(0, '', []);

/** The `tracing` object guest code uses. */
export const tracing = {
  /** Creates a span (not entered). Fields declared here can be recorded later; `error` always can. */
  span(name: string, fields?: Fields, options?: SpanOptions): Span {
    const level = options?.level ?? 'info';
    if (LEVEL_NUM[level]! < minLevel || config === undefined) return disabledSpan;
    const keys = fields === undefined ? [] : Object.keys(fields);
    keys.push('error');
    const link = options?.link;
    if (link !== undefined) keys.push(LINK_FIELD);
    const cs = callsite('span', level, options?.target ?? 'guest', String(name), keys);
    const values: Value[] = [];
    if (fields !== undefined) for (const k in fields) values.push(toValue(fields[k]));
    if (link !== undefined) values.push({ empty: true }, String(link));
    const id = nextSpanId++;
    const parent = options?.parent === undefined ? undefined : options.parent === null ? null : options.parent.id;
    writer.newSpan(id, parent === 0 ? undefined : parent, cs, now(), values);
    flushIfFull();
    return new Span(id, String(name), keys);
  },
  /** Creates a span, runs `fn` inside it, closes it. */
  inSpan<T>(name: string, fields: Fields | undefined, fn: (span: Span) => T): T {
    const span = tracing.span(name, fields);
    try {
      return span.inSpan(fn);
    } finally {
      span.close();
    }
  },
  trace: (message: string, fields?: Fields) => event('trace', message, fields),
  debug: (message: string, fields?: Fields) => event('debug', message, fields),
  info: (message: string, fields?: Fields) => event('info', message, fields),
  warn: (message: string, fields?: Fields) => event('warn', message, fields),
  error: (message: string, fields?: Fields) => event('error', message, fields),
  enabled: (level: Level) => (LEVEL_NUM[level] ?? -1) >= minLevel,
  counter: (name: string, value: number | bigint, attributes?: Fields) => metric('counter', name, value, attributes),
  histogram: (name: string, value: number, attributes?: Fields) => metric('histogram', name, value, attributes),
  gauge: (name: string, value: number, attributes?: Fields) => metric('gauge', name, value, attributes),
  /** The host's trace context (W3C traceparent), to propagate on calls the guest makes. */
  traceContext: (): string | undefined => config?.traceparent,
  executionId: (): string | undefined => config?.executionId,
  /** Spans carried over from an earlier, persisted execution, to enter, record to and close. */
  carried(): Span[] {
    return (config?.carried ?? []).map((c) => new Span(c.id, c.name, c.fields));
  },
  /** A carried-over span by name (the first one), or undefined. */
  resume(name: string): Span | undefined {
    const c = config?.carried?.find((s) => s.name === name);
    return c === undefined ? undefined : new Span(c.id, c.name, c.fields);
  },
  /** Hands buffered records to the host now (they also go at every return to the host). */
  flush: () => flushNow(),
};

function metric(instrument: 'counter' | 'histogram' | 'gauge', name: string, value: number | bigint, attributes?: Fields): void {
  if (config === undefined) return;
  let attrs: Array<string | Value> | undefined;
  if (attributes !== undefined) {
    attrs = [];
    for (const k in attributes) attrs.push(k, toValue(attributes[k]));
  }
  writer.metric(instrument, String(name), typeof value === 'bigint' ? value : Number(value), now(), attrs);
  flushIfFull();
}

let hooksTaken = false;

/**
 * The host's private handles: returned once, to the host, before guest code runs.
 * Guest code that calls it later gets nothing.
 */
export function takeHostHooks(): { configure: (c: GuestConfig) => void; drain: () => ArrayBuffer | undefined } | undefined {
  if (hooksTaken) return undefined;
  hooksTaken = true;
  return {
    configure(c: GuestConfig): void {
      config = c;
      minLevel = c.minLevel;
      for (const s of c.carried ?? []) if (s.id >= nextSpanId) nextSpanId = s.id + 1;
      writer.hello(1, 'quickjs', SDK_VERSION, originNs);
    },
    /** Everything buffered, as one frame (the host calls this at every return, and after a crash). */
    drain(): ArrayBuffer | undefined {
      if (writer.length === 0) return undefined;
      return writer.finish().buffer as ArrayBuffer;
    },
  };
}
