/**
 * Protocol v1 frame reader: the host's hot decode path.
 *
 * Written like msgpackr's unpacker (one cursor over one byte array, dispatch on the type byte,
 * slow paths out of line) but it reads the record layout directly into a reusable
 * {@link RawRecord}, so a well-formed record costs no allocation beyond its field values.
 */
import { ExtType, INSTRUMENTS, LEVELS, Tag, type ErrorValue, type Instrument, type Level, type Value } from './records.js';
import { MAX_ERROR_DEPTH } from './frame-writer.js';

/** Why a frame could not be read further. */
/** `limit`: the record is well-formed but larger than the reader accepts (see maxStringBytes). */
export type FrameFault = 'truncated' | 'malformed' | 'limit';

/** Thrown (internally) when a record is bad; `truncated` means the bytes ran out mid-record. */
export class FrameError extends Error {
  constructor(
    readonly fault: FrameFault,
    message: string,
  ) {
    super(message);
    this.name = 'FrameError';
  }
}

/** Largest guest-monotonic time accepted, in ns: 2^53 (about 104 days of guest uptime). */
const MAX_TIME = Number.MAX_SAFE_INTEGER;

/**
 * The scratch form of one record. Only the fields of the current `tag` are meaningful; `values`
 * and `indices` are reused between records, and `count` says how many of them are valid.
 */
export class RawRecord {
  tag = -1;
  /** Span id (for newCallSite: the callsite's id; newSpan/newEvent name their callsite in `callsite`). */
  id = 0;
  callsite = 0;
  parent: number | null | undefined = undefined;
  /** Absolute guest-monotonic ns, or -1 when the record carries no timestamp. */
  time = -1;
  follows = 0;
  /** Number of values still unread in the record (see {@link FrameReader.readValues}). */
  pending = 0;
  count = 0;
  values: Value[] = [];
  indices: number[] = [];
  // hello
  version = 0;
  guestKind = '';
  sdkVersion = '';
  clockOrigin: bigint = 0n;
  /** hello's minor revision (0 when the hello has no sixth element). */
  minor = 0;
  // newCallSite
  kind: 'span' | 'event' = 'span';
  name = '';
  target = '';
  level: Level = 'info';
  modulePath: string | undefined = undefined;
  file: string | undefined = undefined;
  line: number | undefined = undefined;
  fields: string[] = [];
  // metric
  instrument: Instrument = 'counter';
  metricValue: number | bigint = 0;
  attributes: Array<[string, Value]> | undefined = undefined;
  // dropped
  droppedCount = 0;
}

const textDecoder = new TextDecoder('utf-8', { fatal: false });
const NO_BYTES = new Uint8Array(0);
const NO_VIEW = new DataView(NO_BYTES.buffer);

/** Strings shorter than this (in bytes) go through the short-string cache (see {@link FrameReader}). */
const SHORT_STRING = 16;
/** Slots of the short-string cache (a power of two). */
const STRING_CACHE_SLOTS = 256;
/**
 * Short ASCII strings decoded before, one per slot chosen by the length and a few of the bytes.
 * A guest repeats the same short values (routes, messages, enum-like fields) record after record;
 * a hit returns the string made before instead of building an equal one (the bytes are compared,
 * so a hit is always the right string). Shared by every reader of the thread: what it holds is
 * found by content, so no reader can see another's state in it, a new execution starts with the
 * strings the last one used, and a live execution costs no table of its own.
 */
const shortStrings: string[] = new Array<string>(STRING_CACHE_SLOTS).fill('');

/**
 * Reads the records of one frame.
 *
 * @example
 * const r = new FrameReader();
 * r.reset(bytes);
 * const rec = new RawRecord();
 * while (!r.done) { r.readHead(rec); r.readValues(rec); use(rec); }
 */
export class FrameReader {
  private bytes: Uint8Array = NO_BYTES;
  private view: DataView = NO_VIEW;
  pos = 0;
  private end = 0;
  private lastTime = 0;
  /** Position where the current record started (for resynchronising after a bad record). */
  recordStart = 0;
  /** Strings and binary values longer than this reject their record (fault `limit`); they are skipped, never decoded. */
  maxStringBytes = 1 << 20;
  /** Values with deeper error chains or nested arrays/maps are rejected. */
  maxDepth = MAX_ERROR_DEPTH;

