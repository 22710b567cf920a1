/**
 * The host's half of the QuickJS SDK's slot records (guest/quickjs/sdk.ts, "slot records"): when
 * the worker takes the SDK's buffers, the slot records become the protocol records they stand
 * for, in their place among the bytes the SDK encoded itself, so that the frame posted to the
 * host thread is an ordinary protocol v1 frame and nothing downstream knows slots exist.
 *
 * What the guest left in its buffers is not trusted: the SDK realm is reachable by guest code,
 * which can call the SDK's methods on objects of its own making and so write any double into a
 * slot. A slot record that does not make sense (a head that is no valid kind, a value type code
 * out of range, a reference outside the value bytes, a time that is not finite, a marker outside
 * the byte stream) is left out and counted; the records around it are converted as usual.
 */

import type { QuickJSContext, QuickJSHandle } from 'quickjs-emscripten-core';

/** Doubles per slot record, and the kinds (as the SDK writes them). */
export const SLOT_WIDTH = 6;
const SLOT_EVENT = 1;
const SLOT_OPEN = 2;
const SLOT_DROP = 3;
const SLOT_BYTES = 4;
const SLOT_ENTER = 5;
const SLOT_EXIT = 6;
const SLOT_SPAN = 7;
const SLOT_CS = 262144;
/** Doubles of the SDK's largest slot buffer (guest/quickjs/sdk.ts, MAX_SLOT_RECORDS and two more records). */
const MAX_SLOT_DOUBLES = (4096 + 2) * SLOT_WIDTH;

const TAG_NEW_SPAN = 2;
const TAG_SPAN_ENTERED = 4;
const TAG_SPAN_EXITED = 5;
const TAG_SPAN_DROPPED = 7;
const TAG_NEW_EVENT = 9;
const TAG_NEW_SPAN_ENTERED = 12;
/** Nesting a referenced value may have (the reader's own limit on error sources is lower). */
const MAX_DEPTH = 64;

/** What one hand-over of the SDK's buffers holds (views; copied before `convert` returns). */
export interface SdkBuffers {
  /** Bytes the SDK encoded, in runs that markers among the slot records place. */
  bytes: Uint8Array;
  /** Slot records (a multiple of SLOT_WIDTH doubles). */
  slots: Float64Array;
  /** Value bytes the slot records refer to. */
  vals: Uint8Array;
}

/**
 * Turns hand-overs of the SDK's buffers into frames. One per engine: the output buffer is
 * reused, so a frame it returns is valid until the next `convert`.
 */
export class SlotConverter {
  private out = new Uint8Array(65536);
  private view = new DataView(this.out.buffer);
  private p = 0;
  /** Slot records left out since the last `takeInvalid` (see the file comment). */
  private invalid = 0;
  /** Slot records converted so far (markers not counted). */
  converted = 0;
  /** Byte positions of the valid markers of the frame being converted. */
  private runs: Int32Array = new Int32Array(64);

  /** The engine memory a drain's pack was last read from, and a view of it as doubles. */
  private heap: ArrayBufferLike | undefined;
  private heapDoubles: Float64Array<ArrayBufferLike> = new Float64Array(0);

  /** Aligned copy of a hand-over's slot records (engine memory need not be 8-byte aligned). */
  private slotCopy = new Float64Array(4096);

