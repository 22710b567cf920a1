/**
 * The QuickJS guest SDK: `tracing`, as guest code sees it (global `tracing`, or
 * `import { tracing } from 'sandtrace'`).
 *
 * It runs inside the sandbox, in an interpreter where every operation costs tens of nanoseconds
 * (a typed-array store ~40 ns, a call 45–130 ns) and a host call 4–6 µs. So records are buffered
 * in guest memory and handed to the host once per batch. The frequent ones (events, a span's
 * open, enter, exit and drop) are slot records: a few Float64Array stores and the raw clock
 * reading, which the worker turns into protocol records when it takes the buffers (see "slot
 * records" below). The rest are encoded here as protocol bytes, rare records and unusual values
 * through the shared FrameWriter. Nothing here may use Node APIs.
 *
 * One loaded SDK can serve many runs, one after another: the host calls `configure` before each
 * run, after which the run writes byte for byte what a freshly loaded SDK would (see `startRun`:
 * every counter starts over; what is kept, within bounds, is bytes encoded from strings), and
 * `drain` after it. The SDK may live in a realm (context) of its own while guest
 * code runs in another context of the same runtime; so no check here relies on the guest's
 * prototypes (`instanceof` is false across realms), and the built-ins used are this realm's,
 * taken at load. `hardenRealm` (harden.ts) then freezes this realm, `realmRoots()` included.
 */
import * as frameWriterModule from '../../shared/frame-writer.js';
import { FrameWriter, isUint8Array } from '../../shared/frame-writer.js';
import * as growBufferModule from '../../shared/grow-buffer.js';
import * as recordsModule from '../../shared/records.js';
import { LEVELS, LINK_FIELD, PROTOCOL_MINOR, Tag, type Level, type Value } from '../../shared/records.js';
import * as sdkModule from './sdk.js';

// ---- built-ins, taken at load -------------------------------------------------------------------
// Module bindings rather than global lookups: nothing the guest can reach later changes them, and
// in QuickJS reading a module binding is cheaper than a global's property.

const round = Math.round;
/** quickjs-ng's `performance.now` does not need its receiver. */
const clockMs = performance.now as () => number;
const wallMs = Date.now;
const isSafeInteger = Number.isSafeInteger;
const isArray = Array.isArray;
const toText = String;
const toNumber = Number;
const toBigInt = BigInt;
const stringify = JSON.stringify;
const SdkError = Error;
const LevelError = TypeError;
const defineProperty = Object.defineProperty;
const freeze = Object.freeze;
const objectTag = Function.prototype.call.bind(Object.prototype.toString) as (v: unknown) => string;
const sliceBuffer = Function.prototype.call.bind(ArrayBuffer.prototype.slice) as (b: ArrayBuffer, start: number, end: number) => ArrayBuffer;
/**
 * True for an error from any realm. quickjs-ng has `Error.isError` (it reads the internal slot: a
 * subclass counts, a look-alike does not); elsewhere, the built-in tag is the best there is.
 */
const isError: (v: unknown) => v is Error =
  (Error as { isError?: (v: unknown) => v is Error }).isError ?? ((v: unknown): v is Error => typeof v === 'object' && v !== null && objectTag(v) === '[object Error]');

/** Level numbers by name; no prototype, so `'constructor'` or `'__proto__'` is no level. */
const LEVEL_NUM: Readonly<Record<string, number>> = freeze(Object.assign(Object.create(null) as Record<string, number>, { trace: 0, debug: 1, info: 2, warn: 3, error: 4 }));
/**
 * The number of a level name given by the guest (`undefined`: the default, info). Anything but
 * one of the five names (`'fatal'`, `'Info'`, a number, an object that prints as one) is a
 * TypeError at the call: it would otherwise pass or fail the filter by accident.
 */
function levelNumber(level: unknown): number {
  const lv = level === undefined ? 2 : typeof level === 'string' ? LEVEL_NUM[level] : undefined;
  if (lv === undefined) throw unknownLevel(level);
  return lv;
}

function unknownLevel(level: unknown): TypeError {
  // No guest code runs here: a string is quoted, anything else named by its type.
  const shown = typeof level === 'string' ? stringify(level.length > 40 ? `${level.slice(0, 40)}…` : level) : level === null ? 'null' : `of type ${typeof level}`;
  return new LevelError(`unknown level ${shown}: the levels are 'trace', 'debug', 'info', 'warn' and 'error'`);
}

/** Above every level: before `configure`, nothing is enabled. */
const NO_LEVEL = 5;
const SDK_VERSION = '0.1.0';
/** The writer's buffer, and the largest one kept from one run to the next (larger ones are dropped). */
const INITIAL_BUFFER_BYTES = 16384;
const KEPT_BUFFER_BYTES = 65536;
/**
 * The hello record up to its clock origin: the same in every run. The minor revision (1: the SDK
 * writes `newSpanEntered`) follows the origin.
 */
const HELLO_HEAD = ((w: FrameWriter): Uint8Array => {
  w.hello(1, 'quickjs', SDK_VERSION, 0, PROTOCOL_MINOR);
  return w.finish().slice(0, -2); // without the origin's one byte and the minor's
})(new FrameWriter(64));
/**
 * Caches kept from run to run: callsite announcements and messages encoded once, for the runs
 * after (encoding byte by byte in the interpreter cost about 10 µs per callsite announcement, the
 * bulk of a trivial guest's first uses). A run may fill them further (siteCodes without bound, as
 * any run must number every callsite it uses; messageBytes up to MESSAGE_CACHE entries); the next
 * run starts with them empty if they went past these bounds (entries; bytes, counting key
 * characters and encoded bytes). See trimCaches.
 */
const KEPT_SITES = 256;
const KEPT_SITE_BYTES = 32768;
const KEPT_MESSAGES = 128;
const KEPT_MESSAGE_BYTES = 16384;
/** Sites a recent-site list keeps for the next run (of those the last run used). */
const KEPT_RECENT = 8;
const KEPT_LIMITS: CacheSizes = freeze({ sites: KEPT_SITES, siteBytes: KEPT_SITE_BYTES, messages: KEPT_MESSAGES, messageBytes: KEPT_MESSAGE_BYTES, longestList: KEPT_RECENT });
/** No carried spans: most runs. */
const NO_CARRIED_SPANS: ReadonlyArray<{ id: number; name: string; fields: readonly string[] }> = freeze([]);

/** What the host passes to `configure` before each run. Read there, once: later changes to it are not seen. */
/**
 * The host's function that takes the buffers: the first `length` bytes of `bytes` (records
 * encoded here, placed among the slot records by markers), the first `slotCount` doubles of
 * `slots` (slot records), the first `valsLength` bytes of `vals` (values they refer to). It
 * copies what it needs before it returns.
 */
export type FlushHost = (bytes: ArrayBuffer, length: number, slots: ArrayBuffer, slotCount: number, vals: ArrayBuffer, valsLength: number) => void;

