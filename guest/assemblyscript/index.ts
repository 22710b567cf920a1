// sandtrace for AssemblyScript guests.
//
// Records are encoded as protocol v1 (shared/PROTOCOL.md) into a static buffer in linear memory
// and handed to the host in one import call when the buffer fills; the host takes the rest at
// every return, and after a trap or abort it reads the buffer without calling into the module.
//
//   import { SpanCallsite, EventCallsite, Level } from "sandtrace";
//   const HANDLE = new SpanCallsite("handle", "plugin", Level.INFO, ["user"]);
//   const LOADED = new EventCallsite("loaded", "plugin", Level.INFO, ["message", "items"]);
//   export function run(): void {
//     const span = HANDLE.span().str("alice").open();
//     span.enter();
//     LOADED.event().str("cache warm").i64(3).emit();
//     span.exit();
//     span.close();
//   }
//
// A step of a durable workflow resumes the span an earlier step left open by its callsite:
//   const wf = WORKFLOW.resume();   // Span | null
//   if (wf !== null) { wf.enter(); …; wf.exit(); wf.close(); }

// `stateBytes` (the size of STATE) tells the host which fields the block has: modules built with
// the library before it grew to 32 bytes pass three arguments, and the host writes nothing past +24.
@external("sandtrace", "attach")
declare function hostAttach(state: usize, buffer: usize, capacity: u32, stateBytes: u32): void;
@external("sandtrace", "flush")
declare function hostFlush(buffer: usize, length: u32): void;
@external("sandtrace", "now")
declare function hostNow(): f64;
// The guest id of the span carried over from an earlier execution whose callsite has this name
// and target (UTF-16LE, lengths in bytes), or 0 when none is carried.
@external("sandtrace", "resume")
declare function hostResume(name: usize, nameBytes: u32, target: usize, targetBytes: u32): u32;

export namespace Level {
  export const TRACE: i32 = 0;
  export const DEBUG: i32 = 1;
  export const INFO: i32 = 2;
  export const WARN: i32 = 3;
  export const ERROR: i32 = 4;
}

const CAPACITY: u32 = 65536;
const BUF: usize = memory.data(<i32>CAPACITY, 16);
// The state block, shared with the host (offsets are part of the host contract):
//   +0  u32  committed: bytes of complete records in BUF
//   +4  i32  minimum level, written by the host
//   +8  f64  time base of the current frame (guest-monotonic ns); the host zeroes it when it drains
//   +16 u32  records the guest dropped (a record larger than the buffer)
//   +20 u32  attached flag
//   +24 u32  first span id this execution may allocate, written by the host at attach (0: none
//            given). A resumed step of a workflow starts its span ids there, above every id an
//            earlier execution allocated (the host owns span ids across executions).
//   +28 u32  reserved (0)
// The guest passes the block's size to `attach`; the host writes +24 only to a block that has it.
const STATE_BYTES: u32 = 32;
const STATE: usize = memory.data(<i32>STATE_BYTES, 8);

const TAG_CALLSITE: u8 = 1;
const TAG_SPAN: u8 = 2;
const TAG_FOLLOWS: u8 = 3;
const TAG_ENTER: u8 = 4;
const TAG_EXIT: u8 = 5;
const TAG_DROP: u8 = 7;
const TAG_RECORD: u8 = 8;
const TAG_EVENT: u8 = 9;
const TAG_METRIC: u8 = 10;

// Cursor of the record being written, where it started, and where its time field sits.
let cur: usize = BUF;
let recStart: usize = BUF;
let timePos: usize = 0;
let timeEnd: usize = 0;
let recTime: f64 = 0;
let writing = false;
/** Which builder owns the record being written (0: none); starting any record revokes it. */
let owner: u32 = 0;
const OWNER_EVENT: u32 = 1;
const OWNER_SPAN: u32 = 2;
const OWNER_METRIC: u32 = 3;
let nextCallsite: u32 = 1;
let nextSpan: u32 = 1;

@inline function minLevel(): i32 {
  return load<i32>(STATE, 4);
}

function attach(): void {
  store<u32>(STATE, 1, 20);
  hostAttach(STATE, BUF, CAPACITY, STATE_BYTES);
  // The host's first span id for this execution; never below an id already allocated.
  const first = load<u32>(STATE, 24);
  if (first > nextSpan) nextSpan = first;
}