  /**
   * The frame of one hand-over, read from the arguments the SDK passed to its flush (see
   * FlushHost in guest/quickjs/sdk.ts) in `sdk`, its realm: the buffers are read in place and
   * nothing of them is kept. Lengths are clamped to their buffers.
   */
  convertHandOver(sdk: QuickJSContext, args: readonly QuickJSHandle[]): Uint8Array {
    const [bytesH, lengthH, slotsH, slotCountH, valsH, valsLengthH] = args;
    // Only the SDK calls its flush, with these types; no `typeof` check here (one costs about 18 µs).
    const num = (h: QuickJSHandle | undefined) => (h === undefined ? NaN : sdk.getNumber(h));
    const clamp = (n: number, max: number) => (Number.isInteger(n) && n >= 0 ? Math.min(n, max) : 0);
    // Each buffer is copied out as soon as it is read: reading the next one may grow engine
    // memory, which detaches every view into it.
    const copyOut = (h: QuickJSHandle | undefined, n: number, into?: Uint8Array): Uint8Array => {
      if (h === undefined) return new Uint8Array(0);
      const view = sdk.getArrayBuffer(h);
      try {
        const src = view.value.subarray(0, clamp(n, view.value.length));
        if (into === undefined) return src.slice();
        into.set(src);
        return into.subarray(0, src.length);
      } finally {
        view.dispose();
      }
    };
    const bytes = copyOut(bytesH, num(lengthH));
    // No more than the SDK's largest slot buffer holds: a count past it (records written while a
    // hand-over was held back) must not size an allocation here; the excess is counted below.
    const slotCount = clamp(num(slotCountH), MAX_SLOT_DOUBLES);
    const claimed = num(slotCountH);
    if (claimed > slotCount && Number.isFinite(claimed)) this.invalid += Math.ceil((claimed - slotCount) / SLOT_WIDTH);
    if (this.slotCopy.length < slotCount) this.slotCopy = new Float64Array(Math.max(slotCount, this.slotCopy.length * 2));
    const slotBytes = copyOut(slotsH, slotCount * 8, new Uint8Array(this.slotCopy.buffer));
    // Records past the buffer's end were never stored (the SDK holds its hand-over back while a
    // value's conversion runs mid-record, and guest code there may keep writing): counted.
    if (slotBytes.length < slotCount * 8) this.invalid += Math.ceil((slotCount - (slotBytes.length >> 3)) / SLOT_WIDTH);
    const vals = copyOut(valsH, num(valsLengthH));
    return this.convert({ bytes, slots: this.slotCopy.subarray(0, slotBytes.length >> 3), vals });
  }

  /**
   * The frame of a drain's packed buffer (guest/quickjs/sdk.ts, packBuffers): three doubles
   * (byte length, slot count, value length), the slot records, the bytes, the value bytes. A
   * header that does not fit the buffer counts as one invalid record and gives no frame.
   */
  convertPacked(packed: Uint8Array): Uint8Array {
    const clamp = (n: number) => (Number.isInteger(n) && n >= 0 ? n : -1);
    if (packed.length < 24) {
      this.invalid++;
      return new Uint8Array(0);
    }
    // Aligned (engine allocations are): header and slot records are read in place, through one
    // Float64Array over the whole buffer kept while it lasts (views made per drain cost about a
    // microsecond of a short run's). Otherwise copied to an aligned buffer.
    let slots: Float64Array<ArrayBufferLike>;
    let from: number;
    if ((packed.byteOffset & 7) === 0) {
      if (this.heap !== packed.buffer) {
        this.heap = packed.buffer;
        this.heapDoubles = new Float64Array(packed.buffer, 0, packed.buffer.byteLength >> 3);
      }
      slots = this.heapDoubles;
      from = packed.byteOffset >> 3;
    } else {
      if (this.slotCopy.length < (packed.length >> 3)) this.slotCopy = new Float64Array(Math.max(packed.length >> 3, this.slotCopy.length * 2));
      new Uint8Array(this.slotCopy.buffer, 0, packed.length & ~7).set(packed.subarray(0, packed.length & ~7));
      slots = this.slotCopy;
      from = 0;
    }
    const length = clamp(slots[from]!);
    const slotCount = clamp(slots[from + 1]!);
    const valsLength = clamp(slots[from + 2]!);
    if (length < 0 || slotCount < 0 || valsLength < 0 || 24 + slotCount * 8 + length + valsLength > packed.length) {
      this.invalid++;
      return new Uint8Array(0);
    }
    const at = 24 + slotCount * 8;
    return this.convertFrom(packed.subarray(at, at + length), slots, from + 3, from + 3 + slotCount, packed.subarray(at + length, at + length + valsLength));
  }