export interface GuestConfig {
  /** Takes the buffers (see FlushHost); the drain hook hands over through it too. */
  flush: FlushHost;
  /** Slot records for the hot paths (default true); false: every record encoded here, as bytes. */
  slots?: boolean;
  /** Most verbose level the host wants (trace 0 … error 4). */
  minLevel: number;
  /** Flush once the buffer holds this many bytes. */
  flushBytes: number;
  /** W3C traceparent of the host's parent context, if any. */
  traceparent?: string;
  executionId?: string;
  /** Spans carried over from a persisted execution: guest id, name and declared fields. */
  carried?: Array<{ id: number; name: string; target: string; fields: string[] }>;
  /**
   * The first span id this run may allocate. The host owns span ids across a workflow's
   * executions (a resumed step's spans must not reuse the ids of carried spans, nor of spans an
   * earlier step closed). Default: 1, or one above the largest carried id.
   */
  firstSpanId?: number;
  /**
   * Runs share the caches of encoded bytes (callsites, messages) only with runs of the same
   * scope: when it differs from the last run's, configure empties them first. What they hold
   * changes no byte of a run's frames, but a guest that times its first uses of strings could
   * tell whether an earlier run on this engine used them; a host that runs guests of different
   * tenants on one engine gives each tenant its own scope. Default: one scope for all runs.
   */
  cacheScope?: string;
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

// ---- per-run state ------------------------------------------------------------------------------
// The bindings of this section, and further down scratchKeys, scratchValues, lastMessage and
// lastMessageBytes, belong to one run: `startRun` resets every one of them. (Not per run: the
// constants, the frozen disabledSpan, hooksTaken, `run`, and the caches of encoded bytes
// (siteCodes, spanSites, recentSites, messageBytes), which hold pure functions of strings and are
// kept within bounds from one run to the next: see KEPT_SITES and trimCaches.)
// `pos` and `lastTime` mirror the writer's; the writer is told (commit) before it writes itself.

let writer = new FrameWriter(INITIAL_BUFFER_BYTES);
let buf = writer.bytes;
let dv = writer.dataView;
let cap = buf.length;
let pos = 0;
let lastTime = 0;
/** Most verbose level enabled; NO_LEVEL until configured. */
let minLevel = NO_LEVEL;
let flushAt = 32768;
let configured = false;
/** The host's flush function for this run. */
let flushHost: FlushHost | undefined;
let traceparent: string | undefined;
let executionId: string | undefined;
/** This run's carried spans, copied out of the host's config. */
let carriedSpans = NO_CARRIED_SPANS;
let nextSpanId = 1;
let nextCallsite = 1;
/** Counts runs (`startRun`): a cached callsite's id is valid in the run that gave it. */
let run = 0;
/** The last run's `cacheScope`. */
let cacheScope: string | undefined;

// ---- slot records ---------------------------------------------------------------------------------
// The hot records (events, a span's open, enter, exit and drop) are not encoded here: each is a
// fixed-width record of doubles in `slots`, a handful of typed-array stores and the raw clock
// reading, with no arithmetic on the time. The host turns them into the same protocol records
// when it takes the buffer (host/sandbox/worker/quickjs-slots.ts). A record of W doubles:
//
//   [head, ms, …]   head = kind + 8·n + 64·(type codes, 3 bits per value) + 2^18·callsite
//   event:          [head, ms, v0, v1, v2, v3]     (newEvent, contextual parent)
//   open / span:    [head, ms, id, v0, v1, v2]     (newSpanEntered / newSpan, contextual parent)
//   enter/exit/drop:[kind, ms, id]
//   bytes:          [4, base ns, byte position]    (see openBytes)
//
// ms is performance.now() as read; value type codes: 0 the double itself, 1 true, 2 false, 3 nil,
// 4 bytes in `vals` at the offset the slot holds (strings, bigints, bytes, errors, objects: what
// putValue would write, encoded once; repeated strings share their bytes).
//
// Order: the byte stream (callsite announcements, rare records, records of more values) and the
// slot stream are one sequence. The bytes come in runs, each opened by a marker in the slot
// stream (openBytes, on the byte path: the slot records' paths check nothing): a run goes where
// its marker is and lasts until the next marker's byte position. Times: a run's first record
// takes its delta against the last slot record's time, and its marker says the time base after
// the run, for the slot records that follow it.

/** Doubles per slot record. */
const W = 6;
/** Kinds (the drop's, 3, is written as a literal). */
const SLOT_EVENT = 1;
const SLOT_OPEN = 2;
const SLOT_BYTES = 4;
const SLOT_ENTER = 5;
const SLOT_EXIT = 6;
const SLOT_SPAN = 7;
/** The head's callsite multiplier (kind, count and four 3-bit type codes below it). */
const SLOT_CS = 262144;
/** Values a slot record holds: an event's, and a span's (after its id). */
const SLOT_EVENT_VALUES = 4;
const SLOT_SPAN_VALUES = 3;
/** Guest memory per slot record, against the bytes it becomes: the slot buffer holds about flushBytes / SLOT_RECORD_BYTES records. */
const SLOT_RECORD_BYTES = 16;

/** Slot records a buffer holds at most, whatever flushBytes says (192 KiB of guest memory). */
const MAX_SLOT_RECORDS = 4096;

let slots = new Float64Array(slotCapacity(32768));
/** Doubles used in `slots` (a multiple of W). */
let sp = 0;
/** At or past this, the buffers go to the host (after the record): room for a marker and a record stays above it. */
let slotLimit = 0;
/** This run's slotLimit (slotLimit itself drops to 0 when the value bytes are full: see stringRef). */
let runSlotLimit = 0;
/** `sp` right after the marker of the current byte run (-1: no byte run in this frame yet; see openBytes). */
let spMarked = -1;
/** Where the current byte run's marker holds its time base (kept equal to `lastTime`). */
let runBase = 1;
/** This run writes slot records (a host may turn them off: the byte path alone, for comparison). */
let slotsOn = true;
/** Encoded values that slot records refer to. */
let vwriter = new FrameWriter(4096);
let vbuf = vwriter.bytes;
let vpos = 0;
/** Strings recently encoded into `vals` in this frame, and their offsets (a repeated message or value is stored once). */
let sc0: string | undefined;
let sc1: string | undefined;
let sc2: string | undefined;
let sc3: string | undefined;
let sr0 = 0;
let sr1 = 0;
let sr2 = 0;
let sr3 = 0;
let scNext = 0;


function slotCapacity(flushBytes: number): number {
  const records = Math.floor(flushBytes / SLOT_RECORD_BYTES);
  return ((records >= 8 ? (records <= MAX_SLOT_RECORDS ? records : MAX_SLOT_RECORDS) : 8) + 2) * W;
}

/**
 * Called before every byte record: opens a byte run when slot records were written since the
 * last one began (or none began in this frame), and returns the time base for the record (also
 * what it restores when undone). Opening a run writes a marker into the slot stream, "the bytes
 * from here come now", whose time base (the time of the run's last record with a time) stampAt
 * keeps up to date; the run's first record takes its time against the last slot record's, as
 * the host computes it. The slot records' own paths check nothing of this.
 */
function openBytes(): number {
  if (converting > 0) throw new LevelError('sandtrace: a value\'s conversion may not write records of the byte path (it runs while another record is being written)');
  if (sp !== spMarked) {
    const s = slots;
    const p = sp;
    if (p > 0 && s[p - W] !== SLOT_BYTES) lastTime = round(s[p - W + 1]! * 1e6);
    s[p] = SLOT_BYTES;
    s[p + 1] = lastTime;
    s[p + 2] = pos;
    runBase = p + 1;
    sp = spMarked = p + W;
  }
  return lastTime;
}

/** Forgets the strings cached in `vals` (its bytes are handed over, or undone). */
function clearStringCache(): void {
  sc0 = sc1 = sc2 = sc3 = undefined;
  scNext = 0;
}

/**
 * The offset in `vals` of a value's encoding (what putValue would write for it), writing it
 * there unless it is a string encoded in this frame already. `v` is a primitive or a protocol
 * value (toValue's result): no guest code runs here.
 */
function refOf(v: unknown, message: boolean): number {
  if (typeof v === 'string') {
    if (v === sc0) return sr0;
    if (v === sc1) return sr1;
    if (v === sc2) return sr2;
    if (v === sc3) return sr3;
    const r = message ? encodeMessage(v) : encodeVal(v);
    const k = scNext;
    scNext = (k + 1) & 3;
    if (k === 0) {
      sc0 = v;
      sr0 = r;
    } else if (k === 1) {
      sc1 = v;
      sr1 = r;
    } else if (k === 2) {
      sc2 = v;
      sr2 = r;
    } else {
      sc3 = v;
      sr3 = r;
    }
    return r;
  }
  return encodeVal(v);
}

/** An event's message into `vals`: from messageBytes when it was encoded before (in any frame), else encoded and kept there (see putMessage). */
function encodeMessage(message: string): number {
  const cached = messageBytes.get(message);
  if (cached === undefined) {
    const start = encodeVal(message);
    const size = message.length + vpos - start;
    if (messageBytes.size < MESSAGE_CACHE && message.length <= MESSAGE_CACHE_LONGEST && messageByteCount + size <= MESSAGE_CACHE_BYTES) {
      messageBytes.set(message, vbuf.slice(start, vpos));
      messageByteCount += size;
    }
    return start;
  }
  const start = vpos;
  const n = cached.length;
  if (start + n > vbuf.length) {
    vwriter.commit(start);
    vwriter.reserve(n);
    vbuf = vwriter.bytes;
  }
  vbuf.set(cached, start);
  vpos = start + n;
  return start;
}

function encodeVal(v: unknown): number {
  const start = vpos;
  if (typeof v === 'string') {
    const n = v.length;
    if (n < 32) {
      if (start + 1 + n > vbuf.length) {
        vwriter.commit(start);
        vwriter.reserve(1 + n);
        vbuf = vwriter.bytes;
      }
      const b = vbuf;
      let q = start;
      b[q++] = 0xa0 | n;
      let i = 0;
      for (; i < n; i++) {
        const c = v.charCodeAt(i);
        if (c >= 0x80) break;
        b[q++] = c;
      }
      if (i === n) {
        vpos = q;
        return start;
      }
    }
  }
  vpos = vwriter.valueAt(start, v as Value);
  vbuf = vwriter.bytes;
  return start;
}

/**
 * A slot record with values (an event's, a span's open). `at`: the slot of the first value (2
 * for events, 3 for spans, after the id); `message`, when given, is the first value (an event's
 * message). `values` must be the SDK's own array (reading it runs no guest code). Returns the
 * span's id (taken after the conversions), 0 for an event.
 *
 * One pass writes the values in place (numbers as doubles, strings and bigints as bytes in
 * `vals`) unless one of them is an object, whose conversion may run guest code (a getter,
 * toJSON, a Proxy) and throw, or write records of its own: then every such value is converted
 * first, nothing written yet, and the pass runs again with the converted values.
 */
function slotRecord(head: number, at: number, message: string | undefined, values: readonly unknown[], n: number): number {
  var vstart = vpos;
  var p = sp;
  var h: number;
  try {
    h = fillSlots(p, at, message, values, n, false);
  } catch (e) {
    abandonVals(vstart);
    throw e;
  }
  if (h < 0) {
    // An array of its own (rare: objects among the values): guest code run by a conversion may
    // write records of its own, through the SDK's scratch arrays. Every value is read before any runs.
    var cv = values.slice(0, n);
    for (var i = 0; i < n; i++) {
      var v = cv[i];
      var t = typeof v;
      if (t === 'object' || t === 'function' || t === 'symbol') cv[i] = toValue(v);
    }
    p = sp; // guest code may have written records
    var vmark = vpos;
    try {
      h = fillSlots(p, at, message, cv, n, true);
    } catch (e) {
      abandonVals(vmark);
      throw e;
    }
  }
  var s = slots;
  s[p] = head + h;
  s[p + 1] = clockMs();
  // A span's id is taken only now: a conversion above may have opened spans of its own (taken
  // before, the id would be theirs too).
  var id = 0;
  if (at === 3) {
    id = nextSpanId;
    s[p + 2] = id;
    nextSpanId = id + 1;
  }
  var q = p + 6; // W
  sp = q;
  if (q >= slotLimit || vpos >= flushAt) flushNow();
  return id;
}

/**
 * A string value on a written-out path (emit, open): its offset in `vals` (see refOf). When the
 * value bytes reach flushBytes, the record's flush check (`sp >= slotLimit`) is made to pass.
 * Runs no guest code; out of memory, it throws before the record is written.
 */
function stringRef(v: string): number {
  const r = refOf(v, false);
  if (vpos >= flushAt) slotLimit = 0;
  return r;
}

/** After a failed encoding: the value bytes it wrote are dropped, and with them every string cached in this frame. */
function abandonVals(to: number): void {
  if (vpos !== to) {
    vpos = to;
    clearStringCache();
  }
}

/**
 * The values of the slot record at `p` (see slotRecord), from slot `at`; returns their type
 * codes as added to the head, or -1 when a value is an object and `converted` is false (nothing
 * of the record counts yet: it is written at `p` again). With `converted`, objects are protocol
 * values (toValue's).
 */
function fillSlots(p: number, at: number, message: string | undefined, values: readonly unknown[], n: number, converted: boolean): number {
  var s = slots;
  var h = 0;
  var shift = 64;
  var q = p + at;
  if (message !== undefined) {
    h = 256; // type 4 for the first value
    s[q++] = refOf(message, true);
    shift = 512;
  }
  for (var i = 0; i < n; i++, shift *= 8, q++) {
    var v = values[i];
    switch (typeof v) {
      case 'number':
        s[q] = v;
        break;
      case 'boolean':
        h += v ? shift : 2 * shift;
        break;
      case 'undefined':
        h += 3 * shift;
        break;
      case 'string':
      case 'bigint':
        h += 4 * shift;
        s[q] = refOf(v, false);
        break;
      default:
        if (!converted) return -1;
        h += 4 * shift;
        s[q] = encodeVal(v);
    }
  }
  return h;
}

/** A span's enter, exit or drop as a slot record. */
function slotTime(kind: number, id: number): void {
  var p = sp; // `var`: see EventSite.emit
  slots[p] = kind;
  slots[p + 1] = clockMs();
  slots[p + 2] = id;
  if ((sp = p + W) >= slotLimit) flushNow();
}

/**
 * What of a buffer the host is handed: the host's read copies the whole ArrayBuffer, so a buffer
 * used less than a quarter (a short run's last hand-over: about 30 µs saved) goes as a copy of
 * its used part; out of memory, as it is.
 */
function used(buffer: ArrayBuffer, n: number): ArrayBuffer {
  if (n * 4 >= buffer.byteLength) return buffer;
  try {
    return sliceBuffer(buffer, 0, n);
  } catch (e) {
    if (isError(e) && e.name === 'InternalError') return buffer; // out of memory: hand over the whole buffer, allocating nothing
    throw e;
  }
}

/** Makes room for `n` more bytes (growing the writer's buffer: rare). */
function room(n: number): void {
  if (pos + n <= cap) return;
  writer.commit(pos);
  writer.reserve(n);
  refresh();
}

function refresh(): void {
  buf = writer.bytes;
  dv = writer.dataView;
  cap = buf.length;
  pos = writer.length;
}

/**
 * Undoes a record that failed part-way (a guest value whose conversion threw, the engine out of
 * memory): the cursor and the time base go back to where the record started, so the frame holds
 * only whole records. The caller then rethrows: a tracing call that fails writes nothing. Only
 * the record itself is undone: a callsite announced for it is written before `start` and stays.
 */
function abandon(start: number, time: number): void {
  pos = start;
  lastTime = time;
  slots[runBase] = time;
}

/**
 * For the written-out record paths: the general encoder's form of `v` at `p`, returning the
 * position after it; when that fails (a guest value's conversion threw, out of memory), the
 * record begun at `start` is undone (see abandon) and the error passed on.
 */
function slowAt(p: number, v: number, start: number, time: number): number {
  pos = p;
  try {
    slowValue(v);
  } catch (e) {
    abandon(start, time);
    throw e;
  }
  return pos;
}

/** Hands the frame to the host when it is full enough. */
function maybeFlush(): void {
  if (pos >= flushAt) flushNow();
}

function flushNow(): void {
  // Mid byte record (see converting): the next record's check hands over.
  if ((pos === 0 && sp === 0) || flushHost === undefined || converting > 0) return;
  handOver(flushHost);
}

/**
 * Hands the buffers to the host, which copies what they hold (turning slot records into bytes)
 * before it returns; then they start a new frame. Nothing is allocated here, so a guest at its
 * memory limit can still hand over; a call that fails leaves the buffers as they are, for the
 * next hand-over (the drain after the run).
 */
function handOver(host: FlushHost): void {
  host(used(buf.buffer as ArrayBuffer, pos), pos, used(slots.buffer as ArrayBuffer, sp * 8), sp, used(vbuf.buffer as ArrayBuffer, vpos), vpos);
  resetBuffers();
}

/**
 * The buffers' used parts in one ArrayBuffer, for the drain: three doubles (byte length, slot
 * count, value length), the slot records, the bytes, the value bytes. Undefined when it cannot
 * be allocated (the drain after an out-of-memory).
 */
function packBuffers(): ArrayBuffer | undefined {
  const slotBytes = sp * 8;
  const n = 24 + slotBytes + pos + vpos;
  // sp past the slot buffer's end (records written while a hand-over was held back: see
  // converting) takes the allocating path, whose zeros the host counts as invalid records: the
  // reused views would hand over an earlier drain's records there.
  if (sp <= PREFIX_SLOTS && sp <= slots.length && pos <= PREFIX_BYTES && vpos <= PREFIX_VALS) {
    // A short run's pack, without a typed array made per drain (in the SDK realm a subarray and
    // its set cost about 1 µs each): fixed-length views of the buffers' starts, made once per
    // buffer, copied in order into a buffer made once, each over the stale tail of the one before;
    // that buffer goes to the host as it is (its read copies it whole: 4 KiB cost less than an
    // ArrayBuffer allocated and freed per drain). What lies past the header's lengths is stale,
    // and the host reads only what they say.
    if (prefixesOf !== slots) slotsPrefix = slots.subarray(0, PREFIX_SLOTS), prefixesOf = slots;
    if (bufPrefixOf !== buf) bufPrefix = buf.subarray(0, PREFIX_BYTES), bufPrefixOf = buf;
    if (valsPrefixOf !== vbuf) valsPrefix = vbuf.subarray(0, PREFIX_VALS), valsPrefixOf = vbuf;
    const head = prefixPackDoubles;
    head[0] = pos;
    head[1] = sp;
    head[2] = vpos;
    head.set(slotsPrefix, 3);
    prefixPackBytes.set(bufPrefix, 24 + slotBytes);
    prefixPackBytes.set(valsPrefix, 24 + slotBytes + pos);
    return prefixPackBytes.buffer as ArrayBuffer;
  }
  if (n <= PACK_BYTES && sp <= slots.length) {
    // A pack of a few KiB: into the smallest of a few buffers made once, handed over as it is (as above).
    const k = n <= 2048 ? 0 : n <= 4096 ? 1 : 2;
    const head = packDoubles[k]!;
    const bytes = packBytes[k]!;
    head[0] = pos;
    head[1] = sp;
    head[2] = vpos;
    if (sp > 0) head.set(slots.subarray(0, sp), 3);
    if (pos > 0) bytes.set(buf.subarray(0, pos), 24 + slotBytes);
    if (vpos > 0) bytes.set(vbuf.subarray(0, vpos), 24 + slotBytes + pos);
    return bytes.buffer as ArrayBuffer;
  }
  try {
    const out = new ArrayBuffer(n);
    const head = new Float64Array(out, 0, 3 + sp);
    head[0] = pos;
    head[1] = sp;
    head[2] = vpos;
    head.set(slots.subarray(0, sp), 3);
    // Each copy is a subarray and a set, about 0.5 µs in the interpreter: empty parts are skipped
    // (a run of numbers and booleans has no value bytes).
    if (pos + vpos > 0) {
      const bytes = new Uint8Array(out, 24 + slotBytes);
      if (pos > 0) bytes.set(buf.subarray(0, pos), 0);
      if (vpos > 0) bytes.set(vbuf.subarray(0, vpos), pos);
    }
    return out;
  } catch (e) {
    if (isError(e) && e.name === 'InternalError') return undefined; // out of memory: the caller hands over without allocating
    throw e;
  }
}

/** A pack of at most this many bytes goes in a buffer made once (see packBuffers): most short runs. */
const PACK_BYTES = 8192;
/** The pack buffers, 2, 4 and 8 KiB, as doubles and as bytes (views made once). */
const packDoubles = [2048, 4096, PACK_BYTES].map((size) => new Float64Array(size / 8));
const packBytes = packDoubles.map((d) => new Uint8Array(d.buffer));
/**
 * The prefix pack (see packBuffers): at most this many slot doubles, bytes and value bytes, copied
 * whole into a buffer that holds all three (the buffers are never shorter: see slotCapacity,
 * INITIAL_BUFFER_BYTES and the value writer's 4 KiB).
 */
const PREFIX_SLOTS = 128;
const PREFIX_BYTES = 1024;
const PREFIX_VALS = 512;
const prefixPackDoubles = new Float64Array(4096 / 8);
const prefixPackBytes = new Uint8Array(prefixPackDoubles.buffer);
/** The prefix views, and the buffers they were made of (a buffer replaced by a larger one gets new views). */
let slotsPrefix: Float64Array<ArrayBufferLike> = new Float64Array(0);
let prefixesOf: Float64Array<ArrayBufferLike> | undefined;
let bufPrefix: Uint8Array<ArrayBufferLike> = new Uint8Array(0);
let bufPrefixOf: Uint8Array<ArrayBufferLike> | undefined;
let valsPrefix: Uint8Array<ArrayBufferLike> = new Uint8Array(0);
let valsPrefixOf: Uint8Array<ArrayBufferLike> | undefined;

/** What the drain returns when nothing is buffered: a pack whose header says so (all zero). */
const EMPTY_PACK = new ArrayBuffer(24);

/** The buffers start a new frame (after a hand-over). */
function resetBuffers(): void {
  writer.reset();
  pos = 0;
  lastTime = 0;
  sp = 0;
  spMarked = -1;
  vpos = 0;
  slotLimit = runSlotLimit;
  clearStringCache();
}

/**
 * Writes the current guest time at `p` as a delta against the frame's time base (uint32; the
 * general encoder beyond) and returns the position after it. The caller has made room for 5
 * bytes at `p`. Always uint32, never a fixint: in the interpreter two records are never less than
 * 128 ns apart, and the test for it cost about 0.2 µs per record (measured in the guest).
 */
function stampAt(p: number): number {
  const t = round(clockMs() * 1e6);
  const d = t - openBytes();
  lastTime = t;
  slots[runBase] = t;
  if (d >= 0 && d <= 0xffffffff) {
    buf[p] = 0xce;
    dv.setUint32(p + 1, d);
    p += 5;
  } else {
    pos = p;
    slowValue(d);
    p = pos;
  }
  return p;
}

/** A msgpack array header at `pos` (fixarray, else array16). */
function putArrayHeader(n: number): void {
  if (n < 16) buf[pos++] = 0x90 | n;
  else {
    buf[pos] = 0xdc;
    dv.setUint16(pos + 1, n);
    pos += 3;
  }
}

function putUint(v: number): void {
  if (v < 128) buf[pos++] = v;
  else if (v <= 0xffffffff) {
    buf[pos] = 0xce;
    dv.setUint32(pos + 1, v);
    pos += 5;
  } else slowValue(v);
}

/** One field value: fast forms for the common types, the general encoder for the rest. */
function putValue(v: unknown): void {
  if (pos + 9 > cap) room(9);
  switch (typeof v) {
    case 'number':
      if ((v | 0) === v && !(v === 0 && 1 / v < 0)) {
        if (v >= 0) {
          if (v < 128) buf[pos++] = v;
          else {
            buf[pos] = 0xce;
            dv.setUint32(pos + 1, v);
            pos += 5;
          }
        } else if (v >= -32) buf[pos++] = v & 0xff;
        else {
          buf[pos] = 0xd2;
          dv.setInt32(pos + 1, v);
          pos += 5;
        }
      } else if (isSafeInteger(v)) slowValue(v);
      else {
        buf[pos] = 0xcb;
        dv.setFloat64(pos + 1, v);
        pos += 9;
      }
      return;
    case 'string': {
      const n = v.length;
      if (n < 32) {
        room(1 + n);
        const start = pos;
        buf[pos++] = 0xa0 | n;
        for (let i = 0; i < n; i++) {
          const c = v.charCodeAt(i);
          if (c >= 0x80) {
            pos = start;
            slowValue(v);
            return;
          }
          buf[pos++] = c;
        }
        return;
      }
      slowValue(v);
      return;
    }
    case 'boolean':
      buf[pos++] = v ? 0xc3 : 0xc2;
      return;
    case 'undefined':
      buf[pos++] = 0xc0;
      return;
  }
  slowValue(v);
}

/**
 * Set while a byte record's value is converted (guest code runs mid-record: toJSON, getters,
 * toString, Proxy traps). Meanwhile no byte record may start (openBytes throws: it would land
 * inside this one) and no hand-over happens (flushNow waits: it would hand over half a record);
 * slot records may still be written, and come after this record.
 */
let converting = 0;

function slowValue(v: unknown): void {
  const t = typeof v;
  let value: Value;
  if (t === 'object' || t === 'function' || t === 'symbol') {
    converting++;
    try {
      value = toValue(v);
    } finally {
      converting--;
    }
  } else value = toValue(v); // a primitive: no guest code
  pos = writer.valueAt(pos, value);
  refresh();
}

/**
 * Converts a guest value to a protocol value. The value may come from another realm: bytes and
 * errors are recognised by their internal slots (isUint8Array, isError), not by `instanceof`.
 */
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
  if (isUint8Array(v)) return v;
  if (isError(v)) return { error: errorValue(v, 0) };
  // Any other object is the guest's data, whatever its keys: `{ error: 'x' }` is the debug text of
  // that object, never an error value (the special values are built here, and only here).
  return { debug: debugText(v) };
}

