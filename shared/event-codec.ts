/**
 * Conversion between decoded {@link TracingEvent} objects (named values) and protocol v1 frames
 * (positional values). Both directions keep the callsite and span tables they need to map
 * field names to positions, so they are stateful across the frames of one stream.
 *
 * These are for tools, tests and hosts that hold events as objects. The receiver's batch path
 * does not build event objects; it reads {@link RawRecord}s directly.
 */
import { FrameError, FrameReader, RawRecord } from './frame-reader.js';
import { FrameWriter } from './frame-writer.js';
import { Tag, type NewEventEvent, type NewSpanEvent, type TracingEvent, type Value, type Values } from './records.js';

/** Result of decoding a frame into events. */
export interface DecodedFrame {
  events: TracingEvent[];
  /** True when the frame ended in the middle of a record; every record before it is in `events`. */
  truncated: boolean;
  /** Records that could not be read, with the reason; decoding went on after each one it could skip. */
  errors: FrameError[];
}

/**
 * Decodes frames of one stream into event objects.
 *
 * @example
 * const decoder = new FrameDecoder();
 * const { events, truncated } = decoder.decode(bytes);
 */
export class FrameDecoder {
  private readonly reader = new FrameReader();
  private readonly rec = new RawRecord();
  /** Field names per guest callsite id, learnt from newCallSite records. */
  private readonly callsiteFields = new Map<number, string[]>();
  /** Callsite id per guest span id, to name the indices of valuesRecorded. */
  private readonly spanCallsite = new Map<number, number>();

  decode(bytes: Uint8Array): DecodedFrame {
    const reader = this.reader;
    const rec = this.rec;
    const events: TracingEvent[] = [];
    const errors: FrameError[] = [];
    let truncated = false;
    reader.reset(bytes);
    while (!reader.done) {
      try {
        reader.readHead(rec);
        reader.readValues(rec);
        events.push(this.toEvent(rec));
      } catch (e) {
        if (!(e instanceof FrameError)) throw e;
        if (e.fault === 'truncated') {
          truncated = true;
          break;
        }
        errors.push(e);
        if (!reader.resync()) break;
      }
    }
    return { events, truncated, errors };
  }

  private fieldName(callsite: number | undefined, index: number): string {
    const fields = callsite === undefined ? undefined : this.callsiteFields.get(callsite);
    return fields?.[index] ?? `#${index}`;
  }

  private named(callsite: number | undefined, rec: RawRecord): Values {
    const out: Values = new Array(rec.count);
    for (let i = 0; i < rec.count; i++) out[i] = [this.fieldName(callsite, i), rec.values[i]!];
    return out;
  }

  private toEvent(rec: RawRecord): TracingEvent {
    const time = rec.time < 0 ? undefined : BigInt(rec.time);
    switch (rec.tag) {
      case Tag.hello:
        return rec.minor === 0
          ? { type: 'hello', version: rec.version, guestKind: rec.guestKind, sdkVersion: rec.sdkVersion, clockOrigin: rec.clockOrigin }
          : { type: 'hello', version: rec.version, guestKind: rec.guestKind, sdkVersion: rec.sdkVersion, clockOrigin: rec.clockOrigin, minor: rec.minor };
      case Tag.newCallSite: {
        this.callsiteFields.set(rec.id, rec.fields);
        const e: TracingEvent = { type: 'newCallSite', id: rec.id, kind: rec.kind, name: rec.name, target: rec.target, level: rec.level, fields: rec.fields };
        if (rec.modulePath !== undefined) e.modulePath = rec.modulePath;
        if (rec.file !== undefined) e.file = rec.file;
        if (rec.line !== undefined) e.line = rec.line;
        return e;
      }
      case Tag.newSpan:
      case Tag.newSpanEntered: {
        this.spanCallsite.set(rec.id, rec.callsite);
        const e: NewSpanEvent = { type: 'newSpan', id: rec.id, metadataId: rec.callsite, values: this.named(rec.callsite, rec) };
        withOptional(e, rec.parent, time);
        if (rec.tag === Tag.newSpanEntered) e.entered = true;
        return e;
      }
      case Tag.followsFrom:
        return { type: 'followsFrom', id: rec.id, followsFrom: rec.follows };
      case Tag.spanEntered:
        return time === undefined ? { type: 'spanEntered', id: rec.id } : { type: 'spanEntered', id: rec.id, time };
      case Tag.spanExited:
        return time === undefined ? { type: 'spanExited', id: rec.id } : { type: 'spanExited', id: rec.id, time };
      case Tag.spanDropped:
        return time === undefined ? { type: 'spanDropped', id: rec.id } : { type: 'spanDropped', id: rec.id, time };
      case Tag.spanCloned:
        return { type: 'spanCloned', id: rec.id };
      case Tag.valuesRecorded: {
        const cs = this.spanCallsite.get(rec.id);
        const values: Values = new Array(rec.count);
        for (let i = 0; i < rec.count; i++) values[i] = [this.fieldName(cs, rec.indices[i]!), rec.values[i]!];
        return { type: 'valuesRecorded', id: rec.id, values };
      }
      case Tag.newEvent:
        {
        const e: NewEventEvent = { type: 'newEvent', metadataId: rec.callsite, values: this.named(rec.callsite, rec) };
        return withOptional(e, rec.parent, time);
      }
      case Tag.metric: {
        const e: TracingEvent = { type: 'metric', name: rec.name, instrument: rec.instrument, value: rec.metricValue };
        if (rec.attributes !== undefined) e.attributes = rec.attributes;
        if (time !== undefined) e.time = time;
        return e;
      }
      default:
        return { type: 'dropped', count: rec.droppedCount };
    }
  }
}