  reset(bytes: Uint8Array): void {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
    this.end = bytes.length;
    this.lastTime = 0;
  }

  /** Lets go of the frame read last (a reader kept between frames holds no bytes). */
  release(): void {
    this.bytes = NO_BYTES;
    this.view = NO_VIEW;
    this.pos = this.end = 0;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /**
   * Reads a record up to (not including) its field values. For newSpan / newEvent /
   * valuesRecorded, `rec.pending` says how many values follow; call {@link readValues} or
   * {@link skipRest}. Throws {@link FrameError}.
   */
  readHead(rec: RawRecord): void {
    this.recordStart = this.pos;
    const n = this.arrayLength();
    if (n < 2) this.malformed(`record array has ${n} elements`);
    const tag = this.u53('tag');
    rec.tag = tag;
    rec.pending = 0;
    rec.count = 0;
    let rest = n - 2; // elements beyond the ones this version defines
    switch (tag) {
      case Tag.hello:
        this.need(n, 5, tag);
        rec.version = this.u53('version');
        rec.guestKind = this.str();
        rec.sdkVersion = this.str();
        rec.clockOrigin = this.bigInt();
        rec.minor = n >= 6 ? this.u53('minor') : 0;
        rest = n - (n >= 6 ? 6 : 5);
        break;
      case Tag.newCallSite:
        this.need(n, 10, tag);
        this.readCallsite(rec);
        rest = n - 10;
        break;
      case Tag.newSpan:
      case Tag.newSpanEntered:
        this.need(n, 5, tag);
        rec.id = this.u53('span id');
        rec.parent = this.parentRef();
        rec.callsite = this.u53('callsite id');
        rec.time = this.time();
        rec.pending = n - 5;
        return;
      case Tag.followsFrom:
        this.need(n, 3, tag);
        rec.id = this.u53('span id');
        rec.follows = this.u53('follows-from span id');
        rest = n - 3;
        break;
      case Tag.spanEntered:
      case Tag.spanExited:
      case Tag.spanDropped:
        this.need(n, 3, tag);
        rec.id = this.u53('span id');
        rec.time = this.time();
        rest = n - 3;
        break;
      case Tag.spanCloned:
        rec.id = this.u53('span id');
        rest = n - 2;
        break;
      case Tag.valuesRecorded:
        rec.id = this.u53('span id');
        if ((n - 2) % 2 !== 0) this.malformed('valuesRecorded needs index/value pairs');
        rec.pending = (n - 2) >> 1;
        return;
      case Tag.newEvent:
        this.need(n, 4, tag);
        rec.callsite = this.u53('callsite id');
        rec.parent = this.parentRef();
        rec.time = this.time();
        rec.pending = n - 4;
        return;
      case Tag.metric:
        this.need(n, 5, tag);
        this.readMetric(rec, n);
        rest = n - (n >= 6 ? 6 : 5);
        break;
      case Tag.dropped:
        rec.droppedCount = this.u53('drop count');
        rest = n - 2;
        break;
      default:
        this.malformed(`unknown record tag ${tag}`);
    }
    // Newer minor versions may append fields; skip them.
    for (let i = 0; i < rest; i++) this.skip(0);
  }

  /** Reads the pending values of the current record into `rec.values` (and `rec.indices`). */
  readValues(rec: RawRecord): void {
    const n = rec.pending;
    const values = rec.values;
    if (rec.tag === Tag.valuesRecorded) {
      const indices = rec.indices;
      for (let i = 0; i < n; i++) {
        indices[i] = this.u53('field index');
        values[i] = this.value(0);
      }
    } else {
      for (let i = 0; i < n; i++) values[i] = this.value(0);
    }
    rec.count = n;
    rec.pending = 0;
  }

  /** Skips the pending values of the current record. */
  skipRest(rec: RawRecord): void {
    const n = rec.tag === Tag.valuesRecorded ? rec.pending * 2 : rec.pending;
    for (let i = 0; i < n; i++) this.skip(0);
    rec.pending = 0;
  }

  /**
   * Moves the cursor past the record at it without decoding its values (nothing is allocated,
   * however large they are) and returns the record's byte length. A timestamp in the record
   * still moves the frame's time base, so the records after it keep their times. Throws
   * {@link FrameError} as {@link readHead} does.
   */
  skipRecord(): number {
    const start = (this.recordStart = this.pos);
    const n = this.arrayLength();
    if (n < 2) this.malformed(`record array has ${n} elements`);
    const tag = this.u53('tag');
    let timeAt = -1; // element index of the record's timestamp, when it has one
    switch (tag) {
      case Tag.newSpan:
      case Tag.newSpanEntered:
      case Tag.metric:
        if (n >= 5) timeAt = 4;
        break;
      case Tag.newEvent:
        if (n >= 4) timeAt = 3;
        break;
      case Tag.spanEntered:
      case Tag.spanExited:
      case Tag.spanDropped:
        if (n >= 3) timeAt = 2;
        break;
    }
    for (let i = 1; i < n; i++) {
      if (i === timeAt) this.time();
      else this.skip(0);
    }
    return this.pos - start;
  }

  /**
   * When the record at the cursor is longer than `maxBytes`, moves past it as
   * {@link skipRecord} does and returns its length; otherwise leaves the cursor and the time
   * base as they were and returns 0. A record that cannot be longer than `maxBytes` (fewer bytes
   * remain) is not scanned.
   */
  skipIfLonger(maxBytes: number): number {
    if (this.end - this.pos <= maxBytes) return 0;
    const pos = this.pos;
    const time = this.lastTime;
    const len = this.skipRecord();
    if (len > maxBytes) return len;
    this.pos = pos;
    this.lastTime = time;
    return 0;
  }

  /**
   * After a bad record, moves the cursor past it when its msgpack structure is intact.
   * Returns false when the bytes cannot be resynchronised (the rest of the frame is lost).
   */
  resync(): boolean {
    this.pos = this.recordStart;
    try {
      this.skip(0);
      return true;
    } catch {
      return false;
    }
  }

  // ---- record parts ------------------------------------------------------------------------

  private readCallsite(rec: RawRecord): void {
    rec.id = this.u53('callsite id');
    const kind = this.u53('callsite kind');
    if (kind > 1) this.malformed(`callsite kind ${kind}`);
    rec.kind = kind === 0 ? 'span' : 'event';
    rec.name = this.str();
    rec.target = this.str();
    const level = this.u53('level');
    if (level >= LEVELS.length) this.malformed(`level ${level}`);
    rec.level = LEVELS[level]!;
    rec.modulePath = this.optStr();
    rec.file = this.optStr();
    if (this.peek() === 0xc0) {
      this.pos++;
      rec.line = undefined;
    } else rec.line = this.u53('line');
    const nf = this.arrayLength();
    if (nf > this.end - this.pos) this.truncated(); // every element takes at least a byte
    const fields: string[] = new Array(nf);
    for (let i = 0; i < nf; i++) fields[i] = this.str();
    rec.fields = fields;
  }

  private readMetric(rec: RawRecord, n: number): void {
    const inst = this.u53('instrument');
    if (inst >= INSTRUMENTS.length) this.malformed(`instrument ${inst}`);
    rec.instrument = INSTRUMENTS[inst]!;
    const nameStart = this.pos;
    const name = this.strBeforeTime();
    const v = this.value(0);
    if (typeof v !== 'number' && typeof v !== 'bigint') this.malformed('metric value must be a number');
    rec.metricValue = v;
    rec.time = this.time();
    if (name === undefined) {
      this.pos = nameStart;
      throw this.stringLimit(this.strLength());
    }
    rec.name = name;
    rec.attributes = undefined;
    if (n >= 6) {
      if (this.peek() === 0xc0) this.pos++;
      else {
        const m = this.mapLength();
        if (2 * m > this.end - this.pos) this.truncated();
        const attrs: Array<[string, Value]> = new Array(m);
        for (let i = 0; i < m; i++) attrs[i] = [this.str(), this.value(1)];
        rec.attributes = attrs;
      }
    }
  }

  private need(n: number, min: number, tag: number): void {
    if (n < min) this.malformed(`record tag ${tag} needs ${min} elements, has ${n}`);
  }

  private parentRef(): number | null | undefined {
    const b = this.peek();
    if (b === 0xc0) {
      this.pos++;
      return undefined;
    }
    if (b === 0xc2) {
      this.pos++;
      return null;
    }
    return this.u53('parent span id');
  }

  /** A timestamp delta against the frame's time base, or nil. Returns absolute ns, or -1. */
  private time(): number {
    if (this.peek() === 0xc0) {
      this.pos++;
      return -1;
    }
    const d = this.intValue();
    const t = this.lastTime + (typeof d === 'number' ? d : Number(d));
    if (!(t >= 0 && t <= MAX_TIME)) this.malformed(`timestamp ${t} out of range`);
    this.lastTime = t;
    return t;
  }

  // ---- msgpack primitives ------------------------------------------------------------------

  private peek(): number {
    if (this.pos >= this.end) this.truncated();
    return this.bytes[this.pos]!;
  }

  private take(n: number): number {
    const p = this.pos;
    if (p + n > this.end) this.truncated();
    this.pos = p + n;
    return p;
  }

  private arrayLength(): number {
    const b = this.peek();
    if ((b & 0xf0) === 0x90) {
      this.pos++;
      return b & 0x0f;
    }
    if (b === 0xdc) return this.view.getUint16(this.take(3) + 1);
    if (b === 0xdd) return this.view.getUint32(this.take(5) + 1);
    return this.malformed(`expected an array, found byte 0x${b.toString(16)}`);
  }

  private mapLength(): number {
    const b = this.peek();
    if ((b & 0xf0) === 0x80) {
      this.pos++;
      return b & 0x0f;
    }
    if (b === 0xde) return this.view.getUint16(this.take(3) + 1);
    if (b === 0xdf) return this.view.getUint32(this.take(5) + 1);
    return this.malformed(`expected a map, found byte 0x${b.toString(16)}`);
  }

  /** A non-negative integer that fits a JS number exactly (ids, counts, indices). */
  private u53(what: string): number {
    const b = this.peek();
    if (b < 0x80) {
      this.pos++;
      return b;
    }
    const v = this.intValue();
    if (typeof v !== 'number' || v < 0) return this.malformed(`${what} must be a non-negative integer below 2^53`);
    return v;
  }

  private bigInt(): bigint {
    const v = this.intValue();
    return typeof v === 'bigint' ? v : BigInt(v);
  }

  /** Any msgpack integer: a number when it fits 2^53, a bigint beyond. */
  private intValue(): number | bigint {
    const b = this.peek();
    if (b < 0x80) {
      this.pos++;
      return b;
    }
    if (b >= 0xe0) {
      this.pos++;
      return b - 0x100;
    }
    const view = this.view;
    switch (b) {
      case 0xcc:
        return this.bytes[this.take(2) + 1]!;
      case 0xcd:
        return view.getUint16(this.take(3) + 1);
      case 0xce:
        return view.getUint32(this.take(5) + 1);
      case 0xcf: {
        const p = this.take(9) + 1;
        const hi = view.getUint32(p);
        if (hi < 0x200000) return hi * 0x100000000 + view.getUint32(p + 4);
        return view.getBigUint64(p);
      }
      case 0xd0:
        return view.getInt8(this.take(2) + 1);
      case 0xd1:
        return view.getInt16(this.take(3) + 1);
      case 0xd2:
        return view.getInt32(this.take(5) + 1);
      case 0xd3: {
        const p = this.take(9) + 1;
        const hi = view.getInt32(p);
        if (hi >= -0x200000 && hi < 0x200000) return hi * 0x100000000 + view.getUint32(p + 4);
        return view.getBigInt64(p);
      }
    }
    return this.malformed(`expected an integer, found byte 0x${b.toString(16)}`);
  }

  private optStr(): string | undefined {
    if (this.peek() === 0xc0) {
      this.pos++;
      return undefined;
    }
    return this.str();
  }

  private str(): string {
    return this.utf8(this.strLength());
  }

  /** Reads a string header; returns the byte length of the string that follows. */
  private strLength(): number {
    const b = this.peek();
    if ((b & 0xe0) === 0xa0) {
      this.pos++;
      return b & 0x1f;
    }
    if (b === 0xd9) return this.bytes[this.take(2) + 1]!;
    if (b === 0xda) return this.view.getUint16(this.take(3) + 1);
    if (b === 0xdb) return this.view.getUint32(this.take(5) + 1);
    return this.malformed(`expected a string, found byte 0x${b.toString(16)}`);
  }

  /**
   * A string read where the record's timestamp comes later: an over-long one is skipped and
   * returned as undefined, so the caller can still read the timestamp (which moves the frame's
   * time base for every later record) before rejecting the record.
   */
  private strBeforeTime(): string | undefined {
    const len = this.strLength();
    if (len <= this.maxStringBytes) return this.utf8(len);
    this.take(len);
    return undefined;
  }

  private stringLimit(len: number): FrameError {
    return new FrameError('limit', `string of ${len} bytes exceeds maxStringBytes (${this.maxStringBytes}) (record at byte ${this.recordStart})`);
  }

  private utf8(len: number): string {
    if (len > this.maxStringBytes) throw this.stringLimit(len);
    const start = this.take(len);
    const bytes = this.bytes;
    if (len < SHORT_STRING) {
      const s = this.shortString(start, len);
      if (s !== null) return s;
    }
    return textDecoder.decode(bytes.subarray(start, start + len));
  }

  /** A short string from the cache, or made and cached; null when a byte is not ASCII. */
  private shortString(start: number, len: number): string | null {
    if (len === 0) return '';
    const bytes = this.bytes;
    const last = start + len - 1;
    // The slot from the length and three of the bytes: cheap, and the comparison below makes
    // any collision harmless (a miss). Cached strings are ASCII, so bytes equal to one are too.
    const slot = (len * 0x9e5 + bytes[start]! * 0x3b + bytes[last]! * 0x11 + bytes[start + (len >> 1)]!) & (STRING_CACHE_SLOTS - 1);
    const cached = shortStrings[slot]!;
    if (cached.length === len) {
      let i = 0;
      while (i < len && cached.charCodeAt(i) === bytes[start + i]) i++;
      if (i === len) return cached;
    }
    // Short ASCII is faster by hand than through TextDecoder, and one fromCharCode call makes
    // one string (appending char by char would allocate a string per character).
    const made = shortAscii(bytes, start, len);
    if (made !== null) shortStrings[slot] = made;
    return made;
  }

  /** One field value (see Value in records.ts). */
  value(depth: number): Value {
    const b = this.peek();
    if (b < 0x80) {
      this.pos++;
      return b;
    }
    if ((b & 0xe0) === 0xa0) return this.str();
    switch (b) {
      case 0xc0:
        this.pos++;
        return EMPTY;
      case 0xc2:
        this.pos++;
        return false;
      case 0xc3:
        this.pos++;
        return true;
      case 0xca:
        return this.view.getFloat32(this.take(5) + 1);
      case 0xcb:
        return this.view.getFloat64(this.take(9) + 1);
      case 0xd9:
      case 0xda:
      case 0xdb:
        return this.str();
      case 0xc4:
      case 0xc5:
      case 0xc6:
        return this.bin(b);
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8:
      case 0xc7:
      case 0xc8:
      case 0xc9:
        return this.extValue(b, depth);
    }
    if (b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) return this.intValue();
    return this.malformed(`unsupported value type byte 0x${b.toString(16)}`);
  }

  private bin(b: number): Uint8Array {
    let len: number;
    if (b === 0xc4) len = this.bytes[this.take(2) + 1]!;
    else if (b === 0xc5) len = this.view.getUint16(this.take(3) + 1);
    else len = this.view.getUint32(this.take(5) + 1);
    if (len > this.maxStringBytes) throw new FrameError('limit', `binary value of ${len} bytes exceeds maxStringBytes (${this.maxStringBytes}) (record at byte ${this.recordStart})`);
    const start = this.take(len);
    return this.bytes.slice(start, start + len);
  }

  private extHeader(b: number): { type: number; len: number } {
    let len: number;
    let p: number;
    if (b >= 0xd4 && b <= 0xd8) {
      len = 1 << (b - 0xd4);
      p = this.take(2);
      return { type: this.view.getInt8(p + 1), len };
    }
    if (b === 0xc7) {
      p = this.take(3);
      len = this.bytes[p + 1]!;
      return { type: this.view.getInt8(p + 2), len };
    }
    if (b === 0xc8) {
      p = this.take(4);
      return { type: this.view.getInt8(p + 3), len: this.view.getUint16(p + 1) };
    }
    p = this.take(6);
    return { type: this.view.getInt8(p + 5), len: this.view.getUint32(p + 1) };
  }

  private extValue(b: number, depth: number): Value {
    const { type, len } = this.extHeader(b);
    if (type === ExtType.debug) return { debug: this.utf8(len) };
    if (type === ExtType.error) return { error: this.errorPayload(len, depth) };
    return this.malformed(`unknown extension type ${type}`);
  }

  private errorPayload(len: number, depth: number): ErrorValue {
    if (depth >= this.maxDepth) this.malformed('error source chain too deep');
    const end = this.pos + len;
    if (end > this.end) this.truncated();
    if (this.arrayLength() < 1) this.malformed('error value needs a message');
    const message = this.str();
    const err: ErrorValue = { message };
    if (this.pos < end) {
      const s = this.peek();
      if (s === 0xc0) this.pos++;
      else {
        const src = this.value(depth + 1);
        if (typeof src !== 'object' || src === null || !('error' in src)) this.malformed('error source must be an error');
        err.source = src.error;
      }
    }
    if (this.pos !== end) this.malformed('error payload length mismatch');
    return err;
  }

  /** Skips one msgpack value of any type, checking structure but not meaning. */
  private skip(depth: number): void {
    if (depth > 64) this.malformed('nesting too deep');
    const b = this.peek();
    if (b < 0x80 || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) {
      this.pos++;
      return;
    }
    if ((b & 0xe0) === 0xa0) {
      this.take(1 + (b & 0x1f));
      return;
    }
    if ((b & 0xf0) === 0x90 || b === 0xdc || b === 0xdd) {
      const n = this.arrayLength();
      for (let i = 0; i < n; i++) this.skip(depth + 1);
      return;
    }
    if ((b & 0xf0) === 0x80 || b === 0xde || b === 0xdf) {
      const n = this.mapLength();
      for (let i = 0; i < 2 * n; i++) this.skip(depth + 1);
      return;
    }
    const v = this.view;
    switch (b) {
      case 0xcc: case 0xd0: this.take(2); return;
      case 0xcd: case 0xd1: this.take(3); return;
      case 0xce: case 0xd2: case 0xca: this.take(5); return;
      case 0xcf: case 0xd3: case 0xcb: this.take(9); return;
      case 0xd9: case 0xc4: { const p = this.take(2); this.take(this.bytes[p + 1]!); return; }
      case 0xda: case 0xc5: { const p = this.take(3); this.take(v.getUint16(p + 1)); return; }
      case 0xdb: case 0xc6: { const p = this.take(5); this.take(v.getUint32(p + 1)); return; }
      case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: case 0xc7: case 0xc8: case 0xc9: {
        const { len } = this.extHeader(b);
        this.take(len);
        return;
      }
    }
    this.malformed(`invalid msgpack byte 0x${b.toString(16)}`);
  }

  private truncated(): never {
    throw new FrameError('truncated', `frame ends in the middle of a record (at byte ${this.recordStart})`);
  }

  private malformed(message: string): never {
    throw new FrameError('malformed', `${message} (record at byte ${this.recordStart})`);
  }
}

const fromCharCode = String.fromCharCode;

/**
 * A short ASCII string in one allocation, or null when a byte is not ASCII. Written out per
 * length (as msgpackr does) so the check and the copy need no loop and no temporary array.
 */
function shortAscii(b: Uint8Array, p: number, len: number): string | null {
  switch (len) {
    case 0:
      return '';
    case 1: {
      const c0 = b[p]!;
      return (c0) & 0x80 ? null : fromCharCode(c0);
    }
    case 2: {
      const c0 = b[p]!, c1 = b[p + 1]!;
      return (c0 | c1) & 0x80 ? null : fromCharCode(c0, c1);
    }
    case 3: {
      const c0 = b[p]!, c1 = b[p + 1]!, c2 = b[p + 2]!;
      return (c0 | c1 | c2) & 0x80 ? null : fromCharCode(c0, c1, c2);
    }
    case 4: {
      const c0 = b[p]!, c1 = b[p + 1]!, c2 = b[p + 2]!, c3 = b[p + 3]!;
      return (c0 | c1 | c2 | c3) & 0x80 ? null : fromCharCode(c0, c1, c2, c3);
    }
    case 5: {
      const c0 = b[p]!, c1 = b[p + 1]!, c2 = b[p + 2]!, c3 = b[p + 3]!, c4 = b[p + 4]!;
      return (c0 | c1 | c2 | c3 | c4) & 0x80 ? null : fromCharCode(c0, c1, c2, c3, c4);
    }
    case 6: {
      const c0 = b[p]!, c1 = b[p + 1]!, c2 = b[p + 2]!, c3 = b[p + 3]!, c4 = b[p + 4]!, c5 = b[p + 5]!;
      return (c0 | c1 | c2 | c3 | c4 | c5) & 0x80 ? null : fromCharCode(c0, c1, c2, c3, c4, c5);
    }
    case 7: {
      const c0 = b[p]!, c1 = b[p + 1]!, c2 = b[p + 2]!, c3 = b[p + 3]!, c4 = b[p + 4]!, c5 = b[p + 5]!, c6 = b[p + 6]!;
      return (c0 | c1 | c2 | c3 | c4 | c5 | c6) & 0x80 ? null : fromCharCode(c0, c1, c2, c3, c4, c5, c6);
    }
    case 8: {
      const c0 = b[p]!, c1 = b[p + 1]!, c2 = b[p + 2]!, c3 = b[p + 3]!, c4 = b[p + 4]!, c5 = b[p + 5]!, c6 = b[p + 6]!, c7 = b[p + 7]!;
      return (c0 | c1 | c2 | c3 | c4 | c5 | c6 | c7) & 0x80 ? null : fromCharCode(c0, c1, c2, c3, c4, c5, c6, c7);
    }
    case 9: {
      const c0 = b[p]!, c1 = b[p + 1]!, c2 = b[p + 2]!, c3 = b[p + 3]!, c4 = b[p + 4]!, c5 = b[p + 5]!, c6 = b[p + 6]!, c7 = b[p + 7]!, c8 = b[p + 8]!;
      return (c0 | c1 | c2 | c3 | c4 | c5 | c6 | c7 | c8) & 0x80 ? null : fromCharCode(c0, c1, c2, c3, c4, c5, c6, c7, c8);
    }
    case 10: {
      const c0 = b[p]!, c1 = b[p + 1]!, c2 = b[p + 2]!, c3 = b[p + 3]!, c4 = b[p + 4]!, c5 = b[p + 5]!, c6 = b[p + 6]!, c7 = b[p + 7]!, c8 = b[p + 8]!, c9 = b[p + 9]!;
      return (c0 | c1 | c2 | c3 | c4 | c5 | c6 | c7 | c8 | c9) & 0x80 ? null : fromCharCode(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9);
    }
    case 11: {
      const c0 = b[p]!, c1 = b[p + 1]!, c2 = b[p + 2]!, c3 = b[p + 3]!, c4 = b[p + 4]!, c5 = b[p + 5]!, c6 = b[p + 6]!, c7 = b[p + 7]!, c8 = b[p + 8]!, c9 = b[p + 9]!, c10 = b[p + 10]!;
      return (c0 | c1 | c2 | c3 | c4 | c5 | c6 | c7 | c8 | c9 | c10) & 0x80 ? null : fromCharCode(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10);
    }
    case 12: {
      const c0 = b[p]!, c1 = b[p + 1]!, c2 = b[p + 2]!, c3 = b[p + 3]!, c4 = b[p + 4]!, c5 = b[p + 5]!, c6 = b[p + 6]!, c7 = b[p + 7]!, c8 = b[p + 8]!, c9 = b[p + 9]!, c10 = b[p + 10]!, c11 = b[p + 11]!;
      return (c0 | c1 | c2 | c3 | c4 | c5 | c6 | c7 | c8 | c9 | c10 | c11) & 0x80 ? null : fromCharCode(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11);
    }
    default: {
      for (let i = p; i < p + len; i++) if (b[i]! & 0x80) return null;
      return fromCharCode.apply(null, b.subarray(p, p + len) as unknown as number[]);
    }
  }
}

/** The value of a field declared but not recorded yet (decoded from nil). */
export const EMPTY: { empty: true } = Object.freeze({ empty: true }) as { empty: true };