/** JSON where it works; otherwise (a cycle, a bigint inside, a throwing toJSON) the value's string. */
function debugText(v: unknown): string {
  try {
    return stringify(v) ?? toText(v);
  } catch (e) {
    // JSON's own TypeError (a cycle, a bigint inside) or whatever the value's toJSON or getters
    // threw: the value's string instead. The engine running out of memory or stack goes on up.
    if (isError(e) && (e.name === 'InternalError' || e.name === 'RangeError')) throw e;
    return toText(v);
  }
}

function errorValue(e: Error, depth: number): { message: string; source?: { message: string } } {
  const out: { message: string; source?: { message: string } } = { message: `${e.name}: ${e.message}` };
  const cause = (e as { cause?: unknown }).cause;
  if (depth < 8 && isError(cause)) out.source = errorValue(cause, depth + 1);
  return out;
}

// ---- callsites: encoded once, numbered per run ----------------------------------------------------

/**
 * A callsite's content, encoded once: the bytes of its announcement after the id (kind, name,
 * target, level, three nils, field names), a pure function of the content. Its id is per run:
 * the first use in a run numbers it and writes the announcement, as a fresh SDK would then.
 */
interface SiteCode {
  readonly tail: Uint8Array;
  /** The run that numbered it, and its id there. */
  run: number;
  id: number;
}

/**
 * Every callsite content in use, by `siteKey`; each has one SiteCode, which the recent-site lists
 * (spanSites, recentSites) share. Kept from one run to the next within KEPT_SITES and
 * KEPT_SITE_BYTES, and only cleared together with those lists: were a list to keep a code that
 * this map no longer holds, one content could get two ids in a run.
 */
