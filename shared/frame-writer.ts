/**
 * Protocol v1 frame writer: encodes records straight into one growable byte buffer.
 *
 * It deliberately uses nothing but typed arrays (no TextEncoder, no Node APIs) so the same code
 * runs inside a QuickJS guest, where a host call per event would cost microseconds. Every record
 * is standard msgpack: msgpackr (or any msgpack decoder) reads a frame as a sequence of arrays.
 */
import { grownBuffer } from './grow-buffer.js';
import { ExtType, Tag, type ErrorValue, type Instrument, type Level, type Value } from './records.js';

const LEVEL_NUM: Record<Level, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4 };
const INSTRUMENT_NUM: Record<Instrument, number> = { counter: 0, histogram: 1, gauge: 2 };

// Built-ins, taken once at load. In QuickJS the writer may be handed values from another realm
// (a guest context of the same runtime), for which `instanceof Uint8Array` is false and whose
// prototypes the guest controls; the checks below read internal slots instead, through this
// realm's own functions.
const isSafeInteger = Number.isSafeInteger;
const toBigInt = BigInt;
const toText = String;
const typedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;
const uncurryGetter = (key: PropertyKey): ((self: unknown) => unknown) =>
  Function.prototype.call.bind(Object.getOwnPropertyDescriptor(typedArrayPrototype, key)!.get!) as (self: unknown) => unknown;
const typedArrayName = uncurryGetter(Symbol.toStringTag) as (v: unknown) => string | undefined;
const typedArrayLength = uncurryGetter('length') as (v: Uint8Array) => number;

/**
 * True for a Uint8Array (or a subclass) from any realm: the answer comes from the array's internal
 * slot, not from its prototype chain, so a guest cannot fake or hide it.
 */
export function isUint8Array(v: unknown): v is Uint8Array {
  return typedArrayName(v) === 'Uint8Array';
}

/** Maximum nesting of error sources the writer follows (the reader enforces the same). */
export const MAX_ERROR_DEPTH = 16;

/**
 * Writes records of one frame. `finish()` hands out the bytes and starts a new frame, whose
 * time base is zero again: frames decode independently of each other.
 *
 * @example
 * const w = new FrameWriter();
 * w.hello(1, 'js', '0.1.0', 1_700_000_000_000_000_000n);
 * w.newCallSite(1, 'span', 'handle', 'app', 'info', undefined, undefined, undefined, ['user']);
 * w.newSpan(1, undefined, 1, 1_000, ['alice']);
 * const bytes = w.finish();
 */
export class FrameWriter {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;
  private lastTime = 0;

  constructor(initialSize = 4096) {
    this.buf = new Uint8Array(initialSize);
    this.view = new DataView(this.buf.buffer);
  }

  /** Bytes written to the current frame so far. */
  get length(): number {
    return this.pos;
  }

  /** Returns a copy of the frame's bytes and starts a new, empty frame. */
  finish(): Uint8Array {
    const out = this.buf.slice(0, this.pos);
    this.reset();
    return out;
  }

  // ---- raw access, for encoders that write hot records themselves -------------------------
  // Interpreted guests (QuickJS) pay ~100 ns per function call, so the QuickJS SDK writes its
  // frequent records with a few typed-array stores: reserve room, write at `bytes`/`view`, commit.

  /** The buffer to write into after `reserve` (it changes when the buffer grows). */
  get bytes(): Uint8Array {
    return this.buf;
  }

  get dataView(): DataView {
    return this.view;
  }

  /** Ensures `n` bytes of room and returns the position to write at. */
  reserve(n: number): number {
    if (this.pos + n > this.buf.length) this.grow(n);
    return this.pos;
  }

  /** Ends a record written by hand at `reserve()`'s position: the frame now ends at `pos`. */
  commit(pos: number): void {
    this.pos = pos;
  }

  /** Writes one value at `pos` with the general encoder and returns the position after it. */
  valueAt(pos: number, v: Value | null | undefined): number {
    this.pos = pos;
    this.value(v, 0);
    return this.pos;
  }

  /** Discards the current frame. */
  reset(): void {
    this.pos = 0;
    this.lastTime = 0;
  }

  /** `minor`: written as a sixth element when given (protocol 1.1 and later); absent means 0. */
  hello(version: number, guestKind: string, sdkVersion: string, clockOrigin: bigint | number, minor?: number): void {
    this.arrayHeader(minor === undefined ? 5 : 6);
    this.uint(Tag.hello);
    this.uint(version);
    this.str(guestKind);
    this.str(sdkVersion);
    this.int(clockOrigin);
    if (minor !== undefined) this.uint(minor);
  }