function withOptional<T extends { parentId?: number | null; time?: bigint }>(e: T, parent: number | null | undefined, time: bigint | undefined): T {
  if (parent !== undefined) e.parentId = parent;
  if (time !== undefined) e.time = time;
  return e;
}

/** Thrown by {@link EventEncoder} for an event it cannot put on the wire. */
export class EncodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EncodeError';
  }
}

/**
 * Encodes event objects as protocol v1 frames: the inverse of {@link FrameDecoder}.
 * Named values are put in the positions their callsite declares; a field the callsite does not
 * declare is an {@link EncodeError}.
 *
 * @example
 * const enc = new EventEncoder();
 * for (const e of events) enc.add(e);
 * const bytes = enc.finish();
 */
export class EventEncoder {
  readonly writer = new FrameWriter();
  private readonly callsiteFields = new Map<number, readonly string[]>();
  private readonly spanCallsite = new Map<number, number>();

  add(e: TracingEvent): void {
    const w = this.writer;
    const time = 'time' in e && e.time !== undefined ? Number(e.time) : undefined;
    switch (e.type) {
      case 'hello':
        w.hello(e.version, e.guestKind, e.sdkVersion, e.clockOrigin, e.minor);
        return;
      case 'newCallSite':
        this.callsiteFields.set(e.id, e.fields);
        w.newCallSite(e.id, e.kind, e.name, e.target, e.level, e.modulePath, e.file, e.line, e.fields);
        return;
      case 'newSpan':
        this.spanCallsite.set(e.id, e.metadataId);
        w.newSpan(e.id, e.parentId, e.metadataId, time, this.positional(e.metadataId, e.values), e.entered === true);
        return;
      case 'followsFrom':
        w.followsFrom(e.id, e.followsFrom);
        return;
      case 'spanEntered':
        w.spanEntered(e.id, time);
        return;
      case 'spanExited':
        w.spanExited(e.id, time);
        return;
      case 'spanDropped':
        w.spanDropped(e.id, time);
        return;
      case 'spanCloned':
        w.spanCloned(e.id);
        return;
      case 'valuesRecorded': {
        const cs = this.spanCallsite.get(e.id);
        const fields = cs === undefined ? undefined : this.callsiteFields.get(cs);
        const indices = e.values.map(([name]) => indexOf(fields, name));
        w.valuesRecorded(e.id, indices, e.values.map(([, v]) => v));
        return;
      }
      case 'newEvent':
        w.newEvent(e.metadataId, e.parentId, time, this.positional(e.metadataId, e.values));
        return;
      case 'metric': {
        const attrs = e.attributes?.flatMap(([k, v]) => [k, v] as (string | Value)[]);
        w.metric(e.instrument, e.name, e.value, time, attrs);
        return;
      }
      case 'dropped':
        w.dropped(e.count);
        return;
    }
  }

  /** Encodes all events as one frame. */
  encode(events: readonly TracingEvent[]): Uint8Array {
    for (const e of events) this.add(e);
    return this.finish();
  }

  finish(): Uint8Array {
    return this.writer.finish();
  }

  private positional(callsite: number, values: Values): Value[] {
    const fields = this.callsiteFields.get(callsite);
    const out: Value[] = [];
    for (const [name, v] of values) {
      const i = indexOf(fields, name);
      while (out.length < i) out.push({ empty: true });
      out[i] = v;
    }
    return out;
  }
}

function indexOf(fields: readonly string[] | undefined, name: string): number {
  if (fields !== undefined) {
    const i = fields.indexOf(name);
    if (i >= 0) return i;
  }
  const m = /^#(\d+)$/.exec(name);
  if (m) return Number(m[1]);
  throw new EncodeError(`field '${name}' is not declared by its callsite`);
}