/** True when the host wants records of this level (attaching to the host on first use). */
export function enabled(level: i32): bool {
  if (level < minLevel()) return false;
  if (load<u32>(STATE, 20) == 0) {
    attach();
    return level >= minLevel();
  }
  return true;
}

/**
 * The next guest span id: never below the host's first id for this execution (read again here,
 * not only at attach, for a module with its own memory that attached while it was instantiated,
 * before the host could write to that memory).
 */
@inline function allocSpanId(): u32 {
  const first = load<u32>(STATE, 24);
  if (first > nextSpan) nextSpan = first;
  return nextSpan++;
}

/**
 * Starts the spans of a resumed execution above `id`. Not needed any more: the host gives the
 * first span id through the state block at attach.
 */
export function resumeSpanIdsAfter(id: u32): void {
  if (id >= nextSpan) nextSpan = id + 1;
}

// ---- record framing --------------------------------------------------------------------------

@inline function begin(worst: u32): bool {
  recStart = BUF + <usize>load<u32>(STATE);
  cur = recStart;
  writing = true;
  owner = 0;
  timePos = 0;
  return room(worst);
}

/** Makes `n` bytes of room for the record being written, flushing earlier records if needed. */
@inline function room(n: u32): bool {
  if (cur + n <= BUF + CAPACITY) return true;
  return makeRoom(n);
}

function makeRoom(n: u32): bool {
  if (!writing) return false;
  const partial = <u32>(cur - recStart);
  if (partial + n + 9 > CAPACITY) {
    // This record can never fit: drop it and say so.
    writing = false;
    store<u32>(STATE, load<u32>(STATE, 16) + 1, 16);
    return false;
  }
  const committed = load<u32>(STATE);
  if (committed > 0) hostFlush(BUF, committed);
  store<u32>(STATE, 0);
  // Move the partial record to the front of a new frame, whose time base is zero: its time
  // field is rewritten as an absolute time (the delta it had was against the old frame).
  if (timePos == 0) {
    memory.copy(BUF, recStart, partial);
    cur = BUF + partial;
    store<f64>(STATE, 0, 8);
  } else {
    const head = <u32>(timePos - recStart);
    const tail = <u32>(cur - timeEnd);
    memory.copy(BUF, recStart, head);
    const width = intWidth(<i64>recTime);
    memory.copy(BUF + head + width, timeEnd, tail);
    cur = BUF + head;
    timePos = cur;
    wInt(<i64>recTime);
    timeEnd = cur;
    cur += tail;
    store<f64>(STATE, recTime, 8);
  }
  recStart = BUF;
  return true;
}

/** Commits the record: from now on the host sees it, even if the guest traps. */
@inline function commit(): void {
  if (!writing) return;
  writing = false;
  store<u32>(STATE, <u32>(cur - BUF));
  if (load<u32>(STATE) > CAPACITY - 1024) flushNow();
}

/** Hands every complete record to the host now. */
export function flushNow(): void {
  const committed = load<u32>(STATE);
  if (committed == 0) return;
  hostFlush(BUF, committed);
  store<u32>(STATE, 0);
  store<f64>(STATE, 0, 8);
}

// ---- msgpack writers (big-endian, smallest forms, matching shared/frame-writer.ts) -----------

@inline function w8(b: u32): void {
  store<u8>(cur, <u8>b);
  cur += 1;
}

@inline function wArray(n: u32): void {
  if (n < 16) w8(0x90 | n);
  else {
    w8(0xdc);
    store<u16>(cur, bswap<u16>(<u16>n));
    cur += 2;
  }
}

function intWidth(v: i64): u32 {
  if (v >= 0) {
    if (v < 128) return 1;
    if (v < 0x100) return 2;
    if (v < 0x10000) return 3;
    if (v < 0x100000000) return 5;
    return 9;
  }
  if (v >= -32) return 1;
  if (v >= -0x80) return 2;
  if (v >= -0x8000) return 3;
  if (v >= -0x80000000) return 5;
  return 9;
}