  /** The frame: the byte stream with every slot record in its place, as protocol records. */
  convert(b: SdkBuffers): Uint8Array {
    return this.convertFrom(b.bytes, b.slots, 0, b.slots.length, b.vals);
  }

  /** convert, for the slot records in `slots` from index `first` up to `stop`. */
  private convertFrom(bytes: Uint8Array, slots: Float64Array<ArrayBufferLike>, first: number, stop: number, vals: Uint8Array): Uint8Array {
    this.p = 0;
    this.ensure(bytes.length + vals.length + ((stop - first) / SLOT_WIDTH) * 48 + 64);
    let base = 0; // the frame's time base, as the receiver will have it
    const end = stop - ((stop - first) % SLOT_WIDTH);
    if (end !== stop) this.invalid++;
    // The byte runs: each from its marker's position to the next valid marker's (the last to the
    // end). Bytes before the first marker (the SDK opens one at 0) come first.
    let runs: Int32Array = this.runs;
    let nRuns = 0;
    let last = 0;
    for (let q = first; q < end; q += SLOT_WIDTH) {
      if (slots[q] !== SLOT_BYTES) continue;
      const at = slots[q + 2]!;
      if (!(Number.isInteger(at) && at >= last && at <= bytes.length && Number.isSafeInteger(slots[q + 1]!))) continue;
      if (nRuns === runs.length) runs = this.runs = growInts(runs);
      runs[nRuns++] = at;
      last = at;
    }
    this.copy(bytes, 0, nRuns > 0 ? runs[0]! : bytes.length);
    let run = 0;
    // The hot loop keeps the output buffer and cursor in locals; every record needs at most
    // RECORD_ROOM bytes besides the value bytes it refers to (copied with their own check).
    let o = this.out;
    let d = this.view;
    let p = this.p;
    for (let q = first; q < end; q += SLOT_WIDTH) {
      const h = slots[q]!;
      if (!(h >= 0 && h <= Number.MAX_SAFE_INTEGER && Math.floor(h) === h)) {
        this.invalid++;
        continue;
      }
      const low = h < 0x80000000 ? h & (SLOT_CS - 1) : h % SLOT_CS; // integer arithmetic when it can
      const kind = low & 7;
      if (kind === SLOT_BYTES) {
        if (run < nRuns && h === SLOT_BYTES && slots[q + 2] === runs[run]) {
          this.p = p;
          this.copy(bytes, runs[run]!, run + 1 < nRuns ? runs[run + 1]! : bytes.length);
          o = this.out;
          d = this.view;
          p = this.p;
          run++;
          base = slots[q + 1]!;
        } else this.invalid++;
        continue;
      }
      const t = Math.round(slots[q + 1]! * 1e6);
      const dt = t - base;
      if (!(dt >= -Number.MAX_SAFE_INTEGER && dt <= Number.MAX_SAFE_INTEGER)) {
        this.invalid++; // not finite
        continue;
      }
      if (p + RECORD_ROOM > o.length) {
        this.p = p;
        this.ensure(RECORD_ROOM);
        o = this.out;
        d = this.view;
      }
      const start = p;
      const n = (low >> 3) & 7;
      let at: number;
      if (kind === SLOT_EVENT && n <= 4) {
        o[p++] = 0x90 | (4 + n);
        o[p++] = TAG_NEW_EVENT;
        p = writeInt(o, d, p, (h - low) / SLOT_CS);
        o[p++] = 0xc0;
        p = writeInt(o, d, p, dt);
        at = q + 2;
      } else if ((kind === SLOT_OPEN || kind === SLOT_SPAN) && n <= 3) {
        o[p++] = 0x90 | (5 + n);
        o[p++] = kind === SLOT_OPEN ? TAG_NEW_SPAN_ENTERED : TAG_NEW_SPAN;
        p = writeNumber(o, d, p, slots[q + 2]!);
        o[p++] = 0xc0;
        p = writeInt(o, d, p, (h - low) / SLOT_CS);
        p = writeInt(o, d, p, dt);
        at = q + 3;
      } else if ((kind === SLOT_DROP || kind === SLOT_ENTER || kind === SLOT_EXIT) && h === kind) {
        o[p++] = 0x93;
        o[p++] = kind === SLOT_DROP ? TAG_SPAN_DROPPED : kind === SLOT_ENTER ? TAG_SPAN_ENTERED : TAG_SPAN_EXITED;
        p = writeNumber(o, d, p, slots[q + 2]!);
        p = writeInt(o, d, p, dt);
        base = t;
        this.converted++;
        continue;
      } else {
        this.invalid++;
        continue;
      }
      // The values: type codes 3 bits each from bit 6 of the head.
      let types = low >> 6;
      let ok = true;
      for (let i = 0; i < n; i++, types >>= 3) {
        const v = slots[at + i]!;
        switch (types & 7) {
          case 0:
            p = writeNumber(o, d, p, v);
            break;
          case 1:
            o[p++] = 0xc3;
            break;
          case 2:
            o[p++] = 0xc2;
            break;
          case 3:
            o[p++] = 0xc0;
            break;
          case 4: {
            // The SDK never refers to an array or a map (its values are scalars, strings, bytes and
            // ext values): refused on sight, a forged reference into bytes shaped like a large
            // array cannot make each record cost a scan of the value bytes.
            const e = v >= 0 && v < vals.length && Math.floor(v) === v && !isContainer(vals[v]!) ? skipValue(vals, v, 0) : -1;
            if (e < 0) {
              ok = false;
              break;
            }
            this.p = p;
            this.copy(vals, v, e);
            if (this.out !== o) {
              o = this.out;
              d = this.view;
            }
            p = this.p;
            // Room again for what is left of the record.
            if (p + RECORD_ROOM > o.length) {
              this.ensure(RECORD_ROOM);
              o = this.out;
              d = this.view;
            }
            break;
          }
          default:
            ok = false;
        }
        if (!ok) break;
      }
      if (ok) {
        base = t;
        this.converted++;
      } else {
        p = start;
        this.invalid++;
      }
    }
    this.p = p;
    return this.out.subarray(0, p);
  }