  newCallSite(
    id: number,
    kind: 'span' | 'event',
    name: string,
    target: string,
    level: Level,
    modulePath: string | undefined,
    file: string | undefined,
    line: number | undefined,
    fields: readonly string[],
  ): void {
    this.arrayHeader(10);
    this.uint(Tag.newCallSite);
    this.uint(id);
    this.uint(kind === 'span' ? 0 : 1);
    this.str(name);
    this.str(target);
    this.uint(LEVEL_NUM[level]);
    this.optStr(modulePath);
    this.optStr(file);
    if (line === undefined) this.nil();
    else this.uint(line);
    this.arrayHeader(fields.length);
    for (let i = 0; i < fields.length; i++) this.str(fields[i]!);
  }

  /**
   * `parent`: undefined = contextual, null = explicit root, number = that span. `entered`: the
   * span is entered at its start, in the same record (`newSpanEntered`, protocol 1.1).
   */
  newSpan(id: number, parent: number | null | undefined, callsite: number, time: number | undefined, values: readonly Value[], entered = false): void {
    this.arrayHeader(5 + values.length);
    this.uint(entered ? Tag.newSpanEntered : Tag.newSpan);
    this.uint(id);
    this.parent(parent);
    this.uint(callsite);
    this.time(time);
    for (let i = 0; i < values.length; i++) this.value(values[i]!, 0);
  }

  followsFrom(id: number, follows: number): void {
    this.arrayHeader(3);
    this.uint(Tag.followsFrom);
    this.uint(id);
    this.uint(follows);
  }

  spanEntered(id: number, time: number | undefined): void {
    this.spanTime(Tag.spanEntered, id, time);
  }

  spanExited(id: number, time: number | undefined): void {
    this.spanTime(Tag.spanExited, id, time);
  }

  spanDropped(id: number, time: number | undefined): void {
    this.spanTime(Tag.spanDropped, id, time);
  }

  spanCloned(id: number): void {
    this.arrayHeader(2);
    this.uint(Tag.spanCloned);
    this.uint(id);
  }

  /** `indices[i]` is the position, in the callsite's field list, of `values[i]`. */
  valuesRecorded(id: number, indices: readonly number[], values: readonly Value[]): void {
    this.arrayHeader(2 + 2 * values.length);
    this.uint(Tag.valuesRecorded);
    this.uint(id);
    for (let i = 0; i < values.length; i++) {
      this.uint(indices[i]!);
      this.value(values[i]!, 0);
    }
  }

  newEvent(callsite: number, parent: number | null | undefined, time: number | undefined, values: readonly Value[]): void {
    this.arrayHeader(4 + values.length);
    this.uint(Tag.newEvent);
    this.uint(callsite);
    this.parent(parent);
    this.time(time);
    for (let i = 0; i < values.length; i++) this.value(values[i]!, 0);
  }

  /** `attributes`: alternating keys and values, `[k1, v1, k2, v2, …]`, or undefined. */
  metric(instrument: Instrument, name: string, value: number | bigint, time: number | undefined, attributes?: readonly (string | Value)[]): void {
    const hasAttrs = attributes !== undefined && attributes.length > 0;
    this.arrayHeader(hasAttrs ? 6 : 5);
    this.uint(Tag.metric);
    this.uint(INSTRUMENT_NUM[instrument]);
    this.str(name);
    this.value(value, 0);
    this.time(time);
    if (hasAttrs) {
      const n = attributes.length >> 1;
      this.mapHeader(n);
      for (let i = 0; i < n; i++) {
        this.str(attributes[2 * i] as string);
        this.value(attributes[2 * i + 1] as Value, 0);
      }
    }
  }

  dropped(count: number): void {
    this.arrayHeader(2);
    this.uint(Tag.dropped);
    this.uint(count);
  }

  // ---- primitives -------------------------------------------------------------------------

  private spanTime(tag: number, id: number, time: number | undefined): void {
    this.arrayHeader(3);
    this.uint(tag);
    this.uint(id);
    this.time(time);
  }

  private parent(parent: number | null | undefined): void {
    if (parent === undefined) this.nil();
    else if (parent === null) this.byte(0xc2); // false = explicit root
    else this.uint(parent);
  }

  /** Timestamps are deltas against the previous timestamp of the frame; nil = none. */
  private time(time: number | undefined): void {
    if (time === undefined) {
      this.nil();
      return;
    }
    this.int(time - this.lastTime);
    this.lastTime = time;
  }