const siteCodes = new Map<string, SiteCode>();
/** What siteCodes holds: key characters plus encoded bytes. */
let siteCodeBytes = 0;

/** Numbers `code` for this run and writes its announcement: header, id, then the cached bytes in one copy. */
function announce(code: SiteCode): number {
  openBytes();
  const id = nextCallsite;
  const tail = code.tail;
  const n = tail.length;
  if (pos + 11 + n > cap) room(11 + n);
  buf[pos] = 0x9a; // fixarray of 10, as FrameWriter.newCallSite writes it
  buf[pos + 1] = Tag.newCallSite;
  if (id < 128) {
    buf[pos + 2] = id;
    pos += 3;
  } else {
    pos += 2;
    slowValue(id); // the writer's own integer form (uint8 from 128, not the uint32 of putUint)
  }
  buf.set(tail, pos);
  pos += n;
  // Numbered once written: a write that failed (out of memory) leaves it unannounced.
  nextCallsite = id + 1;
  code.run = run;
  code.id = id;
  return id;
}

/**
 * The code of the callsite with this content, numbered (and announced) in this run. Every part
 * must be a primitive string (the level one of the five names): the cache is keyed and encoded
 * from them, and lasts beyond the run.
 */
function siteCode(kind: 'span' | 'event', level: Level, target: string, name: string, keys: readonly string[]): SiteCode {
  const key = siteKey(kind, level, target, name, keys);
  let code = siteCodes.get(key);
  if (code === undefined) {
    openBytes();
    const id = nextCallsite;
    const start = pos;
    writer.commit(pos);
    writer.newCallSite(id, kind, name, target, level, undefined, undefined, undefined, keys);
    refresh();
    nextCallsite = id + 1;
    // The header: fixarray, tag, then the id as FrameWriter.uint writes it.
    const head = 2 + (id < 0x80 ? 1 : id < 0x100 ? 2 : id < 0x10000 ? 3 : id < 0x100000000 ? 5 : 9);
    code = { tail: buf.slice(start + head, pos), run, id };
    siteCodes.set(key, code);
    siteCodeBytes += key.length + code.tail.length;
  } else if (code.run !== run) announce(code);
  return code;
}

/**
 * A string naming a callsite's content, one to one: every string is prefixed with its length, so
 * no two contents share a key whatever characters their strings hold (the cache outlives a run:
 * a collision would let one guest's content stand for another's).
 */
function siteKey(kind: 'span' | 'event', level: Level, target: string, name: string, keys: readonly string[]): string {
  let key = `${kind === 'span' ? 's' : 'e'}${LEVEL_NUM[level]}${target.length}:${target}${name.length}:${name}`;
  for (let i = 0; i < keys.length; i++) key += `${keys[i]!.length}:${keys[i]}`;
  return key;
}

/**
 * Start of an event record: [9, callsite, parent nil, dt, …values]. Written out with few calls:
 * in QuickJS a call costs 45–130 ns, as much as one to three typed-array stores.
 */
function beginEvent(cs: number, values: number): void {
  if (pos + 24 > cap) room(24);
  const n = 4 + values;
  let p = pos;
  if (n < 16 && cs < 128) {
    // Header, tag, callsite id and nil parent in one store (setInt32: a negative int32 is fine there).
    dv.setInt32(p, ((0x90 | n) << 24) | (Tag.newEvent << 16) | (cs << 8) | 0xc0);
    p += 4;
  } else {
    pos = p;
    putArrayHeader(n);
    buf[pos++] = Tag.newEvent;
    putUint(cs);
    p = pos;
    buf[p++] = 0xc0;
  }
  pos = stampAt(p);
}

/**
 * Encoded msgpack strings of messages: messages are usually literals, encoded once. At most
 * MESSAGE_CACHE entries in a run; kept for the next run within KEPT_MESSAGES and KEPT_MESSAGE_BYTES.
 */
const messageBytes = new Map<string, Uint8Array>();
const MESSAGE_CACHE = 512;
/**
 * Within a run, messageBytes also holds at most MESSAGE_CACHE_BYTES (encoded bytes plus message
 * characters), and no message longer than MESSAGE_CACHE_LONGEST characters: a guest logging many
 * distinct large messages would otherwise keep them all in its own memory (500 of 40 KB ended a
 * guest under 16 MiB). Long messages are rarely repeated literals; they are encoded each time.
 */
const MESSAGE_CACHE_BYTES = 131072;
const MESSAGE_CACHE_LONGEST = 1024;
/** Bytes messageBytes holds: encoded bytes plus message characters. */
let messageByteCount = 0;
// The last message and its bytes: loops log the same literal again and again, and comparing a
// string with itself is cheaper than a Map lookup.
const EMPTY_MESSAGE_BYTES = new Uint8Array([0xa0]);
let lastMessage = '';
let lastMessageBytes: Uint8Array = EMPTY_MESSAGE_BYTES;

function putMessage(message: string): void {
  let bytes = lastMessageBytes;
  if (message !== lastMessage) {
    const cached = messageBytes.get(message);
    if (cached === undefined) {
      const start = pos;
      putValue(message);
      const size = message.length + pos - start;
      if (messageBytes.size < MESSAGE_CACHE && message.length <= MESSAGE_CACHE_LONGEST && messageByteCount + size <= MESSAGE_CACHE_BYTES) {
        messageBytes.set(message, buf.slice(start, pos));
        messageByteCount += size;
      }
      return;
    }
    lastMessage = message;
    bytes = lastMessageBytes = cached;
  }
  if (pos + bytes.length > cap) room(bytes.length);
  buf.set(bytes, pos);
  pos += bytes.length;
}

/** A span's time record: [tag, id, dt] (a slot record when slots are on). */
function spanTime(tag: number, id: number): void {
  if (slotsOn) {
    slotTime(tag === Tag.spanEntered ? SLOT_ENTER : SLOT_EXIT, id);
    return;
  }
  openBytes();
  if (pos + 16 > cap) room(16);
  let p = pos;
  buf[p] = 0x93;
  buf[p + 1] = tag;
  if (id < 128) {
    buf[p + 2] = id;
    p += 3;
  } else {
    pos = p + 2;
    putUint(id);
    p = pos;
  }
  pos = stampAt(p);
  if (pos >= flushAt) flushNow();
}

// ---- spans --------------------------------------------------------------------------------------

/** A span handle. Spans are closed explicitly with `close()` (there is no GC hook to rely on). */
export class Span {
  /** @internal Set by `close()`: no record is written for the span after it (read by tracing.inSpan). */
  closed = false;
  constructor(
    readonly id: number,
    readonly name: string,
    private readonly fields: readonly string[],
  ) {}

  enter(): this {
    if (this.id !== 0 && !this.closed) spanTime(Tag.spanEntered, this.id);
    return this;
  }

  exit(): this {
    if (this.id !== 0 && !this.closed) spanTime(Tag.spanExited, this.id);
    return this;
  }

  /** Sets a field declared when the span was created (or `error`). */
  record(key: string, value: unknown): this {
    if (!this.closed) recordValue(this.id, this.fields, key, value);
    return this;
  }

  followsFrom(other: Span): this {
    if (this.id === 0 || other.id === 0 || this.closed) return this;
    openBytes();
    room(16);
    buf[pos++] = 0x93;
    buf[pos++] = Tag.followsFrom;
    putUint(this.id);
    putUint(other.id);
    return this;
  }

  /** Closes the span, once (see dropSpan: also the fused exit-and-close of an entered span). */
  close(): void {
    if (this.closed || this.id === 0) return;
    this.closed = true;
    dropSpan(this.id);
  }

  /** Enters, runs `fn`, exits. An exception sets the span's `error` field and is rethrown. */
  inSpan<T>(fn: (span: this) => T): T {
    this.enter();
    try {
      return fn(this);
    } catch (e) {
      this.record('error', isError(e) ? e : new SdkError(toText(e)));
      throw e;
    } finally {
      this.exit();
    }
  }
}

/** `[8, id, index, value]` for a field of span `id` (nothing for id 0, a disabled span, or an undeclared key). */
function recordValue(id: number, fields: readonly string[], key: string, value: unknown): void {
  const i = fields.indexOf(key);
  if (i < 0 || id <= 0) return;
  const start = pos;
  const time = openBytes();
  try {
    room(16);
    buf[pos++] = 0x94;
    buf[pos++] = Tag.valuesRecorded;
    putUint(id);
    buf[pos++] = i;
    putValue(value);
  } catch (e) {
    abandon(start, time);
    throw e;
  }
  maybeFlush();
}

/**
 * `[7, id, dt]`: the span's last reference is dropped, which closes it, and also exits it when it
 * is entered (the host exits a span dropped while entered, at the drop's time): after an enter,
 * this is the fused exit-and-close. Written out (spanTime and stampAt inlined).
 */
function dropSpan(id: number): void {
  if (slotsOn) {
    // slotTime, written out: the drop ends every span (`var`: see EventSite.emit).
    var q = sp;
    slots[q] = 3; // kind: drop (a literal: reading a module constant costs a little)
    slots[q + 1] = clockMs();
    slots[q + 2] = id;
    if ((sp = q + 6) >= slotLimit) flushNow(); // 6: W
    return;
  }
  if (pos + 16 > cap) room(16);
  const start = pos;
  const time = openBytes();
  let p = pos;
  buf[p] = 0x93;
  buf[p + 1] = Tag.spanDropped;
  if (id < 128) {
    buf[p + 2] = id;
    p += 3;
  } else if (id <= 0xffffffff) {
    buf[p + 2] = 0xce;
    dv.setUint32(p + 3, id);
    p += 7;
  } else {
    p = slowAt(p + 2, id, start, time);
    if (pos + 5 > cap) room(5);
  }
  const t = round(clockMs() * 1e6);
  const d = t - lastTime;
  lastTime = t;
  if (d >= 0 && d <= 0xffffffff) {
    buf[p] = 0xce;
    dv.setUint32(p + 1, d);
    p += 5;
  } else p = slowAt(p, d, start, time);
  pos = p;
  if (p >= flushAt) flushNow();
}

/**
 * A span of a declared span site (`SpanCallsite.open`, `inSpan`), with Span's methods. Two
 * properties instead of a Span's four: in QuickJS allocating the object is a good part of a
 * span's cost (a four-property object measured about twice a two-property one). `id`, `name`,
 * `fields` and `closed` are read through getters.
 */
export class SiteSpan {
  /** The span id while the span is open, its negation once closed. */
  private declare s: number;
  private declare readonly site: SpanCallsite;
  constructor(id: number, site: SpanCallsite) {
    this.s = id;
    this.site = site;
  }

  get id(): number {
    const s = this.s;
    return s < 0 ? -s : s;
  }

  get name(): string {
    return this.site.name;
  }

  /** The span's fields: the site's, then `error`. */
  get fields(): readonly string[] {
    return this.site.keys;
  }

  get closed(): boolean {
    return this.s < 0;
  }

  enter(): this {
    const s = this.s;
    if (s > 0) spanTime(Tag.spanEntered, s);
    return this;
  }

  exit(): this {
    const s = this.s;
    if (s > 0) spanTime(Tag.spanExited, s);
    return this;
  }

  /** Sets a field of the site (or `error`). */
  record(key: string, value: unknown): this {
    recordValue(this.s, this.site.keys, key, value);
    return this;
  }

  /** `other`: a span (of any kind). Its id is read once. */
  followsFrom(other: { readonly id: number }): this {
    const id = this.s;
    const o = other.id;
    if (id <= 0 || !isSafeInteger(o) || o <= 0) return this;
    openBytes();
    room(24);
    buf[pos++] = 0x93;
    buf[pos++] = Tag.followsFrom;
    putUint(id);
    putUint(o);
    return this;
  }