function wInt(v: i64): void {
  if (v >= 0) {
    wUint(<u64>v);
    return;
  }
  if (v >= -32) w8(<u32>(v & 0xff));
  else if (v >= -0x80) {
    w8(0xd0);
    w8(<u32>(v & 0xff));
  } else if (v >= -0x8000) {
    w8(0xd1);
    store<u16>(cur, bswap<u16>(<u16>v));
    cur += 2;
  } else if (v >= -0x80000000) {
    w8(0xd2);
    store<u32>(cur, bswap<u32>(<u32>v));
    cur += 4;
  } else {
    w8(0xd3);
    store<u64>(cur, bswap<u64>(<u64>v));
    cur += 8;
  }
}

/** Small unsigned integers (ids, indices) in one byte, inline; the rest out of line. */
@inline function wU(v: u64): void {
  if (v < 128) w8(<u32>v);
  else wUint(v);
}

/** Signed integers: the common small ones inline. */
@inline function wI(v: i64): void {
  if (<u64>v < 128) w8(<u32>v);
  else wInt(v);
}

function wUint(v: u64): void {
  if (v < 128) w8(<u32>v);
  else if (v < 0x100) {
    w8(0xcc);
    w8(<u32>v);
  } else if (v < 0x10000) {
    w8(0xcd);
    store<u16>(cur, bswap<u16>(<u16>v));
    cur += 2;
  } else if (v < 0x100000000) {
    w8(0xce);
    store<u32>(cur, bswap<u32>(<u32>v));
    cur += 4;
  } else {
    w8(0xcf);
    store<u64>(cur, bswap<u64>(v));
    cur += 8;
  }
}

function wF64(v: f64): void {
  w8(0xcb);
  store<u64>(cur, bswap<u64>(reinterpret<u64>(v)));
  cur += 8;
}

/** A string: header sized from its UTF-8 length, then the bytes. False if it cannot fit. */
function wStr(s: string): bool {
  const len = <u32>String.UTF8.byteLength(s);
  if (!room(len + 5)) return false;
  if (len < 32) w8(0xa0 | len);
  else if (len < 0x100) {
    w8(0xd9);
    w8(len);
  } else if (len < 0x10000) {
    w8(0xda);
    store<u16>(cur, bswap<u16>(<u16>len));
    cur += 2;
  } else {
    w8(0xdb);
    store<u32>(cur, bswap<u32>(len));
    cur += 4;
  }
  cur += String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, cur);
  return true;
}

/**
 * How events are timestamped. PRECISE (default): every record reads the host clock, which costs
 * a host call of about 45 ns on Node. COARSE: events carry no time of their own and take the
 * latest time the guest sent (span records always read the clock), for hot loops that emit
 * millions of events.
 */
export namespace EventClock {
  export const PRECISE: i32 = 0;
  export const COARSE: i32 = 1;
}
let eventClock: i32 = EventClock.PRECISE;

export function setEventClock(mode: i32): void {
  eventClock = mode;
}

/** An event's time field: nil in COARSE mode (the host uses the latest time it has seen). */
@inline function wEventTime(): void {
  if (eventClock == EventClock.COARSE) w8(0xc0);
  else wTime();
}

/** The record's timestamp: a delta against the frame's time base (see PROTOCOL.md). */
function wTime(): void {
  recTime = hostNow();
  timePos = cur;
  const base = load<f64>(STATE, 8);
  wInt(<i64>(recTime - base));
  timeEnd = cur;
  store<f64>(STATE, recTime, 8);
}

// ---- callsites ---------------------------------------------------------------------------------

/** A place in the code that makes spans or events; declare it once, as a global. */
export class Callsite {
  readonly id: u32;
  announced: bool = false;
  constructor(
    readonly kind: u32,
    readonly name: string,
    readonly target: string,
    readonly level: i32,
    readonly fields: string[],
    readonly file: string = "",
    readonly line: u32 = 0,
  ) {
    this.id = nextCallsite++;
  }