  private ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.grow(n);
  }

  private grow(n: number): void {
    this.buf = grownBuffer(this.buf, this.pos, n);
    this.view = new DataView(this.buf.buffer);
  }

  private byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  private nil(): void {
    this.byte(0xc0);
  }

  private arrayHeader(n: number): void {
    this.ensure(5);
    if (n < 16) this.buf[this.pos++] = 0x90 | n;
    else if (n < 0x10000) {
      this.buf[this.pos++] = 0xdc;
      this.view.setUint16(this.pos, n);
      this.pos += 2;
    } else {
      this.buf[this.pos++] = 0xdd;
      this.view.setUint32(this.pos, n);
      this.pos += 4;
    }
  }

  private mapHeader(n: number): void {
    this.ensure(5);
    if (n < 16) this.buf[this.pos++] = 0x80 | n;
    else if (n < 0x10000) {
      this.buf[this.pos++] = 0xde;
      this.view.setUint16(this.pos, n);
      this.pos += 2;
    } else {
      this.buf[this.pos++] = 0xdf;
      this.view.setUint32(this.pos, n);
      this.pos += 4;
    }
  }

  private uint(n: number): void {
    if (n < 128 && n >= 0) {
      this.ensure(1);
      this.buf[this.pos++] = n;
    } else this.int(n);
  }

  /** Smallest msgpack integer form for a safe integer or a bigint. */
  private int(n: number | bigint): void {
    this.ensure(9);
    const buf = this.buf;
    if (typeof n === 'bigint') {
      if (n >= -0x20000000000000n && n <= 0x20000000000000n) {
        this.int(Number(n));
        return;
      }
      if (n < 0n) {
        buf[this.pos++] = 0xd3;
        this.view.setBigInt64(this.pos, n);
      } else {
        buf[this.pos++] = 0xcf;
        this.view.setBigUint64(this.pos, n);
      }
      this.pos += 8;
      return;
    }
    if (n >= 0) {
      if (n < 128) buf[this.pos++] = n;
      else if (n < 0x100) {
        buf[this.pos++] = 0xcc;
        buf[this.pos++] = n;
      } else if (n < 0x10000) {
        buf[this.pos++] = 0xcd;
        this.view.setUint16(this.pos, n);
        this.pos += 2;
      } else if (n < 0x100000000) {
        buf[this.pos++] = 0xce;
        this.view.setUint32(this.pos, n);
        this.pos += 4;
      } else {
        buf[this.pos++] = 0xcf;
        this.view.setUint32(this.pos, Math.floor(n / 0x100000000));
        this.view.setUint32(this.pos + 4, n >>> 0);
        this.pos += 8;
      }
    } else if (n >= -32) buf[this.pos++] = n & 0xff;
    else if (n >= -0x80) {
      buf[this.pos++] = 0xd0;
      this.view.setInt8(this.pos++, n);
    } else if (n >= -0x8000) {
      buf[this.pos++] = 0xd1;
      this.view.setInt16(this.pos, n);
      this.pos += 2;
    } else if (n >= -0x80000000) {
      buf[this.pos++] = 0xd2;
      this.view.setInt32(this.pos, n);
      this.pos += 4;
    } else {
      buf[this.pos++] = 0xd3;
      this.view.setBigInt64(this.pos, toBigInt(n));
      this.pos += 8;
    }
  }

  private float(n: number): void {
    this.ensure(9);
    this.buf[this.pos++] = 0xcb;
    this.view.setFloat64(this.pos, n);
    this.pos += 8;
  }

  private optStr(s: string | undefined): void {
    if (s === undefined) this.nil();
    else this.str(s);
  }

  private str(s: string): void {
    const len = s.length;
    // Fast path: short ASCII strings (callsite names, field names, most messages).
    if (len < 32) {
      this.ensure(1 + 3 * len);
      const start = this.pos++;
      let p = start + 1;
      const buf = this.buf;
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[p++] = c;
      }
      if (i === len) {
        buf[start] = 0xa0 | len;
        this.pos = p;
        return;
      }
      this.pos = start; // not ASCII: fall through to the general path
    }
    const bytes = utf8Length(s);
    this.ensure(5 + bytes);
    const buf = this.buf;
    if (bytes < 32) buf[this.pos++] = 0xa0 | bytes;
    else if (bytes < 0x100) {
      buf[this.pos++] = 0xd9;
      buf[this.pos++] = bytes;
    } else if (bytes < 0x10000) {
      buf[this.pos++] = 0xda;
      this.view.setUint16(this.pos, bytes);
      this.pos += 2;
    } else {
      buf[this.pos++] = 0xdb;
      this.view.setUint32(this.pos, bytes);
      this.pos += 4;
    }
    this.pos = writeUtf8(s, buf, this.pos);
  }

  private bin(b: Uint8Array): void {
    const n = typedArrayLength(b); // not `b.length`: a guest may redefine it on its own prototypes
    this.ensure(5 + n);
    if (n < 0x100) {
      this.buf[this.pos++] = 0xc4;
      this.buf[this.pos++] = n;
    } else if (n < 0x10000) {
      this.buf[this.pos++] = 0xc5;
      this.view.setUint16(this.pos, n);
      this.pos += 2;
    } else {
      this.buf[this.pos++] = 0xc6;
      this.view.setUint32(this.pos, n);
      this.pos += 4;
    }
    this.buf.set(b, this.pos);
    this.pos += n;
  }

  /** ext8/16/32 header followed by a payload written by `body`; the header is sized afterwards. */
  private ext(type: number, writeBody: () => void): void {
    this.ensure(6);
    const start = this.pos;
    this.pos += 6; // room for the largest header; moved down when a smaller one fits
    writeBody();
    const size = this.pos - start - 6;
    let header: number;
    if (size < 0x100) header = 3;
    else if (size < 0x10000) header = 4;
    else header = 6;
    if (header !== 6) this.buf.copyWithin(start + header, start + 6, this.pos);
    this.pos = start + header + size;
    const buf = this.buf;
    if (header === 3) {
      buf[start] = 0xc7;
      buf[start + 1] = size;
      buf[start + 2] = type;
    } else if (header === 4) {
      buf[start] = 0xc8;
      this.view.setUint16(start + 1, size);
      buf[start + 3] = type;
    } else {
      buf[start] = 0xc9;
      this.view.setUint32(start + 1, size);
      buf[start + 5] = type;
    }
  }

  private errorBody(e: ErrorValue, depth: number): void {
    this.arrayHeader(2);
    this.str(toText(e.message));
    if (e.source === undefined || depth + 1 >= MAX_ERROR_DEPTH) this.nil();
    else {
      const src = e.source;
      this.ext(ExtType.error, () => this.errorBody(src, depth + 1));
    }
  }

  /** Encodes one field value; `undefined`/`null` and `{ empty: true }` become nil. */
  value(v: Value | null | undefined, depth: number): void {
    switch (typeof v) {
      case 'number':
        if (isSafeInteger(v) && !(v === 0 && 1 / v < 0)) this.int(v); // -0 stays a float
        else this.float(v);
        return;
      case 'string':
        this.str(v);
        return;
      case 'boolean':
        this.byte(v ? 0xc3 : 0xc2);
        return;
      case 'bigint':
        // Beyond 64 bits msgpack has no integer: keep the digits, marked as debug text.
        if (v < -0x8000000000000000n || v > 0xffffffffffffffffn) this.value({ debug: v.toString() }, depth);
        else this.int(v);
        return;
      case 'undefined':
        this.nil();
        return;
    }
    if (v === null) this.nil();
    else if (isUint8Array(v)) this.bin(v);
    else if ('debug' in v) {
      const text = v.debug;
      this.ext(ExtType.debug, () => {
        this.ensure(utf8Length(text));
        this.pos = writeUtf8(text, this.buf, this.pos);
      });
    } else if ('error' in v) {
      const err = v.error;
      this.ext(ExtType.error, () => this.errorBody(err, depth));
    } else this.nil();
  }
}

/** Byte length of `s` in UTF-8 (lone surrogates count as U+FFFD, 3 bytes). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Writes `s` as UTF-8 at `pos` (room must already be there); returns the new position. */
export function writeUtf8(s: string, buf: Uint8Array, pos: number): number {
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) buf[pos++] = c;
    else if (c < 0x800) {
      buf[pos++] = 0xc0 | (c >> 6);
      buf[pos++] = 0x80 | (c & 0x3f);
    } else {
      if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        c = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
        buf[pos++] = 0xf0 | (c >> 18);
        buf[pos++] = 0x80 | ((c >> 12) & 0x3f);
      } else {
        if (c >= 0xd800 && c < 0xe000) c = 0xfffd; // lone surrogate
        buf[pos++] = 0xe0 | (c >> 12);
      }
      buf[pos++] = 0x80 | ((c >> 6) & 0x3f);
      buf[pos++] = 0x80 | (c & 0x3f);
    }
  }
  return pos;
}