  /**
   * Closes the span, once: `[7, id, dt]`, which also exits it when it is entered (the fused
   * exit-and-close; see Span.close).
   */
  close(): void {
    var id = this.s;
    if (id <= 0) return;
    this.s = -id;
    if (!slotsOn) return dropSpan(id);
    // dropSpan's slot record, written out (a call is a tenth of it); `var` as in EventSite.emit.
    var p = sp;
    slots[p] = 3; // kind: drop (a literal: reading a module constant costs a little)
    slots[p + 1] = clockMs();
    slots[p + 2] = id;
    if ((sp = p + 6) >= slotLimit) flushNow(); // 6: W
  }

  /** Enters, runs `fn`, exits. An exception sets the span's `error` field and is rethrown. */
  inSpan<T>(fn: (span: this) => T): T {
    this.enter();
    try {
      return fn(this);
    } catch (e) {
      this.record('error', isError(e) ? e : new SdkError(toText(e)));
      throw e;
    } finally {
      this.exit();
    }
  }
}

const siteSpanPrototype = SiteSpan.prototype;

/** The span of every disabled call: shared by all runs, so frozen (its id stays 0). */
const disabledSpan: Span = freeze(new Span(0, '', [])) as Span;

/** `entered`: created and entered in one record (newSpanEntered), for tracing.inSpan. */
function newSpan(name: string, fields: Fields | undefined, options: SpanOptions | undefined, entered: boolean): Span {
  const id = newSpanId(name, fields, options, entered);
  return id === 0 ? disabledSpan : new Span(id, newName, newKeys);
}

/** The name and fields of the span newSpanId created last (for its Span, when one is made). */
let newName = '';
const NO_KEYS: readonly string[] = freeze([]);
let newKeys: readonly string[] = NO_KEYS;

/** Writes a new span's record and returns its id (0: disabled); newName and newKeys say what it was. */
function newSpanId(name: string, fields: Fields | undefined, options: SpanOptions | undefined, entered: boolean): number {
  const level = options?.level;
  const lv = level === undefined ? 2 : typeof level === 'string' ? LEVEL_NUM[level] : undefined;
  if (lv === undefined) throw unknownLevel(level);
  if (lv < minLevel) return 0;
  const n = scratchFields(fields);
  const gen = scratchGen;
  const link = options?.link;
  const spanName = typeof name === 'string' ? name : toText(name);
  const target = options?.target ?? 'guest';
  // What may run guest code (the link's string, a parent's id) is read before anything is written.
  const linkText = link === undefined ? undefined : toText(link);
  const parent = options?.parent;
  const parentId = parent === null ? -1 : parent === undefined ? 0 : parent.id; // -1: explicit root, 0: contextual
  if (gen !== scratchGen) throw scratchReentered(); // the guest code above called tracing with fields
  const site = spanSite(spanName, LEVELS[lv]!, typeof target === 'string' ? target : toText(target), n, linkText !== undefined);
  newName = spanName;
  newKeys = site.keys;
  return writeSpan(site.id, n, parentId, linkText, entered);
}

/**
 * tracing.inSpan's newSpanId: no options (level info, target 'guest', contextual parent, no
 * link), so none are read.
 */
function inSpanId(name: string, fields: Fields | undefined): number {
  if (minLevel > 2) return 0;
  // `var` here and in spanSite's search: see EventSite.emit.
  var spanName = typeof name === 'string' ? name : toText(name); // guest code: before the fields are read
  var n = scratchFields(fields);
  var site = spanSite(spanName, 'info', 'guest', n, false);
  newKeys = site.keys;
  return writeSpan(site.id, n, 0, undefined, true);
}

/** Writes a new span's record, its `n` values in scratchValues; returns its id. */
function writeSpan(cs: number, n: number, parentId: number, linkText: string | undefined, entered: boolean): number {
  if (slotsOn && parentId === 0 && linkText === undefined && n <= SLOT_SPAN_VALUES) {
    return slotRecord((entered ? SLOT_OPEN : SLOT_SPAN) + n * 8 + cs * SLOT_CS, 3, undefined, scratchValues, n);
  }
  // The id is taken now: a value's conversion below may open spans of its own (slot records), which
  // would otherwise get it too. A record that fails gives it back unless one of those took the next.
  const id = nextSpanId;
  nextSpanId = id + 1;
  const gen = scratchGen;
  const start = pos;
  const time = openBytes();
  try {
    room(24);
    putArrayHeader(5 + n + (linkText === undefined ? 0 : 2));
    buf[pos++] = entered ? Tag.newSpanEntered : Tag.newSpan;
    putUint(id);
    if (parentId === -1) buf[pos++] = 0xc2; // explicit root
    else if (parentId === 0) buf[pos++] = 0xc0; // contextual (a disabled parent too)
    else putUint(parentId);
    putUint(cs);
    pos = stampAt(pos);
    for (let i = 0; i < n; i++) {
      if (scratchGen !== gen) throw scratchReentered(); // a conversion called tracing with fields: the rest are its values
      putValue(scratchValues[i]);
    }
    if (linkText !== undefined) {
      room(1);
      buf[pos++] = 0xc0; // error: not recorded yet (fewer values than fields is fine, but the link comes after it)
      putValue(linkText);
    }
  } catch (e) {
    if (nextSpanId === id + 1) nextSpanId = id;
    abandon(start, time);
    throw e;
  }
  maybeFlush();
  return id;
}

/** A span callsite as its recent-site list holds it: `keys` is frozen, since its spans expose it as their fields. */
interface SpanSiteEntry {
  readonly level: Level;
  readonly target: string;
  readonly link: boolean;
  readonly keys: readonly string[];
  readonly code: SiteCode;
  /** The code's id in `run`, copied out for the hot path. */
  run: number;
  id: number;
}

/**
 * Recently used callsites of one kind (span sites of one name, event shapes of one level), found
 * by comparing parts without building strings, and kept from one run to the next with siteCodes
 * (see trimCaches). The sites this run used come first, in the order of their first use, as in a
 * freshly loaded SDK's list: what earlier runs left is scanned after them.
 */
interface SiteList<T extends { readonly code: SiteCode }> {
  readonly items: T[];
  /** How many items at the front this run has used (`usedIn` is the run counted). */
  used: number;
  usedIn: number;
}

function newSiteList<T extends { readonly code: SiteCode }>(): SiteList<T> {
  return { items: [], used: 0, usedIn: 0 };
}

/** Moves `items[s]`, used for the first time in this run, to the end of the run's used prefix. */
function markUsed(list: SiteList<{ readonly code: SiteCode }>, s: number): void {
  if (list.usedIn !== run) {
    list.usedIn = run;
    list.used = 0;
  }
  const u = list.used++;
  if (s !== u) {
    const items = list.items;
    const item = items[s]!;
    items[s] = items[u]!;
    items[u] = item;
  }
}

/** Adds a site to a list that has room (RECENT_SITES_PER_LEVEL), as used in this run. */
function addSite<T extends { readonly code: SiteCode }>(list: SiteList<T>, site: T): void {
  const items = list.items;
  if (items.length >= RECENT_SITES_PER_LEVEL) return;
  items.push(site);
  markUsed(list, items.length - 1);
  if (items.length > KEPT_RECENT) longLists = true;
}

/** Span callsites by name. */
const spanSites = new Map<string, SiteList<SpanSiteEntry>>();
/** Set when a recent-site list (of spanSites or recentSites) grows past KEPT_RECENT: trimCaches then goes through them. */
let longLists = false;

/** The span callsite for these (primitive) parts and the `n` keys in scratchKeys, numbered (and announced) in this run. */
function spanSite(name: string, level: Level, target: string, n: number, link: boolean): SpanSiteEntry {
  var list = spanSites.get(name);
  if (list === undefined) spanSites.set(name, (list = newSiteList()));
  var items = list.items;
  outer: for (var s = 0; s < items.length; s++) {
    var site = items[s]!;
    if (site.level !== level || site.target !== target || site.link !== link || site.keys.length !== n + 1 + (link ? 1 : 0)) continue;
    for (var i = 0; i < n; i++) if (site.keys[i] !== scratchKeys[i]) continue outer;
    if (site.run !== run) {
      const code = site.code;
      if (code.run !== run) {
        markUsed(list, s);
        announce(code);
      }
      site.run = run;
      site.id = code.id;
    }
    return site;
  }
  const keys = scratchKeys.slice(0, n);
  keys.push('error');
  if (link) keys.push(LINK_FIELD);
  const code = siteCode('span', level, target, name, keys);
  const entry: SpanSiteEntry = { level, target, link, keys: freeze(keys), code, run, id: code.id };
  addSite(list, entry);
  return entry;
}

// ---- events -------------------------------------------------------------------------------------

function scratchReentered(): TypeError {
  return new LevelError('sandtrace: a field getter, trap or conversion called tracing with fields while its caller was reading its own (the outer record is not written)');
}

// `tracing.info(message, fields)` and friends enumerate the fields once per event (into these
// scratch arrays) and find their callsite by comparing key lists, without building strings.
const scratchKeys: string[] = [];
const scratchValues: unknown[] = [];
/** Per level: recently used field-name lists (with 'message' first) and their callsites. */
const recentSites: Array<SiteList<EventShape>> = [newSiteList(), newSiteList(), newSiteList(), newSiteList(), newSiteList()];

/** An event shape as its list holds it, with its code's id in `run` copied out, for the hot path. */
interface EventShape {
  readonly keys: readonly string[];
  readonly code: SiteCode;
  run: number;
  id: number;
}
/** Sites a recent-site list holds at most. */
const RECENT_SITES_PER_LEVEL = 32;

/** Counts scratchFields calls: a caller that runs guest code after its own call sees whether another came in between. */
let scratchGen = 0;

/**
 * Enumerates a fields object once, into scratchKeys and scratchValues; returns how many. A
 * getter or Proxy trap that calls tracing with fields of its own overwrites the scratch arrays
 * mid-enumeration (keys and values of two objects mixed): that is refused with a TypeError, and
 * the outer record is not written (the nested one is whole).
 */
function scratchFields(fields: Fields | undefined): number {
  var n = 0;
  var gen = ++scratchGen;
  if (fields !== undefined)
    for (var k in fields) {
      scratchKeys[n] = k;
      scratchValues[n] = fields[k];
      n++;
    }
  if (gen !== scratchGen) throw scratchReentered();
  return n;
}

/**
 * `tracing.info` and its siblings: one function per level, so that a call goes straight to the
 * work (in QuickJS each extra call and lookup costs about as much as writing a value).
 */
function levelEvent(lv: number, level: Level): (message: string, fields?: Fields) => void {
  return (message, fields) => {
    if (lv < minLevel) return;
    if (typeof message !== 'string') message = toText(message); // guest code: before the fields are read (it may call tracing)
    var n = scratchFields(fields);
    var gen = scratchGen;
    var cs = recentSite(lv, level, n);
    if (slotsOn && n < SLOT_EVENT_VALUES) {
      slotRecord(SLOT_EVENT + (n + 1) * 8 + cs * SLOT_CS, 2, message, scratchValues, n);
      return;
    }
    var start = pos;
    var time = openBytes();
    try {
      beginEvent(cs, 1 + n);
      if (message === lastMessage) {
        // putMessage's most frequent case, written out (about 3% of an event): the same literal again.
        var bytes = lastMessageBytes;
        if (pos + bytes.length > cap) room(bytes.length);
        buf.set(bytes, pos);
        pos += bytes.length;
      } else putMessage(message);
      for (var i = 0; i < n; i++) {
        if (scratchGen !== gen) throw scratchReentered(); // a conversion called tracing with fields: the rest are its values
        putValue(scratchValues[i]);
      }
    } catch (e) {
      abandon(start, time);
      throw e;
    }
    if (pos >= flushAt) flushNow();
  };
}