  /** Sends the callsite's description the first time it is used. */
  announce(): bool {
    let worst: u32 = 32;
    if (!begin(worst)) return false;
    wArray(10);
    w8(TAG_CALLSITE);
    wUint(this.id);
    w8(this.kind);
    // wStr makes room for its own string only: the fixed-size fields after one need their own.
    if (!wStr(this.name) || !wStr(this.target) || !room(3)) return false;
    w8(<u32>this.level);
    w8(0xc0); // module path
    if (this.file.length > 0) {
      if (!wStr(this.file)) return false;
    } else w8(0xc0);
    if (!room(5)) return false;
    if (this.line > 0) wUint(this.line);
    else w8(0xc0);
    const fields = this.fields;
    if (!room(5)) return false;
    wArray(fields.length);
    for (let i = 0; i < fields.length; i++) if (!wStr(fields[i])) return false;
    commit();
    this.announced = true;
    return true;
  }
}

/** Field values, written in the order the callsite declares its fields. */
export class ValueWriter {
  protected written: i32 = 0;
  protected declared: i32 = 0;
  constructor(protected readonly kind: u32) {}

  /** Still writing its own record (another record started since revokes it). */
  @inline get on(): bool {
    return owner == this.kind;
  }

  @inline protected next(worst: u32): bool {
    if (owner != this.kind || this.written >= this.declared || !room(worst)) return false;
    this.written++;
    return true;
  }

  @inline protected nextStr(v: string): void {
    if (owner != this.kind || this.written >= this.declared) return;
    if (wStr(v)) this.written++;
    else owner = 0;
  }

  @inline protected nextErr(message: string): void {
    if (owner != this.kind || this.written >= this.declared) return;
    if (writeError(message)) this.written++;
    else owner = 0;
  }

  @inline protected padAndCommit(): void {
    if (owner != this.kind) return;
    if (this.written == this.declared) {
      // Every value given: the common case, committed in place.
      owner = 0;
      commit();
    } else this.finish();
  }

  private finish(): void {
    owner = 0;
    while (this.written < this.declared) {
      if (!room(1)) return;
      w8(0xc0);
      this.written++;
    }
    commit();
  }
}

export class EventWriter extends ValueWriter {
  /** Called with the level already checked (see EventCallsite.event). */
  @inline start(cs: EventCallsite): EventWriter {
    if (load<u32>(STATE, 20) == 0 && !enabled(cs.level)) {
      owner = 0;
      return this;
    }
    if (!cs.announced && !cs.announce()) return this;
    const n = cs.fields.length;
    if (!begin(24)) return this;
    wArray(4 + n);
    w8(TAG_EVENT);
    wU(cs.id);
    w8(0xc0); // contextual parent
    wEventTime();
    owner = OWNER_EVENT;
    this.written = 0;
    this.declared = n;
    return this;
  }
  @inline str(v: string): EventWriter {
    this.nextStr(v);
    return this;
  }
  @inline i64(v: i64): EventWriter {
    if (this.next(9)) wI(v);
    return this;
  }
  @inline u64(v: u64): EventWriter {
    if (this.next(9)) wUint(v);
    return this;
  }
  @inline f64(v: f64): EventWriter {
    if (this.next(9)) wF64(v);
    return this;
  }
  @inline bool(v: bool): EventWriter {
    if (this.next(1)) w8(v ? 0xc3 : 0xc2);
    return this;
  }
  /** An error value with its message (and no source). */
  @inline err(message: string): EventWriter {
    this.nextErr(message);
    return this;
  }
  @inline emit(): void {
    this.padAndCommit();
  }
}

function writeError(message: string): bool {
  const len = <u32>String.UTF8.byteLength(message);
  if (!room(len + 16)) return false;
  // ext8/16/32 with type 2, payload [message, nil]
  const payloadHeader: u32 = len < 32 ? 1 : len < 0x100 ? 2 : len < 0x10000 ? 3 : 5;
  const size = 1 + payloadHeader + len + 1;
  if (size < 0x100) {
    w8(0xc7);
    w8(size);
  } else if (size < 0x10000) {
    w8(0xc8);
    store<u16>(cur, bswap<u16>(<u16>size));
    cur += 2;
  } else {
    w8(0xc9);
    store<u32>(cur, bswap<u32>(size));
    cur += 4;
  }
  w8(2);
  w8(0x92);
  wStr(message);
  w8(0xc0);
  return true;
}

const EVENT = new EventWriter(OWNER_EVENT);