  /** Slot records left out since the last call. */
  takeInvalid(): number {
    const n = this.invalid;
    this.invalid = 0;
    return n;
  }

  private copy(src: Uint8Array, from: number, to: number): void {
    const n = to - from;
    if (n <= 0) return;
    this.ensure(n);
    const o = this.out;
    let p = this.p;
    if (n <= 32) {
      // A short run (a callsite announcement, a value) by hand: a subarray costs more.
      for (let i = from; i < to; i++) o[p++] = src[i]!;
      this.p = p;
      return;
    }
    o.set(src.subarray(from, to), p);
    this.p = p + n;
  }

  private ensure(n: number): void {
    if (this.p + n <= this.out.length) return;
    let size = this.out.length * 2;
    while (size < this.p + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.out.subarray(0, this.p));
    this.out = next;
    this.view = new DataView(next.buffer);
  }
}

/** Most bytes a record takes besides the value bytes it refers to: header, tag, id, nil, callsite, time, four numbers. */
const RECORD_ROOM = 2 + 9 + 1 + 9 + 9 + 4 * 9;

/** A number as the SDK writes a field value: a safe integer (not -0) as an integer, anything else as a float64. */
function writeNumber(o: Uint8Array, d: DataView, p: number, v: number): number {
  if (Number.isSafeInteger(v) && !(v === 0 && 1 / v < 0)) return writeInt(o, d, p, v);
  o[p] = 0xcb;
  d.setFloat64(p + 1, v);
  return p + 9;
}