/** The callsite of an event with the `n` keys in scratchKeys, from the per-level list when seen before. */
function recentSite(lv: number, level: Level, n: number): number {
  var list = recentSites[lv]!;
  var items = list.items;
  outer: for (var s = 0; s < items.length; s++) {
    var site = items[s]!;
    var keys = site.keys;
    if (keys.length !== n + 1) continue;
    for (var i = 0; i < n; i++) if (keys[i + 1] !== scratchKeys[i]) continue outer;
    if (site.run === run) return site.id;
    var code = site.code;
    if (code.run !== run) {
      markUsed(list, s);
      announce(code);
    }
    site.run = run;
    return (site.id = code.id);
  }
  // Not found: the slow path, `let` again (the `var`s above are for the search, run on every event).
  const siteKeys = ['message'];
  for (let i = 0; i < n; i++) siteKeys.push(scratchKeys[i]!);
  const created = siteCode('event', level, 'guest', 'event', siteKeys);
  addSite(list, { keys: siteKeys, code: created, run, id: created.id });
  return created.id;
}

/**
 * An event callsite declared once, for hot paths: values are positional, nothing is enumerated
 * or looked up per event (tracing's static callsites, in JavaScript). Its events are named by the
 * message and carry no `message` field of their own.
 *
 * @example
 * const tick = tracing.callsite('tick', ['i', 'ok']);
 * for (let i = 0; i < n; i++) tick.emit(i, true);
 */
export class EventSite {
  private id = 0;
  /** The slot record's head without its value types (kind, count, callsite), once announced. */
  private slotHead = 0;
  /** The run in which the callsite was announced (numbered): ids are per run. */
  private announced = -1;
  /** The run in which `emit` takes its written-out path: announced, enabled, slots on, at most two fields. */
  private hot = -1;
  private readonly level: number;
  private readonly count: number;
  constructor(
    readonly message: string,
    readonly fields: readonly string[],
    readonly levelName: Level,
    readonly target: string,
  ) {
    this.level = levelNumber(levelName);
    this.count = fields.length;
    // Past six fields, emit takes every argument. That version lives apart: in QuickJS a function
    // that mentions `arguments` (or a rest parameter) builds it on every call. Defined, not
    // assigned: once the realm is hardened, the prototype's `emit` is read-only, and assigning
    // over an inherited read-only property throws.
    if (this.count > 6) defineProperty(this, 'emit', { value: (...values: unknown[]) => this.emitValues(values), writable: true, configurable: true });
    // The prototype's emit declares two parameters (a call filling in four more measured 60 ns
    // of a 0.9 µs event): sites of three to six fields take theirs through this one.
    else if (this.count > 2) defineProperty(this, 'emit', { value: (a: unknown, b: unknown, c: unknown, d: unknown, e: unknown, f: unknown) => this.emitCold(a, b, c, d, e, f), writable: true, configurable: true });
  }

  get enabled(): boolean {
    return this.level >= minLevel;
  }

  /**
   * Emits the event with its field values in declaration order (sites with more than six fields
   * take any number).
   *
   * This is the SDK's hottest path, so it is written out in place: one comparison decides it
   * (see `hot`), and a slot record with numbers and booleans is four typed-array stores and a
   * clock reading (see the slot records section). Any other value takes emitCold.
   */
  emit(a?: unknown, b?: unknown, c?: unknown, d?: unknown, e?: unknown, f?: unknown): void;
  emit(a?: unknown, b?: unknown): void {
    if (this.hot !== run) return this.emitCold(a, b, undefined, undefined, undefined, undefined);
    // `var`, and the module's `slots` and `sp` read in place: QuickJS checks a `let`/`const`
    // local for its temporal dead zone on every read, and this path is a few dozen operations
    // (var locals and the fused cursor update 0.68 against 0.86 µs for this method in a bare runtime).
    var h = this.slotHead, p = sp;
    // Values past the site's count are left out by the host whatever their type code says.
    if (typeof a === 'number') slots[p + 2] = a;
    else if (a === true) h += 64;
    else if (a === false) h += 128;
    else if (a === undefined) h += 192;
    else if (typeof a === 'string') {
      h += 256;
      slots[p + 2] = stringRef(a);
    } else return this.emitCold(a, b, undefined, undefined, undefined, undefined);
    if (typeof b === 'number') slots[p + 3] = b;
    else if (b === true) h += 512;
    else if (b === false) h += 1024;
    else if (b === undefined) h += 1536;
    else if (typeof b === 'string') {
      h += 2048;
      slots[p + 3] = stringRef(b);
    } else return this.emitCold(a, b, undefined, undefined, undefined, undefined);
    slots[p] = h;
    slots[p + 1] = clockMs();
    if ((sp = p + 6) >= slotLimit) flushNow(); // 6: W
  }

  /** emit before the site's first use in a run, when disabled, or with values other than numbers, booleans and strings. */
  private emitCold(a: unknown, b: unknown, c: unknown, d: unknown, e: unknown, f: unknown): void {
    if (this.level < minLevel) return;
    if (this.announced !== run) this.announce();
    const n = this.count;
    if (slotsOn && n <= SLOT_EVENT_VALUES) {
      const args = argScratch;
      args[0] = a;
      args[1] = b;
      args[2] = c;
      args[3] = d;
      try {
        slotRecord(this.slotHead, 2, undefined, args, n);
      } finally {
        args[0] = args[1] = args[2] = args[3] = undefined;
      }
      return;
    }
    const start = pos;
    const time = openBytes();
    try {
      beginEvent(this.id, n);
      if (n > 0) putValue(a);
      if (n > 1) putValue(b);
      if (n > 2) putValue(c);
      if (n > 3) putValue(d);
      if (n > 4) putValue(e);
      if (n > 5) putValue(f);
    } catch (err) {
      abandon(start, time);
      throw err;
    }
    if (pos >= flushAt) flushNow();
  }

  /** Emits the event with its values in an array (any number of fields). */
  emitValues(values: readonly unknown[]): void {
    if (this.level < minLevel) return;
    if (this.announced !== run) this.announce();
    const n = this.count;
    if (slotsOn && n <= SLOT_EVENT_VALUES) {
      // Read once, before anything is written: the array is the guest's (its reads may run guest code).
      // Into locals first: a read may run guest code that emits (and so fills and empties argScratch).
      const a = values[0];
      const b = n > 1 ? values[1] : undefined;
      const c = n > 2 ? values[2] : undefined;
      const d = n > 3 ? values[3] : undefined;
      const args = argScratch;
      args[0] = a;
      args[1] = b;
      args[2] = c;
      args[3] = d;
      try {
        slotRecord(this.slotHead, 2, undefined, args, n);
      } finally {
        args[0] = args[1] = args[2] = args[3] = undefined;
      }
      return;
    }
    const start = pos;
    const time = openBytes();
    try {
      beginEvent(this.id, n);
      for (let i = 0; i < n; i++) putValue(values[i]);
    } catch (e) {
      abandon(start, time);
      throw e;
    }
    maybeFlush();
  }

  /**
   * The callsite is named by the message (it is the same for every event of the site). Its
   * parts are made primitive strings here: a guest can also construct an EventSite itself.
   */
  private announce(): void {
    this.id = siteCode('event', LEVELS[this.level] ?? 'info', toText(this.target), toText(this.message), names(this.fields)).id;
    this.slotHead = SLOT_EVENT + this.count * 8 + this.id * SLOT_CS;
    this.announced = run;
    // The host's level is set per run: an enabled site stays enabled for the rest of it.
    this.hot = slotsOn && this.count <= 2 && this.level >= minLevel ? run : -1;
  }
}

/** Arguments of a cold emit or open, as an array for slotRecord (emptied after). */
const argScratch: unknown[] = [undefined, undefined, undefined, undefined];

/**
 * A span callsite declared once, for hot paths (as `tracing.callsite` is for events): values are
 * positional, nothing is enumerated or looked up per span, and a span costs two records, each
 * with one clock reading: created and entered in one (`newSpanEntered`), exited and closed in one
 * (the drop of an entered span, `SiteSpan.close`).
 *
 * @example
 * const handle = tracing.spanSite('handle', ['user', 'items']);
 * handle.inSpan(() => work(), 'alice', 3);
 * handle.inSpan((span) => span.record('items', 2), 'bob');
 * const s = handle.open('carol', 0); s.record('items', 1); s.close();
 *
 * Its spans' fields are the declared ones plus `error` (set when `inSpan`'s function throws).
 * The class is reachable by guests (`site.constructor`), so the constructor checks and copies
 * everything it is given itself.
 */
export class SpanCallsite {
  readonly name: string;
  readonly target: string;
  readonly levelName: Level;
  /** The declared field names (a frozen copy); spans of this site also have `error`. */
  readonly fields: readonly string[];
  /** @internal The fields of its spans: declared ones, then `error`; frozen, its spans share it. */
  readonly keys: readonly string[];
  private readonly level: number;
  private readonly count: number;
  /** The callsite id in run `siteRun` (announced then); in other runs it is announced again. */
  private id = 0;
  private siteRun = -1;
  /** The slot record's head without its value types (kind, count, callsite), once announced. */
  private slotHead = 0;
  /**
   * The run in which `openId` may take its written-out path: the callsite is announced, enabled,
   * slots are on and it has at most two fields. One comparison on the hot path for all of it
   * (the host's level is set per run).
   */
  private hot = -1;

  constructor(name: string, fields: readonly string[] = [], options?: { level?: Level; target?: string }) {
    if (!isArray(fields)) throw new LevelError('tracing.spanSite: fields must be an array of field names');
    const level = options?.level;
    this.level = levelNumber(level);
    this.levelName = LEVELS[this.level]!;
    const target = options?.target;
    this.target = target === undefined ? 'guest' : toText(target);
    this.name = toText(name);
    this.fields = freeze(names(fields));
    const keys = names(fields);
    keys.push('error');
    this.keys = freeze(keys);
    this.count = this.fields.length;
    // Past six fields, open and inSpan take every argument (see EventSite: a function with a rest
    // parameter builds it on every call, so those versions live apart). Defined, not assigned:
    // the prototype's are read-only once the realm is hardened.
    if (this.count > 6) {
      defineProperty(this, 'open', { value: (...values: unknown[]) => this.openValues(values), writable: true, configurable: true });
      defineProperty(this, 'inSpan', { value: (fn: (span?: SiteSpan | Span) => unknown, ...values: unknown[]) => this.inSpanValues(fn, values), writable: true, configurable: true });
    } else if (this.count > 2) {
      // The prototype's open and inSpan declare two values (see EventSite): these take up to six.
      defineProperty(this, 'open', { value: (a: unknown, b: unknown, c: unknown, d: unknown, e: unknown, f: unknown) => this.openCold(a, b, c, d, e, f), writable: true, configurable: true });
      defineProperty(this, 'inSpan', {
        value: (fn: (span?: SiteSpan | Span) => unknown, a: unknown, b: unknown, c: unknown, d: unknown, e: unknown, f: unknown) => this.inSpanWide(fn, a, b, c, d, e, f),
        writable: true,
        configurable: true,
      });
    }
  }

  get enabled(): boolean {
    return this.level >= minLevel;
  }