export class EventCallsite extends Callsite {
  constructor(name: string, target: string, level: i32, fields: string[], file: string = "", line: u32 = 0) {
    super(1, name, target, level, fields, file, line);
  }
  /** Starts an event; chain its values in field order and finish with `emit()`. */
  @inline event(): EventWriter {
    // A disabled level costs one comparison here; the chained calls then do nothing.
    if (this.level < minLevel()) {
      owner = 0;
      return EVENT;
    }
    return EVENT.start(this);
  }
}

// ---- spans -------------------------------------------------------------------------------------

/** A span the guest opened (or resumed). Close it exactly once. */
export class Span {
  constructor(
    readonly id: u32,
    readonly fields: string[],
  ) {}

  enter(): Span {
    spanTimeRecord(TAG_ENTER, this.id);
    return this;
  }
  exit(): Span {
    spanTimeRecord(TAG_EXIT, this.id);
    return this;
  }
  close(): void {
    spanTimeRecord(TAG_DROP, this.id);
  }
  followsFrom(other: Span): Span {
    if (this.id != 0 && other.id != 0 && begin(16)) {
      wArray(3);
      w8(TAG_FOLLOWS);
      wUint(this.id);
      wUint(other.id);
      commit();
    }
    return this;
  }
  recordI64(field: string, v: i64): Span {
    if (this.beginRecord(field)) {
      wInt(v);
      commit();
    }
    return this;
  }
  recordF64(field: string, v: f64): Span {
    if (this.beginRecord(field)) {
      wF64(v);
      commit();
    }
    return this;
  }
  recordBool(field: string, v: bool): Span {
    if (this.beginRecord(field)) {
      w8(v ? 0xc3 : 0xc2);
      commit();
    }
    return this;
  }
  recordStr(field: string, v: string): Span {
    if (this.beginRecord(field) && wStr(v)) commit();
    return this;
  }
  recordErr(field: string, message: string): Span {
    if (this.beginRecord(field) && writeError(message)) commit();
    return this;
  }

  private beginRecord(field: string): bool {
    if (this.id == 0) return false;
    const i = this.fields.indexOf(field);
    if (i < 0 || !begin(24)) return false;
    wArray(4);
    w8(TAG_RECORD);
    wUint(this.id);
    wUint(<u64>i);
    return true;
  }
}

const DISABLED_SPAN = new Span(0, []);

function spanTimeRecord(tag: u8, id: u32): void {
  if (id == 0 || !begin(24)) return;
  wArray(3);
  w8(tag);
  wUint(id);
  wTime();
  commit();
}

export class SpanWriter extends ValueWriter {
  private id: u32 = 0;
  private fields: string[] = [];
  start(cs: SpanCallsite, parent: Span | null, root: bool): SpanWriter {
    this.id = 0;
    if (!enabled(cs.level)) {
      owner = 0;
      return this;
    }
    if (!cs.announced && !cs.announce()) return this;
    const n = cs.fields.length;
    if (!begin(32)) return this;
    this.id = allocSpanId();
    this.fields = cs.fields;
    wArray(5 + n);
    w8(TAG_SPAN);
    wUint(this.id);
    if (root) w8(0xc2);
    else if (parent !== null && parent.id != 0) wUint(parent.id);
    else w8(0xc0);
    wUint(cs.id);
    wTime();
    owner = OWNER_SPAN;
    this.written = 0;
    this.declared = n;
    return this;
  }
  @inline str(v: string): SpanWriter {
    this.nextStr(v);
    return this;
  }
  @inline i64(v: i64): SpanWriter {
    if (this.next(9)) wI(v);
    return this;
  }
  @inline u64(v: u64): SpanWriter {
    if (this.next(9)) wUint(v);
    return this;
  }
  @inline f64(v: f64): SpanWriter {
    if (this.next(9)) wF64(v);
    return this;
  }
  @inline bool(v: bool): SpanWriter {
    if (this.next(1)) w8(v ? 0xc3 : 0xc2);
    return this;
  }
  /** A field declared now and recorded later (`span.recordX`). */
  @inline empty(): SpanWriter {
    if (this.next(1)) w8(0xc0);
    return this;
  }
  /** Finishes the span record and returns the span (a no-op span when disabled or dropped). */
  open(): Span {
    if (!this.on) return DISABLED_SPAN;
    const id = this.id;
    this.padAndCommit();
    return new Span(id, this.fields);
  }
}