/** Smallest msgpack form of a safe integer at `p`; returns the position after it. */
function writeInt(o: Uint8Array, d: DataView, p: number, n: number): number {
  if (n >= 0) {
    if (n < 128) o[p++] = n;
    else if (n < 0x10000) {
      if (n < 0x100) {
        o[p] = 0xcc;
        o[p + 1] = n;
        p += 2;
      } else {
        o[p] = 0xcd;
        o[p + 1] = n >> 8;
        o[p + 2] = n & 0xff;
        p += 3;
      }
    }
    else if (n < 0x100000000) {
      o[p] = 0xce;
      d.setUint32(p + 1, n);
      p += 5;
    } else {
      o[p] = 0xcf;
      d.setUint32(p + 1, Math.floor(n / 0x100000000));
      d.setUint32(p + 5, n >>> 0);
      p += 9;
    }
  } else if (n >= -32) o[p++] = n & 0xff;
  else if (n >= -0x80000000) {
    o[p] = 0xd2;
    d.setInt32(p + 1, n);
    p += 5;
  } else {
    o[p] = 0xd3;
    d.setBigInt64(p + 1, BigInt(n));
    p += 9;
  }
  return p;
}

/** The position after the msgpack value at `p`, or -1 when it is not one whole value within `b`. */
export function skipValue(b: Uint8Array, p: number, depth: number): number {
  if (depth > MAX_DEPTH || p >= b.length) return -1;
  const c = b[p]!;
  let n: number;
  let head: number;
  if (c < 0x80 || c >= 0xe0 || c === 0xc0 || c === 0xc2 || c === 0xc3) return p + 1;
  if (c >= 0xa0 && c <= 0xbf) return within(b, p + 1 + (c & 0x1f));
  if (c >= 0x90 && c <= 0x9f) return skipMany(b, p + 1, c & 0x0f, depth);
  if (c >= 0x80 && c <= 0x8f) return skipMany(b, p + 1, 2 * (c & 0x0f), depth);
  switch (c) {
    case 0xcc:
    case 0xd0:
      return within(b, p + 2);
    case 0xcd:
    case 0xd1:
      return within(b, p + 3);
    case 0xca:
    case 0xce:
    case 0xd2:
      return within(b, p + 5);
    case 0xcb:
    case 0xcf:
    case 0xd3:
      return within(b, p + 9);
    case 0xd4:
      return within(b, p + 3);
    case 0xd5:
      return within(b, p + 4);
    case 0xd6:
      return within(b, p + 6);
    case 0xd7:
      return within(b, p + 10);
    case 0xd8:
      return within(b, p + 18);
  }
  // Lengths that follow the type byte: str/bin/ext 8/16/32, array/map 16/32.
  switch (c) {
    case 0xd9:
    case 0xc4:
    case 0xc7:
      head = 1;
      break;
    case 0xda:
    case 0xc5:
    case 0xc8:
    case 0xdc:
    case 0xde:
      head = 2;
      break;
    case 0xdb:
    case 0xc6:
    case 0xc9:
    case 0xdd:
    case 0xdf:
      head = 4;
      break;
    default:
      return -1; // 0xc1: never used
  }
  if (p + 1 + head > b.length) return -1;
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  n = head === 1 ? b[p + 1]! : head === 2 ? v.getUint16(p + 1) : v.getUint32(p + 1);
  const body = p + 1 + head;
  if (c === 0xdc || c === 0xdd) return skipMany(b, body, n, depth);
  if (c === 0xde || c === 0xdf) return skipMany(b, body, 2 * n, depth);
  if (c === 0xc7 || c === 0xc8 || c === 0xc9) return within(b, body + 1 + n); // ext: a type byte, then the data
  return within(b, body + n);
}

/** A msgpack array or map head (fix, 16 or 32). */
function isContainer(c: number): boolean {
  return (c >= 0x80 && c <= 0x9f) || (c >= 0xdc && c <= 0xdf);
}

function growInts(a: Int32Array): Int32Array {
  const next = new Int32Array(a.length * 2);
  next.set(a);
  return next;
}

function skipMany(b: Uint8Array, p: number, count: number, depth: number): number {
  for (let i = 0; i < count; i++) {
    p = skipValue(b, p, depth + 1);
    if (p < 0) return -1;
  }
  return p;
}

function within(b: Uint8Array, end: number): number {
  return end <= b.length ? end : -1;
}