  /**
   * Creates a span of this site with its values in declaration order (missing ones: not
   * recorded yet), entered: close it with `close()`, which also exits it. Disabled (below the
   * host's level): an inert span that writes nothing.
   */
  open(a?: unknown, b?: unknown, c?: unknown, d?: unknown, e?: unknown, f?: unknown): SiteSpan | Span;
  open(a?: unknown, b?: unknown): SiteSpan | Span {
    // openId's hot path, written out here (a call with six arguments is about a twentieth of a
    // span); `var` locals as in EventSite.emit.
    if (this.hot !== run) return this.openCold(a, b, undefined, undefined, undefined, undefined);
    var h = this.slotHead, p = sp, id = nextSpanId;
    if (typeof a === 'number') slots[p + 3] = a;
    else if (a === true) h += 64;
    else if (a === false) h += 128;
    else if (a === undefined) h += 192;
    else if (typeof a === 'string') {
      h += 256;
      slots[p + 3] = stringRef(a);
    } else return this.openCold(a, b, undefined, undefined, undefined, undefined);
    if (typeof b === 'number') slots[p + 4] = b;
    else if (b === true) h += 512;
    else if (b === false) h += 1024;
    else if (b === undefined) h += 1536;
    else if (typeof b === 'string') {
      h += 2048;
      slots[p + 4] = stringRef(b);
    } else return this.openCold(a, b, undefined, undefined, undefined, undefined);
    slots[p] = h;
    slots[p + 1] = clockMs();
    slots[p + 2] = id;
    nextSpanId = id + 1;
    if ((sp = p + 6) >= slotLimit) flushNow(); // 6: W
    // A literal with its prototype costs less than a constructor call (measured: 0.31 against 0.42 µs).
    return { __proto__: siteSpanPrototype, s: id, site: this } as unknown as SiteSpan;
  }

  /** open, other than on its written-out path. */
  private openCold(a: unknown, b: unknown, c: unknown, d: unknown, e: unknown, f: unknown): SiteSpan | Span {
    const id = this.level < minLevel ? 0 : this.openIdArgs(a, b, c, d, e, f);
    return id === 0 ? disabledSpan : new SiteSpan(id, this);
  }

  /** `open` with the values in an array (any number of fields; only the first `fields.length` are read). */
  openValues(values: readonly unknown[]): SiteSpan | Span {
    const id = this.openIdValues(values);
    return id === 0 ? disabledSpan : new SiteSpan(id, this);
  }

  /**
   * Opens a span with these values, runs `fn` inside it, closes it (which exits it) and returns
   * what `fn` returned. An exception sets the span's `error` field and is rethrown. `fn` that is
   * not a function is a TypeError before anything is written.
   *
   * `fn` is given the span when it declares a parameter (`fn.length > 0`): `(span) => …`. A
   * function that declares none (`() => …`, also `(...args) => …` and `(s = x) => …`) is called
   * without it, and no span object is made at all (in QuickJS, allocating it is about a sixth of
   * the span's cost).
   */
  inSpan<T>(fn: (span?: SiteSpan | Span) => T, a?: unknown, b?: unknown, c?: unknown, d?: unknown, e?: unknown, f?: unknown): T;
  inSpan<T>(fn: (span?: SiteSpan | Span) => T, a?: unknown, b?: unknown): T {
    if (typeof fn !== 'function') throw new LevelError('spanSite.inSpan: the first argument must be a function');
    const wantsSpan = fn.length > 0; // guest code (a getter) runs here, before anything is written
    const id = this.openId(a, b);
    return wantsSpan ? runInSpan(id === 0 ? disabledSpan : new SiteSpan(id, this), fn) : runInSpanId(id, this.keys, fn);
  }

  /** inSpan of a site with three to six fields. */
  private inSpanWide<T>(fn: (span?: SiteSpan | Span) => T, a: unknown, b: unknown, c: unknown, d: unknown, e: unknown, f: unknown): T {
    if (typeof fn !== 'function') throw new LevelError('spanSite.inSpan: the first argument must be a function');
    const wantsSpan = fn.length > 0;
    const id = this.level < minLevel ? 0 : this.openIdArgs(a, b, c, d, e, f);
    return wantsSpan ? runInSpan(id === 0 ? disabledSpan : new SiteSpan(id, this), fn) : runInSpanId(id, this.keys, fn);
  }

  /** `inSpan` with the values in an array. */
  inSpanValues<T>(fn: (span?: SiteSpan | Span) => T, values: readonly unknown[]): T {
    if (typeof fn !== 'function') throw new LevelError('spanSite.inSpan: the first argument must be a function');
    const wantsSpan = fn.length > 0;
    const id = this.openIdValues(values);
    return wantsSpan ? runInSpan(id === 0 ? disabledSpan : new SiteSpan(id, this), fn) : runInSpanId(id, this.keys, fn);
  }

  /**
   * Writes the new span's record (`[12, id, nil, callsite, dt, a, b, …]`, as a slot record when
   * it can) and returns its id (0: disabled).
   *
   * The hottest span path, written out as EventSite.emit is: numbers and booleans are stored
   * here, any other value takes openIdValues.
   */
  private openId(a: unknown, b: unknown): number {
    if (this.hot !== run) return this.level < minLevel ? 0 : this.openIdArgs(a, b, undefined, undefined, undefined, undefined);
    var h = this.slotHead, p = sp, id = nextSpanId;
    if (typeof a === 'number') slots[p + 3] = a;
    else if (a === true) h += 64;
    else if (a === false) h += 128;
    else if (a === undefined) h += 192;
    else if (typeof a === 'string') {
      h += 256;
      slots[p + 3] = stringRef(a);
    } else return this.openIdArgs(a, b, undefined, undefined, undefined, undefined);
    if (typeof b === 'number') slots[p + 4] = b;
    else if (b === true) h += 512;
    else if (b === false) h += 1024;
    else if (b === undefined) h += 1536;
    else if (typeof b === 'string') {
      h += 2048;
      slots[p + 4] = stringRef(b);
    } else return this.openIdArgs(a, b, undefined, undefined, undefined, undefined);
    slots[p] = h;
    slots[p + 1] = clockMs();
    slots[p + 2] = id;
    nextSpanId = id + 1;
    if ((sp = p + 6) >= slotLimit) flushNow(); // 6: W
    return id;
  }

  /** openIdValues for positional arguments. */
  private openIdArgs(a: unknown, b: unknown, c: unknown, d: unknown, e: unknown, f: unknown): number {
    const args = argScratch6;
    args[0] = a;
    args[1] = b;
    args[2] = c;
    args[3] = d;
    args[4] = e;
    args[5] = f;
    try {
      return this.openIdValues(args);
    } finally {
      args[0] = args[1] = args[2] = args[3] = args[4] = args[5] = undefined;
    }
  }

  /** The general form of openId: values in an array, any callsite id and number of fields. */
  private openIdValues(values: readonly unknown[]): number {
    if (!isArray(values)) throw new LevelError('spanSite.openValues: values must be an array');
    if (this.level < minLevel) return 0;
    if (this.siteRun !== run) this.announce();
    const n = this.count;
    if (slotsOn && n <= SLOT_SPAN_VALUES) {
      // As emitValues: a guest's array is read once, first, into locals (openIdArgs passes the SDK's own).
      const a = values[0];
      const b = n > 1 ? values[1] : undefined;
      const c = n > 2 ? values[2] : undefined;
      const args = argScratch;
      args[0] = a;
      args[1] = b;
      args[2] = c;
      try {
        // The id is taken once the values are converted (see slotRecord).
        return slotRecord(this.slotHead, 3, undefined, args, n);
      } finally {
        args[0] = args[1] = args[2] = args[3] = undefined;
      }
    }
    const id = nextSpanId;
    nextSpanId = id + 1; // taken now, as in writeSpan: a conversion below may open spans
    const start = pos;
    const time = openBytes();
    try {
      room(24);
      putArrayHeader(5 + n);
      buf[pos++] = Tag.newSpanEntered;
      putUint(id);
      buf[pos++] = 0xc0; // contextual parent
      putUint(this.id);
      if (pos + 5 > cap) room(5);
      pos = stampAt(pos);
      for (let i = 0; i < n; i++) putValue(values[i]);
    } catch (e) {
      if (nextSpanId === id + 1) nextSpanId = id;
      abandon(start, time);
      throw e;
    }
    maybeFlush();
    return id;
  }

  /** Numbers (and announces) the callsite in this run; the same content as `tracing.span` gives it. */
  private announce(): void {
    const id = siteCode('span', this.levelName, this.target, this.name, this.keys).id;
    this.id = id;
    this.siteRun = run;
    this.slotHead = SLOT_OPEN + this.count * 8 + id * SLOT_CS;
    this.hot = slotsOn && this.count <= 2 && this.level >= minLevel ? run : -1;
  }
}

/** Arguments of a cold open, as an array for openIdValues (emptied after). */
const argScratch6: unknown[] = [undefined, undefined, undefined, undefined, undefined, undefined];

/** Runs `fn(span)` in an entered span and closes it; an exception sets its `error` field and is rethrown. */
function runInSpan<T>(span: SiteSpan | Span, fn: (span?: SiteSpan | Span) => T): T {
  try {
    return fn(span);
  } catch (err) {
    span.record('error', isError(err) ? err : new SdkError(toText(err)));
    throw err;
  } finally {
    span.close();
  }
}

/** runInSpan without a span object: span `id` (0: disabled), whose fields are `keys`. */
function runInSpanId<T>(id: number, keys: readonly string[], fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (id !== 0) recordValue(id, keys, 'error', isError(err) ? err : new SdkError(toText(err)));
    throw err;
  } finally {
    if (id !== 0) dropSpan(id);
  }
}

/** A metric point: [10, instrument, name, value, dt, attributes?]. */
function metric(instrument: number, name: string, value: number | bigint, attributes?: Fields): void {
  if (!configured) return;
  // Guest code (the name's and the value's conversions, the attributes' getters and traps) runs
  // here, before anything is written; the attributes are enumerated once.
  const nameText = typeof name === 'string' ? name : toText(name);
  const number = typeof value === 'bigint' ? value : toNumber(value);
  const n = attributes === undefined ? 0 : scratchFields(attributes);
  const gen = scratchGen;
  const start = pos;
  const time = openBytes();
  try {
    room(16);
    buf[pos++] = n > 0 ? 0x96 : 0x95;
    buf[pos++] = Tag.metric;
    buf[pos++] = instrument;
    putValue(nameText);
    putValue(number);
    if (pos + 5 > cap) room(5);
    pos = stampAt(pos);
    if (n > 0) {
      room(3);
      if (n < 16) buf[pos++] = 0x80 | n;
      else {
        buf[pos] = 0xde;
        dv.setUint16(pos + 1, n);
        pos += 3;
      }
      for (let i = 0; i < n; i++) {
        if (scratchGen !== gen) throw scratchReentered(); // a conversion called tracing with fields: the rest are its keys and values
        putValue(scratchKeys[i]);
        putValue(scratchValues[i]);
      }
    }
  } catch (e) {
    abandon(start, time);
    throw e;
  }
  maybeFlush();
}