const SPAN = new SpanWriter(OWNER_SPAN);

export class SpanCallsite extends Callsite {
  constructor(name: string, target: string, level: i32, fields: string[], file: string = "", line: u32 = 0) {
    super(0, name, target, level, fields, file, line);
  }
  /** Starts a span whose parent is the span the guest has entered, if any. */
  @inline span(): SpanWriter {
    if (this.level < minLevel()) {
      owner = 0;
      return SPAN;
    }
    return SPAN.start(this, null, false);
  }
  /** Starts a span with an explicit parent. */
  @inline child(parent: Span): SpanWriter {
    return SPAN.start(this, parent, false);
  }
  /** Starts a root span: no parent, not even the host's context. */
  @inline root(): SpanWriter {
    return SPAN.start(this, null, true);
  }
  /**
   * The span of this callsite (same name and target) that an earlier, persisted execution left
   * open, or null when none is carried over. Enter it, record to it, close it (once, in the step
   * that finishes it); the host asks nothing of the guest but the name.
   */
  resume(): Span | null {
    if (load<u32>(STATE, 20) == 0) attach();
    const name = this.name;
    const target = this.target;
    const id = hostResume(changetype<usize>(name), <u32>name.length << 1, changetype<usize>(target), <u32>target.length << 1);
    if (id == 0) return null;
    if (id >= nextSpan) nextSpan = id + 1;
    return new Span(id, this.fields);
  }
}

/**
 * A span carried over from an earlier, persisted execution, by its guest id (the host passes it).
 * @deprecated Use `callsite.resume()`, which asks the host by the callsite's name.
 */
export function resumeSpan(id: u32, fields: string[]): Span {
  resumeSpanIdsAfter(id);
  return new Span(id, fields);
}

// ---- metrics -----------------------------------------------------------------------------------

export class MetricWriter {
  /** Where the attribute map header sits, counted from the end of the time field (which a flush may move). */
  private mapOffset: usize = 0;
  private count: u32 = 0;

  start(instrument: u32, name: string, value: f64): MetricWriter {
    if (load<u32>(STATE, 20) == 0) attach();
    if (!begin(40)) return this;
    wArray(6);
    w8(TAG_METRIC);
    w8(instrument);
    if (!wStr(name)) return this;
    if (!room(24)) return this;
    if (value == Math.floor(value) && Math.abs(value) < 9007199254740992.0) wInt(<i64>value);
    else wF64(value);
    wTime();
    this.mapOffset = cur - timeEnd;
    w8(0x80); // an empty fixmap for now; emit() writes the count
    this.count = 0;
    owner = OWNER_METRIC;
    return this;
  }
  str(key: string, v: string): MetricWriter {
    if (this.key(key) && !wStr(v)) owner = 0;
    return this;
  }
  i64(key: string, v: i64): MetricWriter {
    if (this.key(key) && room(9)) wInt(v);
    return this;
  }
  f64(key: string, v: f64): MetricWriter {
    if (this.key(key) && room(9)) wF64(v);
    return this;
  }
  bool(key: string, v: bool): MetricWriter {
    if (this.key(key) && room(1)) w8(v ? 0xc3 : 0xc2);
    return this;
  }
  emit(): void {
    if (owner != OWNER_METRIC) return;
    owner = 0;
    store<u8>(timeEnd + this.mapOffset, <u8>(0x80 | this.count));
    commit();
  }
  /** At most 15 attributes (a fixmap); more are ignored. */
  private key(k: string): bool {
    if (owner != OWNER_METRIC || this.count >= 15) return false;
    if (!wStr(k)) {
      owner = 0;
      return false;
    }
    this.count++;
    return true;
  }
}

const METRIC = new MetricWriter();

/** Adds to a counter: `counter("requests", 1).str("route", "/x").emit()`. */
export function counter(name: string, value: f64): MetricWriter {
  return METRIC.start(0, name, value);
}
export function histogram(name: string, value: f64): MetricWriter {
  return METRIC.start(1, name, value);
}
export function gauge(name: string, value: f64): MetricWriter {
  return METRIC.start(2, name, value);
}