/** The `tracing` object guest code uses. */
export const tracing = {
  /** Creates a span (not entered). Fields declared here can be recorded later; `error` always can. */
  span: (name: string, fields?: Fields, options?: SpanOptions): Span => newSpan(name, fields, options, false),
  /**
   * Creates a span, runs `fn` inside it, closes it: two records, as a declared span site writes
   * them (created and entered in one, `newSpanEntered`; exited and closed in one, the drop of an
   * entered span). The fields object is enumerated once, to find the callsite.
   */
  inSpan<T>(name: string, fields: Fields | undefined, fn: (span: Span) => T): T {
    // As a span site's inSpan: a function that declares no parameter gets no span object (read
    // before anything is written: `length` may be a guest getter).
    if (typeof fn === 'function' && fn.length === 0) {
      const id = inSpanId(name, fields);
      return runInSpanId(id, newKeys, fn as () => T);
    }
    const span = newSpan(name, fields, undefined, true);
    try {
      return fn(span);
    } catch (e) {
      span.record('error', isError(e) ? e : new SdkError(toText(e)));
      throw e;
    } finally {
      span.close();
    }
  },
  /** Declares a span callsite once, for hot paths: values positional, spans opened in one record (see SpanCallsite). */
  spanSite: (name: string, fields?: readonly string[], options?: { level?: Level; target?: string }): SpanCallsite => new SpanCallsite(name, fields, options),
  trace: levelEvent(0, 'trace'),
  debug: levelEvent(1, 'debug'),
  info: levelEvent(2, 'info'),
  warn: levelEvent(3, 'warn'),
  error: levelEvent(4, 'error'),
  /** Declares an event callsite once, for hot loops (see EventSite). */
  callsite: (message: string, fields: readonly string[] = [], options?: { level?: Level; target?: string }) =>
    new EventSite(toText(message), names(fields), options?.level === undefined ? 'info' : options.level, options?.target ?? 'guest'),
  /** Whether events of this level are recorded; an unknown level name is a TypeError. */
  enabled: (level: Level) => levelNumber(level) >= minLevel,
  counter: (name: string, value: number | bigint, attributes?: Fields) => metric(0, name, value, attributes),
  histogram: (name: string, value: number, attributes?: Fields) => metric(1, name, value, attributes),
  gauge: (name: string, value: number, attributes?: Fields) => metric(2, name, value, attributes),
  /** The host's trace context (W3C traceparent), to propagate on calls the guest makes. */
  traceContext: (): string | undefined => traceparent,
  executionId: (): string | undefined => executionId,
  /** Spans carried over from an earlier, persisted execution, to enter, record to and close. */
  carried(): Span[] {
    const out: Span[] = [];
    for (let i = 0; i < carriedSpans.length; i++) {
      const c = carriedSpans[i]!;
      out.push(new Span(c.id, c.name, c.fields));
    }
    return out;
  },
  /** A carried-over span by name (the first one), or undefined. */
  resume(name: string): Span | undefined {
    for (let i = 0; i < carriedSpans.length; i++) {
      const c = carriedSpans[i]!;
      if (c.name === name) return new Span(c.id, c.name, c.fields);
    }
    return undefined;
  },
  /** Hands buffered records to the host now (they also go at every return to the host). */
  flush: () => flushNow(),
};

/**
 * `console` for guests (QuickJS has none): each method writes a log event at its level (`log` and
 * `info` at info), its arguments joined by spaces, as Node's console does, minus the colours.
 * Objects are written as their debug text (JSON where it works, else the object's string).
 */
export const guestConsole = freeze({
  log: consoleMethod(2, 'info'),
  info: consoleMethod(2, 'info'),
  debug: consoleMethod(1, 'debug'),
  trace: consoleMethod(0, 'trace'),
  warn: consoleMethod(3, 'warn'),
  error: consoleMethod(4, 'error'),
});

function consoleMethod(lv: number, level: Level): (...args: unknown[]) => void {
  const emit = levelEvent(lv, level);
  return (...args) => {
    if (lv < minLevel) return; // before formatting: a disabled level costs one comparison
    let text = '';
    for (let i = 0; i < args.length; i++) text += (i > 0 ? ' ' : '') + describeArg(args[i]);
    emit(text);
  };
}

function describeArg(v: unknown): string {
  if (typeof v === 'string') return v;
  if (isError(v)) return `${(v as Error).name}: ${(v as Error).message}`;
  return typeof v === 'object' && v !== null ? debugText(v) : toText(v);
}

/** A copy of a guest's field-name list, as strings, read by index (not through its prototype). */
function names(fields: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < fields.length; i++) out.push(toText(fields[i]));
  return out;
}

/**
 * Starts a run: this run's config, every piece of per-run state back to what a freshly loaded SDK
 * has (the caches of encoded bytes are trimmed to their bounds instead, or emptied for another
 * cacheScope), then the hello record (with the clock origin measured now).
 */
function startRun(c: GuestConfig): void {
  flushHost = c.flush;
  minLevel = toNumber(c.minLevel);
  flushAt = toNumber(c.flushBytes);
  slotsOn = c.slots !== false;
  const slotDoubles = slotCapacity(flushAt);
  if (slots.length !== slotDoubles) slots = new Float64Array(slotDoubles);
  slotLimit = runSlotLimit = slotDoubles - 2 * W; // a marker and a record fit above it
  sp = 0;
  spMarked = -1;
  if (vwriter.bytes.length > KEPT_BUFFER_BYTES) vwriter = new FrameWriter(4096);
  vbuf = vwriter.bytes;
  vpos = 0;
  clearStringCache();
  traceparent = c.traceparent === undefined ? undefined : toText(c.traceparent);
  executionId = c.executionId === undefined ? undefined : toText(c.executionId);
  nextSpanId = c.firstSpanId === undefined ? 1 : Math.max(1, Math.floor(toNumber(c.firstSpanId)));
  const given = c.carried;
  if (given === undefined || given.length === 0) carriedSpans = NO_CARRIED_SPANS;
  else {
    const spans: Array<{ id: number; name: string; fields: readonly string[] }> = [];
    for (let i = 0; i < given.length; i++) {
      const s = given[i]!;
      const id = toNumber(s.id);
      spans.push(freeze({ id, name: toText(s.name), fields: freeze(names(s.fields)) }));
      if (id >= nextSpanId) nextSpanId = id + 1;
    }
    carriedSpans = freeze(spans);
  }
  configured = true;

  const scope = c.cacheScope === undefined ? undefined : toText(c.cacheScope);
  if (scope !== cacheScope) {
    clearCaches();
    cacheScope = scope;
  } else trimCaches();
  run++;
  nextCallsite = 1;
  lastMessage = '';
  lastMessageBytes = EMPTY_MESSAGE_BYTES;
  scratchKeys.length = 0;
  scratchValues.length = 0;

  if (writer.bytes.length > KEPT_BUFFER_BYTES) writer = new FrameWriter(INITIAL_BUFFER_BYTES);
  else writer.reset();
  refresh(); // pos = 0
  lastTime = 0;
  openBytes(); // the frame's first byte run, at 0
  // The clock origin stays a bigint: in QuickJS, BigInt arithmetic is native, and computing the
  // two 32-bit words exactly with numbers measured slower (1.6 against 1.1 µs).
  const originNs = toBigInt(wallMs()) * 1_000_000n - toBigInt(round(clockMs() * 1e6));
  if (originNs >= 0x100000000n && originNs <= 0xffffffffffffffffn) {
    // The form FrameWriter.hello gives any origin in this range (uint64), after the constant head.
    const p = HELLO_HEAD.length;
    buf.set(HELLO_HEAD, 0);
    buf[p] = 0xcf;
    dv.setBigUint64(p + 1, originNs);
    buf[p + 9] = PROTOCOL_MINOR;
    pos = p + 10;
  } else {
    writer.hello(1, 'quickjs', SDK_VERSION, originNs, PROTOCOL_MINOR);
    refresh();
  }
}

/**
 * At the start of a run: what the caches of encoded bytes keep from the runs before. Past their
 * bounds they start empty; otherwise each recent-site list longer than KEPT_RECENT keeps only
 * sites the run that ended used, at most KEPT_RECENT (so what one run leaves there cannot fill
 * the lists for the next). Their content cannot change a byte of the next run's frames: codes
 * are pure functions of their keys, and ids are given per run.
 */
function trimCaches(): void {
  if (siteCodes.size > KEPT_SITES || siteCodeBytes > KEPT_SITE_BYTES) clearSites();
  else if (longLists) {
    for (let lv = 0; lv < recentSites.length; lv++) keepRecent(recentSites[lv]!);
    spanSites.forEach(keepRecent);
    longLists = false;
  }
  if (messageBytes.size > KEPT_MESSAGES || messageByteCount > KEPT_MESSAGE_BYTES) clearMessages();
}

function clearCaches(): void {
  clearSites();
  clearMessages();
}

/** siteCodes and the recent-site lists, together (see siteCodes). */
function clearSites(): void {
  siteCodes.clear();
  siteCodeBytes = 0;
  spanSites.clear();
  for (let lv = 0; lv < recentSites.length; lv++) recentSites[lv]!.items.length = 0;
  longLists = false;
}

function clearMessages(): void {
  messageBytes.clear();
  messageByteCount = 0;
}

function keepRecent(list: SiteList<{ readonly code: SiteCode }>): void {
  const items = list.items;
  if (items.length <= KEPT_RECENT) return;
  let n = 0;
  for (let i = 0; i < items.length && n < KEPT_RECENT; i++) if (items[i]!.code.run === run) items[n++] = items[i]!;
  items.length = n;
}

let hooksTaken = false;

/**
 * The host's private handles: returned once, to the host, before guest code runs.
 * Guest code that calls it later gets nothing.
 *
 * `configure(config)` starts a run (call it before each one: it discards whatever the previous
 * run left and resets every counter; the caches of encoded bytes it keeps within their bounds
 * change no byte of what the run writes); `drain()` returns what is buffered, packed into one
 * ArrayBuffer (see packBuffers), or hands it to the config's `flush` when that cannot be
 * allocated, or returns undefined when nothing is (call it after each run, and after a crash); `caches()` says what those caches hold
 * now, and what a run may leave to the next at most.
 */
export function takeHostHooks():
  | { configure: (c: GuestConfig) => void; drain: () => ArrayBuffer | undefined; caches: () => { now: CacheSizes; kept: CacheSizes } }
  | undefined {
  if (hooksTaken) return undefined;
  hooksTaken = true;
  return {
    configure(c: GuestConfig): void {
      startRun(c);
    },
    /** Everything buffered, packed (the host calls this at every return, and after a crash). */
    drain(): ArrayBuffer {
      scratchValues.length = 0; // guest values from the last call: not kept past the run
      newKeys = NO_KEYS;
      newName = '';
      // Always an ArrayBuffer (an empty pack when nothing is buffered or it went through the
      // flush): the host reads it without asking its type first (a typeof costs about 1-2 µs).
      if (pos === 0 && sp === 0) return EMPTY_PACK;
      // One buffer returned costs the host one read, where a call of its flush costs a crossing
      // and three reads (about 25 µs of a short run); out of memory, the flush takes them as they are.
      const packed = packBuffers();
      if (packed !== undefined) {
        resetBuffers();
        return packed;
      }
      if (flushHost !== undefined) handOver(flushHost);
      return EMPTY_PACK;
    },
    caches(): { now: CacheSizes; kept: CacheSizes } {
      let longestList = 0;
      const measure = (list: SiteList<{ readonly code: SiteCode }>) => {
        if (list.items.length > longestList) longestList = list.items.length;
      };
      recentSites.forEach(measure);
      spanSites.forEach(measure);
      return { now: { sites: siteCodes.size, siteBytes: siteCodeBytes, messages: messageBytes.size, messageBytes: messageByteCount, longestList }, kept: KEPT_LIMITS };
    },
  };
}

/**
 * What the caches kept from run to run hold (bytes: key characters plus encoded bytes), or may
 * keep at most. `longestList`: the longest recent-site list (per level for events, per name for spans).
 */
export interface CacheSizes {
  sites: number;
  siteBytes: number;
  messages: number;
  messageBytes: number;
  longestList: number;
}

/**
 * Everything this SDK's modules export, for `hardenRealm`: a guest that reaches the SDK realm's
 * `Function` can `import()` any module already loaded there, so their namespaces are roots too.
 */
export function realmRoots(): object[] {
  return [sdkModule, frameWriterModule, growBufferModule, recordsModule, tracing, guestConsole, Span, SiteSpan, EventSite, SpanCallsite, disabledSpan];
}
