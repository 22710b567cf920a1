/**
 * The host receiver: turns a guest's stream of records back into spans, events and metrics on a
 * {@link Collector}. One receiver serves one execution of one guest.
 *
 * Every record is validated before anything changes, so a rejected record leaves the receiver
 * exactly as it was. Spans are reference-counted here (the collector sees one `tryClose` per
 * span), enters are counted per span, and contextual parents are resolved against this
 * execution's own stack of entered spans, so executions sharing a collector never mix.
 */
import { EMPTY, FrameError, FrameReader, RawRecord } from '../../shared/frame-reader.js';
import { fromPlainValues, toPlainValues } from './plain-value.js';
import { LINK_FIELD, PROTOCOL_VERSION, Tag, type CallsiteData, type ErrorValue, type TracingEvent, type Values } from '../../shared/records.js';
import { hostNowNs } from '../clock.js';
import { assignValues } from '../../shared/values.js';
import type { Collector, EventInfo, ForcedClose } from '../collectors/collector.js';
import { defaultCallsiteRegistry, type CallsiteMeta, type CallsiteRegistry, type Interest } from './callsite-registry.js';
import { describeRefusal, firstSpanId, MAX_SPAN_ID, PERSISTED_SPANS_VERSION, upgradePersistedSpans, validatePersisted, type PersistedMetadata, type PersistedSpan, type PersistedSpans } from './persisted-state.js';
import { ReceiveError, type ReceiveErrorCode } from './receive-error.js';
import { describeCause, type TerminationCause } from './termination.js';
import { parseTraceParent, type TraceParent } from '../traceparent.js';
import { GUEST_PREFIX, isReservedName, renameReserved, renameReservedValues, renameToFields } from './reserved-names.js';
import { NewestOutsideMap } from './newest-outside-map.js';
import { GuestClock } from './guest-clock.js';
import { NullCollector } from '../collectors/null-collector.js';

export interface ReceiverOptions {
  collector: Collector;
  /** From an earlier `persistMetadata()`: callsites the guest may use without announcing them. */
  metadata?: PersistedMetadata;
  /** From an earlier `persist()`: spans carried over into this execution. */
  spans?: PersistedSpans;
  /** Most values one record may carry (default 32). */
  maxValues?: number;
  /** Per-execution limits against hostile guests (see {@link ReceiverLimits}). */
  limits?: Partial<ReceiverLimits>;
  /**
   * Host span that guest spans and events with a contextual parent get when the guest has no
   * span entered (for instance the runner's execution span). Default: none (`undefined`).
   */
  rootParent?: number;
  /** Carried on every span, event and metric this receiver produces. */
  executionId?: string;
  /**
   * Hand collectors each span's guest id (`NewSpanInfo.guestSpanId`), so they derive span ids
   * from (trace, execution id, guest id) and a re-run of the same execution emits the same ids
   * (default false: random ids). Only for execution ids that name one execution, or its re-runs.
   */
  stableIds?: boolean;
  /**
   * Refuse a new span whose id is below the first id this execution may allocate (default true).
   * Only for guests told that id (the QuickJS SDK, WebAssembly libraries with a 32-byte state
   * block): an older guest that numbers from 1 again would otherwise lose every span of a resumed
   * step; for it only ids of spans still open are refused, as before.
   */
  spanIdFloor?: boolean;
  /** Interning registry (default: the process-wide one). */
  registry?: CallsiteRegistry;
  /** Unix ns at which guest time 0 lies, until a hello record says otherwise (default: now). */
  clockOrigin?: bigint;
}

/**
 * Limits per receiver (one execution). A record past a limit is rejected with `LIMIT_EXCEEDED`
 * and counted; nothing it would have created is kept, so host memory stays bounded.
 */
export interface ReceiverLimits {
  /** Records accepted per execution (default 1,000,000). */
  maxRecords: number;
  /**
   * Bytes of one record (default 8 MiB). A frame may be larger: its records are then measured
   * by their msgpack structure first, and one longer than this is skipped without being decoded
   * and rejected with `LIMIT_EXCEEDED`; the records around it still apply.
   */
  maxFrameBytes: number;
  /** Bytes in one string or binary value or name (default 64 KiB); a longer one is skipped, never decoded, and its record rejected. */
  maxStringBytes: number;
  /** Spans open at once (default 10,000). */
  maxOpenSpans: number;
  /** Depth of span nesting (default 128). */
  maxDepth: number;
  /** Callsites one guest may announce (default 1,000). */
  maxCallsites: number;
  /** Enters in effect at once, re-entries of one span included (default 10,000). */
  maxEntered: number;
  /**
   * Events under carried spans held until the commit (default 10,000): they are kept in host
   * memory until then, so past this bound an event under a carried span is rejected.
   */
  maxPendingEvents: number;
  /** Bytes of values those held events may carry in all (default 16 MiB; past it an event is rejected). */
  maxPendingBytes: number;
}

export const DEFAULT_LIMITS: Readonly<ReceiverLimits> = Object.freeze({
  maxRecords: 1_000_000,
  maxFrameBytes: 8 << 20,
  maxStringBytes: 64 << 10,
  maxOpenSpans: 10_000,
  maxDepth: 128,
  maxCallsites: 1_000,
  maxEntered: 10_000,
  maxPendingEvents: 10_000,
  maxPendingBytes: 16 << 20,
});

/** Outcome of {@link TracingEventReceiver.receiveBatch}. */
export interface BatchResult {
  applied: number;
  rejected: number;
  /** 1 when the frame ended in the middle of a record (everything before it was applied), else 0. */
  truncated: number;
  /** The first few rejections, for diagnostics (all of them are counted in `stats`). */
  errors: ReceiveError[];
}

export interface ReceiverStats {
  applied: number;
  rejected: number;
  rejectedByCode: Partial<Record<ReceiveErrorCode, number>>;
  truncatedFrames: number;
  /**
   * Records skipped unread for being longer than maxFrameBytes on their own, and their bytes
   * (each is also a `LIMIT_EXCEEDED` rejection). Frames are never refused whole.
   */
  refusedFrames: number;
  refusedBytes: number;
  /** Records the guest reported it dropped itself (dropped records). */
  guestDropped: number;
  /**
   * Effects on carried spans that an execution ending without a commit took back (closes, and
   * events under them): the persisted state still holds the spans, and a retried step redoes them.
   */
  uncommitted: number;
  /**
   * Guest field and metric attribute names in the host's `sandtrace.*` namespace, renamed to
   * `guest.sandtrace.*` (see reserved-names.ts): one per declared field of each callsite
   * announcement (or carried-over callsite), one per attribute of each metric record.
   */
  reservedRenamed: number;
}

export type ReceiverState = 'open' | 'persisted' | 'ended' | 'rolledBack' | 'terminated';

interface CallsiteSlot {
  meta: CallsiteMeta;
  interest: Interest;
  /** Position of the guest-supplied trace context field (see LINK_FIELD), or -1. */
  linkIndex: number;
}


/** Host id markers for spans that have no collector span (yet). */
const DISABLED = -1;
const PENDING_RESTORE = -2;
const RESTORING = -3;
const MAX_REPORTED_ERRORS = 16;
/** A span's values before any are set (never mutated: values are replaced, see mergeValues). */
const NO_VALUES: Values = [];

class SpanEntry {
  /** Collector span id, or one of the markers above. */
  host = PENDING_RESTORE;
  /** For disabled spans: the host parent their children inherit. */
  hostParent: number | null | undefined = undefined;
  refs = 1;
  entered = 0;
  /** Nesting depth: 1 for a span without a guest parent. */
  depth = 1;
  /** Enters carried over from the persisted state: the collector already saw them exited. */
  carried = 0;
  /**
   * Position of this span's innermost enter in the receiver's enter stack, or -1; the positions
   * of its outer enters (re-entries), innermost last, in `outerSlots`. Most spans are entered
   * once: no array per span.
   */
  slot = -1;
  outerSlots: number[] | undefined = undefined;
  start = 0n;
  values: Values = NO_VALUES;
  follows: number[] | undefined = undefined;
  persisted: PersistedSpan | undefined = undefined;
  constructor(
    readonly id: number,
    readonly meta: CallsiteMeta,
    readonly guestParent: number | null | undefined,
    /** Created in this execution (as opposed to carried over from a persisted one). */
    readonly local: boolean,
  ) {}
}

/**
 * One entry that never dies. V8 builds a class instance's hidden class field by field, and drops
 * that chain at a full GC when no instance is left (every span of every receiver closed, the
 * usual state between executions); the optimized decode path depends on it and is deoptimized
 * then, so each execution after an idle GC would warm up again. Holding one instance keeps it.
 */
export const KEEP_SPAN_ENTRY_SHAPE = new SpanEntry(0, { kind: 'span', name: '', target: '', level: 'info', fields: [] } as unknown as CallsiteMeta, undefined, true);

/**
 * The newest receiver's reader, scratch record and clock, for the same reason as
 * KEEP_SPAN_ENTRY_SHAPE: a runner makes a receiver per execution, and after the execution a full
 * GC finds no instance of these classes left, drops their hidden classes and deoptimizes the
 * whole decode path (readHead, readValues, onNewSpan, onNewEvent… measured on runWasm runs with
 * a GC between them: every run). The newest instances, not ones made here, because some fields
 * change representation with what a guest sends (a time above 2^31 ns is a double), and only
 * instances in use have the current class. The reader holds no frame between frames.
 */
const KEEP_DECODER_SHAPES: { reader?: FrameReader; rec?: RawRecord; clock?: GuestClock } = {};

/**
 * @example
 * const collector = new CaptureCollector();
 * using receiver = new TracingEventReceiver({ collector });
 * const { applied, rejected, truncated } = receiver.receiveBatch(frameBytes);
 * const state = receiver.persist(); // commit; without it, disposal rolls back
 */
export class TracingEventReceiver {
  readonly collector: Collector;
  /** The collector's enter and exit are called (see Collector.wantsEnterExit). */
  private readonly enterExit: boolean;
  readonly executionId: string | undefined;
  readonly maxValues: number;
  private readonly stableIds: boolean;
  private readonly spanIdFloor: boolean;
  readonly limits: Readonly<ReceiverLimits>;
  private rootParent: number | undefined;
  private readonly registry: CallsiteRegistry;
  /** Records seen (applied or rejected), against maxRecords (copied out of `limits` for the hot path). */
  private seen = 0;
  private readonly maxRecords: number;
  private readonly maxOpenSpans: number;
  private readonly maxDepth: number;
  private readonly callsites = new Map<number, CallsiteSlot>();
  private readonly spans = new NewestOutsideMap<SpanEntry>();
  /**
   * The span looked up or created last: a guest's records mostly name the span it just made
   * (enter, exit, close follow its creation), so this saves most map lookups. Cleared when that
   * span leaves `spans`.
   */
  private lastSpan: SpanEntry | undefined = undefined;
  /**
   * Entered spans of this execution, innermost last. An exit of a span that is not innermost
   * leaves a hole (null) instead of shifting the entries above it; holes on top are trimmed at
   * once and the rest compacted when they outnumber the entries, so every enter and exit is
   * O(1) amortized, whatever order the guest exits in. The top, when any, is never a hole.
   */
  private stack: Array<SpanEntry | null> = [];
  private holes = 0;
  private readonly maxEntered: number;
  private readonly reader = new FrameReader();
  private readonly rec = new RawRecord();
  private readonly clock: GuestClock;
  private _state: ReceiverState = 'open';
  readonly stats: ReceiverStats = { applied: 0, rejected: 0, rejectedByCode: {}, truncatedFrames: 0, refusedFrames: 0, refusedBytes: 0, guestDropped: 0, uncommitted: 0, reservedRenamed: 0 };
  /** Guest span ids below this were allocated by earlier executions of the workflow. */
  readonly firstSpanId: number;
  /** One above the largest span id seen: where the next execution's ids start. */
  private nextSpanId: number;
  /** Host ids of the carried spans this execution restored (their effects wait for a commit). */
  private readonly carriedHosts = new Set<number>();
  /** Events under carried spans, applied at the commit (see persist()), and the bytes their values hold. */
  private pendingEvents: EventInfo[] = [];
  private pendingBytes = 0;
  /** Carried spans the guest closed: closed on the collector at the commit. */
  private pendingCloses: Array<{ entry: SpanEntry; time: bigint }> = [];
  /** The field names the guest declared, per callsite whose fields were renamed (names in the object API). */
  private readonly declaredFields = new WeakMap<CallsiteMeta, readonly string[]>();
  /** What the guest said of itself in its hello record. */
  guest: { kind: string; sdkVersion: string } | undefined;

  constructor(options: ReceiverOptions) {
    this.collector = options.collector;
    this.enterExit = this.collector.wantsEnterExit !== false;
    this.executionId = options.executionId;
    this.stableIds = options.stableIds === true;
    this.spanIdFloor = options.spanIdFloor !== false;
    this.maxValues = options.maxValues ?? 32;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.maxRecords = this.limits.maxRecords;
    this.maxOpenSpans = this.limits.maxOpenSpans;
    this.maxDepth = this.limits.maxDepth;
    this.maxEntered = this.limits.maxEntered;
    this.reader.maxStringBytes = this.limits.maxStringBytes;
    this.rootParent = options.rootParent;
    const validateSnapshot = this.collector.validateSnapshot?.bind(this.collector);
    const carried = options.spans === undefined ? undefined : upgradePersistedSpans(options.spans);
    const problems = validatePersisted(options.metadata, carried, { ...this.limits, maxValues: this.maxValues, ...(validateSnapshot && { validateSnapshot }) });
    if (problems.length > 0) throw new ReceiveError('MALFORMED', describeRefusal(problems));
    this.registry = options.registry ?? defaultCallsiteRegistry;
    this.clock = new GuestClock(options.clockOrigin ?? hostNowNs());
    KEEP_DECODER_SHAPES.reader = this.reader;
    KEEP_DECODER_SHAPES.rec = this.rec;
    KEEP_DECODER_SHAPES.clock = this.clock;
    for (const cs of options.metadata?.callsites ?? []) this.callsites.set(cs.id, this.slotFor(cs));
    this.firstSpanId = this.nextSpanId = firstSpanId(carried);
    for (const p of carried?.spans ?? []) {
      const entry = new SpanEntry(p.id, this.internGuest(p.callsite), p.parent, false);
      entry.refs = p.refs;
      entry.entered = entry.carried = p.entered ?? 0;
      entry.persisted = p;
      this.spans.set(p.id, entry);
    }
    for (const id of carried?.stack ?? []) {
      const entry = this.spans.get(id);
      if (entry !== undefined) this.pushStack(entry);
    }
  }

  get state(): ReceiverState {
    return this._state;
  }

  /** Number of spans open in this receiver (local and carried over). */
  get openSpans(): number {
    return this.spans.size;
  }

  /** Applies one event; throws {@link ReceiveError} and changes nothing when it is bad. */
  tryReceive(event: TracingEvent): void {
    this.assertOpen();
    if (++this.seen > this.maxRecords) this.tooManyRecords();
    this.fromEvent(event, this.rec);
    this.apply(this.rec, undefined);
    this.stats.applied++;
  }

  /** Like {@link tryReceive}, but returns the error (and counts it) instead of throwing. */
  receive(event: TracingEvent): ReceiveError | undefined {
    try {
      this.tryReceive(event);
      return undefined;
    } catch (e) {
      if (!(e instanceof ReceiveError)) throw e;
      this.countRejected(e);
      return e;
    }
  }

  /**
   * Decodes a frame and applies every record in it. A bad record is rejected and counted, and
   * the records around it still apply; a frame cut in the middle of a record keeps every
   * complete record before the cut.
   */
  receiveBatch(bytes: Uint8Array): BatchResult {
    const result: BatchResult = { applied: 0, rejected: 0, truncated: 0, errors: [] };
    if (this._state !== 'open') {
      const e = new ReceiveError('RECEIVER_CLOSED', `receiver is ${this._state}; frame of ${bytes.length} bytes not applied`);
      this.countRejected(e);
      result.rejected = 1;
      result.errors.push(e);
      return result;
    }
    // A frame over maxFrameBytes is not refused whole (that would lose the callsites announced in
    // it, and with them every later record of those callsites): each record in it is measured
    // first, by structure only, and one longer than maxFrameBytes on its own is skipped unread.
    const maxRecordBytes = this.limits.maxFrameBytes;
    const large = bytes.length > maxRecordBytes;
    const reader = this.reader;
    const rec = this.rec;
    reader.reset(bytes);
    while (!reader.done) {
      try {
        if (large) {
          const skipped = reader.skipIfLonger(maxRecordBytes);
          if (skipped > 0) {
            ++this.seen;
            this.refuseRecord(skipped, reader.recordStart, result);
            continue;
          }
        }
        reader.readHead(rec);
        if (++this.seen > this.maxRecords) this.tooManyRecords();
        this.apply(rec, reader);
        result.applied++;
      } catch (e) {
        let err: ReceiveError;
        if (e instanceof FrameError) {
          if (e.fault === 'truncated') {
            result.truncated = 1;
            this.stats.truncatedFrames++;
            break;
          }
          err = new ReceiveError(e.fault === 'limit' ? 'LIMIT_EXCEEDED' : 'MALFORMED', e.message);
        } else if (e instanceof ReceiveError) err = e;
        else throw e;
        const resynced = reader.resync();
        result.rejected++;
        this.countRejected(err);
        if (result.errors.length < MAX_REPORTED_ERRORS) result.errors.push(err);
        if (!resynced) break; // not msgpack any more: the rest of the frame cannot be delimited
      }
    }
    reader.release(); // the receiver may outlive its frames (see KEEP_DECODER_SHAPES)
    this.stats.applied += result.applied;
    return result;
  }

  /** Counts a record skipped unread for being longer than maxFrameBytes on its own. */
  private refuseRecord(length: number, at: number, result: BatchResult): void {
    const err = new ReceiveError('LIMIT_EXCEEDED', `record of ${length} bytes (at byte ${at}) exceeds maxFrameBytes (${this.limits.maxFrameBytes}); skipped unread`);
    this.stats.refusedFrames++;
    this.stats.refusedBytes += length;
    result.rejected++;
    this.countRejected(err);
    if (result.errors.length < MAX_REPORTED_ERRORS) result.errors.push(err);
  }

  /** Counts records the guest dropped and reported out of band (not through a `dropped` record). */
  addGuestDropped(count: number): void {
    this.stats.guestDropped += count;
  }

  /** Callsites this receiver knows by guest id; merge into the metadata of later executions. */
  persistMetadata(): PersistedMetadata {
    const callsites: PersistedMetadata['callsites'] = [];
    for (const [id, slot] of this.callsites) callsites.push({ id, ...callsiteData(slot.meta) });
    return { version: 1, callsites };
  }

  /**
   * Commits the execution. What the guest did to carried spans takes effect now, and only now:
   * events under them are handed on, and the ones it closed are closed (and so exported) once.
   * Entered spans are exited (they stay open), and every open span is returned as plain data for
   * the next execution; the collector lets go of each (see Collector.persistSpan). The receiver
   * accepts nothing afterwards.
   */
  persist(): PersistedSpans {
    this.assertOpen();
    const time = this.clock.lastTime();
    const stack: number[] = [];
    const entered = new Map<SpanEntry, number>();
    for (const e of this.stack) {
      if (e === null) continue;
      stack.push(e.id);
      entered.set(e, e.entered);
    }
    // Committed from here on, whatever a collector throws below: a rollback must not take back what was handed on.
    this._state = 'persisted';
    this.letGoOfGuestData();
    this.exitAll(time);
    this.commitCarried();
    const spans: PersistedSpan[] = [];
    for (const entry of this.spans.values()) spans.push(this.persistEntry(entry, entered.get(entry) ?? 0));
    const state: PersistedSpans = { version: PERSISTED_SPANS_VERSION, spans, nextSpanId: this.nextSpanId };
    if (stack.length > 0) state.stack = stack;
    return state;
  }

  /**
   * Ends an execution that finished normally but carries no state forward (a workflow's last
   * step run without `persist`): what the guest did to carried spans is committed, and every span
   * still open, carried ones included, is closed with cause `rollback`, so none is lost unexported.
   * Returns how many spans were closed.
   */
  end(): number {
    this.assertOpen();
    const time = this.clock.lastTime();
    this.exitAll(time);
    this.commitCarried();
    const forced: ForcedClose = { cause: 'rollback', message: 'execution ended without persist()' };
    const open = [...this.spans.values()];
    // Carried spans never touched are restored first, parents before children (their parents are looked up among the open spans).
    for (const entry of open) this.hostOf(entry);
    let closed = 0;
    for (let i = open.length - 1; i >= 0; i--) {
      const entry = open[i]!;
      if (entry.host <= 0) continue;
      this.collector.tryClose(entry.host, time < entry.start ? entry.start : time, forced);
      closed++;
    }
    this.spans.clear();
    this.lastSpan = undefined;
    this.carriedHosts.clear();
    this._state = 'ended';
    this.letGoOfGuestData();
    return closed;
  }

  /** The commit of carried spans: events under them handed on, the ones the guest closed closed. */
  private commitCarried(): void {
    for (const event of this.pendingEvents) this.collector.event(event);
    for (const { entry, time } of this.pendingCloses) this.collector.tryClose(entry.host, time < entry.start ? entry.start : time);
    this.pendingEvents = [];
    this.pendingBytes = 0;
    this.pendingCloses = [];
  }

  /** One open span as plain data; the collector hands over its own entry. */
  private persistEntry(entry: SpanEntry, entered: number): PersistedSpan {
    const before = entry.persisted;
    let p: PersistedSpan;
    if (entry.host === PENDING_RESTORE || (entry.host === DISABLED && before !== undefined)) {
      // Untouched, or disabled for this execution's collector: as it was, with the guest's new counts.
      p = entry.host === DISABLED ? { ...before!, callsite: callsiteData(entry.meta), refs: entry.refs, values: toPlainValues(entry.values), follows: entry.follows?.slice() ?? before!.follows } : { ...before!, refs: entry.refs };
    } else {
      p = {
        id: entry.id,
        callsite: callsiteData(entry.meta),
        refs: entry.refs,
        start: entry.start.toString(),
        values: toPlainValues(entry.values),
        follows: entry.follows?.slice() ?? [],
      };
      if (entry.guestParent !== undefined) p.parent = entry.guestParent;
      const execId = before?.executionId ?? this.executionId;
      if (execId !== undefined) p.executionId = execId;
      // Entries of collectors absent from this execution are kept for the next one.
      const fresh = entry.host > 0 ? this.collector.persistSpan?.(entry.host) : undefined;
      const collector = before?.collector === undefined ? fresh : fresh === undefined ? before.collector : { ...before.collector, ...fresh };
      if (collector !== undefined) p.collector = collector;
    }
    if (entered > 0) p.entered = entered;
    else delete p.entered;
    return p;
  }

  /**
   * Ends the execution without a commit: spans created in it are closed with an error status
   * (cause `rollback`); spans carried over stay as they were persisted, and what the guest did to
   * them is taken back (counted in `stats.uncommitted`). Returns how many spans were closed. Does
   * nothing after persist(), rollback() or terminate().
   */
  rollback(): number {
    if (this._state !== 'open') return 0;
    const n = this.closeLocal({ cause: 'rollback', message: 'execution ended without persist()' });
    this._state = 'rolledBack';
    this.letGoOfGuestData();
    return n;
  }

  /**
   * The guest died: every span this execution created is force-closed with a status naming the
   * cause, at the last time observed from the guest. Carried-over spans stay as persisted (what
   * the guest did to them is taken back), so a retried step can resume them. Returns how many
   * spans were closed.
   */
  terminate(cause: TerminationCause): number {
    if (this._state !== 'open') return 0;
    const n = this.closeLocal({ cause: cause.kind, message: describeCause(cause) });
    this._state = 'terminated';
    this.letGoOfGuestData();
    return n;
  }

  /**
   * The carried span a resumed execution continues: the innermost span the guest had entered at
   * the last commit, else the first carried span without a carried parent (the workflow's span).
   * Restored on the collector now (a runner parents its execution span to it); undefined when
   * nothing is carried or the collector does not want the span.
   */
  resumeTarget(): number | undefined {
    this.assertOpen();
    let target: SpanEntry | undefined;
    for (let i = this.stack.length - 1; i >= 0 && target === undefined; i--) target = this.stack[i] ?? undefined;
    if (target === undefined) {
      for (const entry of this.spans.values()) {
        if (entry.local) continue;
        if (typeof entry.guestParent !== 'number' || !this.spans.has(entry.guestParent)) {
          target = entry;
          break;
        }
      }
    }
    if (target === undefined) return undefined;
    const host = this.hostOf(target);
    return host > 0 ? host : undefined;
  }

  /** Sets the host span that guest spans with a contextual parent get (see ReceiverOptions.rootParent). */
  setRootParent(host: number | undefined): void {
    this.rootParent = host;
  }

  [Symbol.dispose](): void {
    this.rollback();
  }

  /**
   * Lets go of what the guest sent last, once nothing more is received: the scratch record's
   * values and the reader's frame. The newest receiver's record and reader outlive it
   * (KEEP_DECODER_SHAPES): without this they would hold a finished run's last values (up to
   * maxValues × maxStringBytes of them) until another receiver is made.
   */
  private letGoOfGuestData(): void {
    this.reader.release();
    const rec = this.rec;
    rec.values.length = 0; // never handed on (collectors get copies), so emptied in place: same elements kind
    rec.indices.length = 0;
    rec.count = 0;
    rec.attributes = undefined;
    rec.fields = []; // handed on to callsites: replaced, not emptied
  }

  // ---- applying records --------------------------------------------------------------------

  private apply(rec: RawRecord, reader: FrameReader | undefined): void {
    switch (rec.tag) {
      case Tag.newSpan:
        return this.onNewSpan(rec, reader);
      case Tag.newSpanEntered:
        return this.onNewSpanEntered(rec, reader);
      case Tag.newEvent:
        return this.onNewEvent(rec, reader);
      case Tag.spanEntered:
        return this.onEnter(rec);
      case Tag.spanExited:
        return this.onExit(rec);
      case Tag.spanDropped:
        return this.onDrop(rec);
      case Tag.spanCloned:
        return this.onClone(rec);
      case Tag.valuesRecorded:
        return this.onRecord(rec, reader);
      case Tag.followsFrom:
        return this.onFollowsFrom(rec);
      case Tag.newCallSite:
        return this.onCallsite(rec);
      case Tag.metric:
        return this.onMetric(rec);
      case Tag.hello:
        if (rec.version !== PROTOCOL_VERSION) {
          throw new ReceiveError('UNSUPPORTED_VERSION', `guest speaks protocol version ${rec.version}; this host speaks ${PROTOCOL_VERSION}`);
        }
        this.clock.setOrigin(rec.clockOrigin);
        this.guest = { kind: rec.guestKind, sdkVersion: rec.sdkVersion };
        return;
      case Tag.dropped:
        this.stats.guestDropped += rec.droppedCount;
        return;
    }
  }

  private onCallsite(rec: RawRecord): void {
    if (rec.fields.length > this.maxValues) {
      throw new ReceiveError('TOO_MANY_VALUES', `callsite ${rec.id} '${rec.name}' declares ${rec.fields.length} fields; at most ${this.maxValues} are allowed`);
    }
    const data: CallsiteData = { kind: rec.kind, name: rec.name, target: rec.target, level: rec.level, fields: rec.fields };
    if (rec.modulePath !== undefined) data.modulePath = rec.modulePath;
    if (rec.file !== undefined) data.file = rec.file;
    if (rec.line !== undefined) data.line = rec.line;
    if (this.callsites.size >= this.limits.maxCallsites && !this.callsites.has(rec.id)) {
      throw new ReceiveError('LIMIT_EXCEEDED', `callsite ${rec.id} '${rec.name}' exceeds maxCallsites (${this.limits.maxCallsites})`);
    }
    // A repeated announcement interns to the same meta; a different one re-binds the guest id.
    this.callsites.set(rec.id, this.slotFor(data));
  }

  private onNewSpan(rec: RawRecord, reader: FrameReader | undefined): void {
    const slot = this.slot(rec.callsite);
    const meta = slot.meta;
    if (meta.kind !== 'span') throw new ReceiveError('KIND_MISMATCH', `callsite ${rec.callsite} '${meta.name}' is an event callsite, used for span ${rec.id}`);
    this.checkValueCount(rec.pending + rec.count, meta);
    if (this.spans.has(rec.id)) throw new ReceiveError('DUPLICATE_SPAN_ID', `span ${rec.id} already exists`);
    if (rec.id > MAX_SPAN_ID) throw new ReceiveError('LIMIT_EXCEEDED', `span id ${rec.id} is above ${MAX_SPAN_ID} (guest span ids are u32, and persisted state holds no larger one)`);
    if (rec.id < this.firstSpanId && this.spanIdFloor) throw new ReceiveError('DUPLICATE_SPAN_ID', `span id ${rec.id} was allocated by an earlier execution of this workflow; this execution's ids start at ${this.firstSpanId}`);
    const parentEntry = typeof rec.parent === 'number' ? this.span(rec.parent) : undefined;
    if (this.spans.size >= this.maxOpenSpans) throw new ReceiveError('LIMIT_EXCEEDED', `span ${rec.id} exceeds maxOpenSpans (${this.maxOpenSpans})`);
    const stack = this.stack;
    // The top is never a hole. (An empty stack is not read at index -1: that is a named-property lookup, slow.)
    const depth = rec.parent === null ? 0 : (parentEntry ?? (stack.length > 0 ? stack[stack.length - 1] : undefined))?.depth ?? 0;
    if (depth >= this.maxDepth) throw new ReceiveError('LIMIT_EXCEEDED', `span ${rec.id} would nest ${depth + 1} deep; maxDepth is ${this.maxDepth}`);
    const enabled = this.isEnabled(slot);
    if (reader !== undefined) {
      if (enabled) reader.readValues(rec);
      else reader.skipRest(rec);
    }
    // Validated: from here on, state changes.
    const time = this.timeOf(rec.time);
    const entry = new SpanEntry(rec.id, meta, rec.parent, true);
    if (rec.id >= this.nextSpanId) this.nextSpanId = rec.id + 1;
    entry.start = time;
    entry.depth = depth + 1;
    const hostParent = this.resolveParent(rec.parent, parentEntry);
    if (enabled) {
      const values = pairs(meta, rec);
      entry.values = values;
      // One object shape for every span (no conditional spread): keeps the collector call monomorphic.
      const links = slot.linkIndex >= 0 ? takeLink(values, slot.linkIndex) : undefined;
      entry.host = this.collector.newSpan({ meta, parent: hostParent, values, time, executionId: this.executionId, links, guestSpanId: this.stableIds ? rec.id : undefined });
    } else {
      entry.host = DISABLED;
      entry.hostParent = hostParent;
    }
    this.spans.set(rec.id, entry);
    this.lastSpan = entry;
  }

  /**
   * newSpan then spanEntered at the span's start time, applied as the two records would be. The
   * enter's own limit is checked first, so a refused record creates no span either.
   */
  private onNewSpanEntered(rec: RawRecord, reader: FrameReader | undefined): void {
    this.checkEnterLimit(rec.id);
    this.onNewSpan(rec, reader);
    this.onEnter(rec);
  }

  private checkEnterLimit(id: number): void {
    if (this.stack.length - this.holes >= this.maxEntered) {
      throw new ReceiveError('LIMIT_EXCEEDED', `enter of span ${id} exceeds maxEntered (${this.maxEntered} enters in effect)`);
    }
  }

  private onNewEvent(rec: RawRecord, reader: FrameReader | undefined): void {
    const slot = this.slot(rec.callsite);
    const meta = slot.meta;
    if (meta.kind !== 'event') throw new ReceiveError('KIND_MISMATCH', `callsite ${rec.callsite} '${meta.name}' is a span callsite, used for an event`);
    this.checkValueCount(rec.pending + rec.count, meta);
    const parentEntry = typeof rec.parent === 'number' ? this.span(rec.parent) : undefined;
    const enabled = this.isEnabled(slot);
    if (reader !== undefined) {
      if (enabled) reader.readValues(rec);
      else reader.skipRest(rec);
    }
    this.clock.observe(rec.time);
    if (!enabled) return;
    const parent = this.resolveParent(rec.parent, parentEntry);
    const event: EventInfo = { meta, parent, values: pairs(meta, rec), time: this.clock.unixTime(rec.time), executionId: this.executionId };
    // Under a carried span, an event belongs to the step's commit: a failed step's never shows.
    if (this.carriedHosts.size > 0 && typeof parent === 'number' && this.carriedHosts.has(parent)) {
      if (this.pendingEvents.length >= this.limits.maxPendingEvents) {
        throw new ReceiveError('LIMIT_EXCEEDED', `event '${meta.name}' under a carried span exceeds maxPendingEvents (${this.limits.maxPendingEvents} held until the commit)`);
      }
      const bytes = valuesBytes(event.values);
      if (this.pendingBytes + bytes > this.limits.maxPendingBytes) {
        throw new ReceiveError('LIMIT_EXCEEDED', `event '${meta.name}' under a carried span exceeds maxPendingBytes (${this.limits.maxPendingBytes} bytes of values held until the commit)`);
      }
      this.pendingBytes += bytes;
      this.pendingEvents.push(event);
    } else this.collector.event(event);
  }

  private onEnter(rec: RawRecord): void {
    const entry = this.span(rec.id);
    this.checkEnterLimit(rec.id);
    this.clock.observe(rec.time);
    const host = this.hostOf(entry);
    entry.entered++;
    this.pushStack(entry);
    if (host > 0 && this.enterExit) this.collector.enter(host, this.clock.unixTime(rec.time));
  }

  private onExit(rec: RawRecord): void {
    const entry = this.span(rec.id);
    if (entry.entered === 0) throw new ReceiveError('NOT_ENTERED', `span ${rec.id} exited but it is not entered`);
    this.clock.observe(rec.time);
    this.popStack(entry);
    if (entry.entered-- <= entry.carried) entry.carried--;
    else if (entry.host > 0 && this.enterExit) this.collector.exit(entry.host, this.clock.unixTime(rec.time));
  }

  private onClone(rec: RawRecord): void {
    const entry = this.span(rec.id);
    entry.refs++;
    if (entry.host > 0) this.collector.cloneSpan(entry.host);
  }

  private onDrop(rec: RawRecord): void {
    const entry = this.span(rec.id);
    this.clock.observe(rec.time);
    if (--entry.refs > 0) return;
    // Last reference: a span dropped while still entered is exited first.
    const time = this.clock.unixTime(rec.time);
    const host = this.hostOf(entry);
    while (entry.entered > 0) {
      this.popStack(entry);
      if (entry.entered-- <= entry.carried) entry.carried--;
      else if (host > 0 && this.enterExit) this.collector.exit(host, time);
    }
    this.spans.delete(rec.id);
    if (this.lastSpan === entry) this.lastSpan = undefined;
    if (host <= 0) return;
    if (!entry.local) this.pendingCloses.push({ entry, time }); // a carried span closes when the step commits
    else this.collector.tryClose(host, time < entry.start ? entry.start : time); // never ends before it started
  }

  private onRecord(rec: RawRecord, reader: FrameReader | undefined): void {
    const entry = this.span(rec.id);
    const meta = entry.meta;
    const n = rec.pending + rec.count;
    if (n > this.maxValues) throw new ReceiveError('TOO_MANY_VALUES', `record of ${n} values on span ${rec.id}; at most ${this.maxValues} are allowed`);
    if (reader !== undefined) reader.readValues(rec);
    const fields = meta.fields;
    const values: Values = new Array(rec.count);
    for (let i = 0; i < rec.count; i++) {
      const idx = rec.indices[i]!;
      if (idx >= fields.length) throw new ReceiveError('UNKNOWN_FIELD', `span ${rec.id} '${meta.name}' has no field #${idx} (it declares ${fields.length})`);
      values[i] = [fields[idx]!, rec.values[i]!];
    }
    const host = this.hostOf(entry);
    entry.values = mergeValues(entry.values, values);
    if (host > 0) this.collector.record(host, values);
  }

  private onFollowsFrom(rec: RawRecord): void {
    const entry = this.span(rec.id);
    const follows = this.span(rec.follows);
    const host = this.hostOf(entry);
    const followsHost = this.hostOf(follows);
    (entry.follows ??= []).push(rec.follows);
    if (host > 0 && followsHost > 0) this.collector.recordFollowsFrom(host, followsHost);
  }

  private onMetric(rec: RawRecord): void {
    const guestAttributes = rec.attributes ?? [];
    if (guestAttributes.length > this.maxValues) throw new ReceiveError('TOO_MANY_VALUES', `metric '${rec.name}' has ${guestAttributes.length} attributes; at most ${this.maxValues} are allowed`);
    const time = this.timeOf(rec.time);
    const { values: attributes, renamed } = renameReservedValues(guestAttributes);
    this.stats.reservedRenamed += renamed;
    this.collector.metric?.({ name: rec.name, instrument: rec.instrument, value: rec.metricValue, attributes, time, executionId: this.executionId });
  }

  // ---- helpers -----------------------------------------------------------------------------

  private slotFor(data: CallsiteData): CallsiteSlot {
    const meta = this.internGuest(data);
    return { meta, interest: this.registry.interest(this.collector, meta), linkIndex: meta.kind === 'span' ? meta.fields.indexOf(LINK_FIELD) : -1 };
  }

  /** Interns a callsite the guest declared, its reserved field names renamed (and counted). */
  private internGuest(data: CallsiteData): CallsiteMeta {
    const { names, renamed } = renameReserved(data.fields);
    if (renamed === 0) return this.registry.intern(data);
    this.stats.reservedRenamed += renamed;
    const meta = this.registry.intern({ ...data, fields: names.slice() });
    this.declaredFields.set(meta, data.fields.slice());
    return meta;
  }

  /** Position of a field the guest names in the object API (by its declared name). */
  private fieldIndex(meta: CallsiteMeta, name: string): number {
    const declared = this.declaredFields.get(meta);
    const i = (declared ?? meta.fields).indexOf(name);
    if (i >= 0) return i;
    if (isReservedName(name)) {
      // A carried-over callsite was declared in an earlier execution: look for the renamed field.
      for (let c = GUEST_PREFIX + name; c.length <= name.length + GUEST_PREFIX.length * meta.fields.length; c = GUEST_PREFIX + c) {
        const j = meta.fields.indexOf(c);
        if (j >= 0) return j;
      }
    }
    return fieldIndex(meta.fields, name);
  }

  private slot(id: number): CallsiteSlot {
    const slot = this.callsites.get(id);
    if (slot === undefined) throw new ReceiveError('UNKNOWN_METADATA_ID', `unknown callsite id ${id}`);
    return slot;
  }

  private span(id: number): SpanEntry {
    const last = this.lastSpan;
    if (last !== undefined && last.id === id) return last;
    const entry = this.spans.get(id);
    if (entry === undefined) throw new ReceiveError('UNKNOWN_SPAN_ID', `unknown span id ${id}`);
    this.lastSpan = entry;
    return entry;
  }

  private isEnabled(slot: CallsiteSlot): boolean {
    const i = slot.interest;
    return i === 'always' || (i === 'sometimes' && this.collector.enabled(slot.meta));
  }

  private checkValueCount(n: number, meta: CallsiteMeta): void {
    if (n > this.maxValues) throw new ReceiveError('TOO_MANY_VALUES', `${n} values for '${meta.name}'; at most ${this.maxValues} are allowed`);
    if (n > meta.fields.length) throw new ReceiveError('TOO_MANY_VALUES', `${n} values for '${meta.name}', which declares ${meta.fields.length} fields`);
  }

  /** Host span for a guest parent reference (restoring a carried-over parent on first use). */
  private resolveParent(parent: number | null | undefined, parentEntry: SpanEntry | undefined): number | null | undefined {
    if (parent === null) return null;
    if (parentEntry !== undefined) {
      const host = this.hostOf(parentEntry);
      return host > 0 ? host : parentEntry.hostParent;
    }
    // Contextual: the innermost entered span of this execution, else the host's context.
    for (let i = this.stack.length - 1; i >= 0; i--) {
      const e = this.stack[i];
      if (e == null) continue;
      let host = e.host;
      if (host === PENDING_RESTORE) host = this.hostOf(e); // a carried-over span the guest is still in
      if (host > 0) return host;
      if (host === DISABLED) return e.hostParent;
    }
    return this.rootParent;
  }

  /** The collector id of a span, re-creating a carried-over span on its first use. */
  private hostOf(entry: SpanEntry): number {
    if (entry.host === PENDING_RESTORE) this.restore(entry);
    return entry.host;
  }

  private restore(entry: SpanEntry): void {
    const p = entry.persisted!;
    entry.host = RESTORING; // guards against parent cycles in bogus state
    let parent: number | null | undefined;
    if (p.parent === null) parent = null;
    else if (typeof p.parent === 'number') {
      const pe = this.spans.get(p.parent);
      parent = pe === undefined || pe.host === RESTORING ? undefined : this.resolveParent(p.parent, pe);
    }
    // Start, values and follows come back whether or not the collector wants the span now: a
    // span this execution's collector filters out is persisted again as it was, never from zero.
    const values = renameToFields(fromPlainValues(p.values), p.callsite.fields, entry.meta.fields);
    const time = BigInt(p.start);
    entry.values = values;
    entry.start = time;
    entry.follows = p.follows.slice();
    const interest = this.registry.interest(this.collector, entry.meta);
    if (interest === 'never' || (interest === 'sometimes' && !this.collector.enabled(entry.meta))) {
      entry.host = DISABLED;
      entry.hostParent = parent;
      return;
    }
    const info = { meta: entry.meta, parent, values, time, executionId: p.executionId, guestSpanId: this.stableIds ? p.id : undefined, snapshot: p.collector, resumedBy: this.executionId };
    entry.host = this.collector.restoreSpan !== undefined ? this.collector.restoreSpan(info) : this.collector.newSpan(info);
    if (entry.host > 0) this.carriedHosts.add(entry.host);
  }

  private pushStack(entry: SpanEntry): void {
    if (entry.slot >= 0) (entry.outerSlots ??= []).push(entry.slot);
    entry.slot = this.stack.length;
    this.stack.push(entry);
  }

  /** Removes the span's innermost enter from the stack (O(1) amortized, see `stack`). */
  private popStack(entry: SpanEntry): void {
    const pos = entry.slot;
    if (pos < 0) return;
    const outer = entry.outerSlots;
    entry.slot = outer !== undefined && outer.length > 0 ? outer.pop()! : -1;
    const stack = this.stack;
    if (pos === stack.length - 1) stack.pop();
    else {
      stack[pos] = null;
      this.holes++;
    }
    while (stack.length > 0 && stack[stack.length - 1] === null) {
      stack.pop();
      this.holes--;
    }
    if (this.holes > 32 && this.holes * 2 > stack.length) this.compactStack();
  }

  /** Drops the holes; linear, and run only after as many exits as entries remain, so amortized O(1). */
  private compactStack(): void {
    const live: SpanEntry[] = [];
    for (const e of this.stack) {
      if (e === null) continue;
      e.slot = -1;
      e.outerSlots = undefined;
      live.push(e);
    }
    this.stack = [];
    for (const e of live) this.pushStack(e);
    this.holes = 0;
  }

  /** Exits, on the collector, every enter this execution made (carried-over enters were exited before). */
  private exitAll(time: bigint): void {
    for (let i = this.stack.length - 1; i >= 0; i--) {
      const e = this.stack[i];
      if (e == null) continue;
      e.slot = -1;
      e.outerSlots = undefined;
      if (e.entered-- <= e.carried) e.carried--;
      else if (e.host > 0 && this.enterExit) this.collector.exit(e.host, time);
    }
    this.stack.length = 0;
    this.holes = 0;
  }

  private closeLocal(forced: ForcedClose): number {
    this.assertOpen();
    const time = this.clock.lastTime();
    this.exitAll(time);
    const local: SpanEntry[] = [];
    for (const entry of this.spans.values()) if (entry.local) local.push(entry);
    let closed = 0;
    for (let i = local.length - 1; i >= 0; i--) {
      const entry = local[i]!;
      this.spans.delete(entry.id);
      if (this.lastSpan === entry) this.lastSpan = undefined;
      if (entry.host > 0) {
        this.collector.tryClose(entry.host, time < entry.start ? entry.start : time, forced);
        closed++;
      }
    }
    this.discardCarried();
    return closed;
  }

  /** No commit: the collector forgets every carried span it restored, and their pending effects go. */
  private discardCarried(): void {
    this.stats.uncommitted += this.pendingEvents.length + this.pendingCloses.length;
    this.pendingEvents = [];
    this.pendingBytes = 0;
    this.pendingCloses = [];
    if (this.carriedHosts.size === 0) return;
    for (const host of this.carriedHosts) this.collector.discardSpan?.(host);
    this.carriedHosts.clear();
  }

  /** Unix ns for a guest-monotonic time (noting it); a record without one takes the last time seen. */
  private timeOf(mono: number): bigint {
    this.clock.observe(mono);
    return this.clock.unixTime(mono);
  }

  private tooManyRecords(): never {
    throw new ReceiveError('LIMIT_EXCEEDED', `record ${this.seen} exceeds maxRecords (${this.maxRecords})`);
  }

  private assertOpen(): void {
    if (this._state !== 'open') throw new ReceiveError('RECEIVER_CLOSED', `receiver is ${this._state}`);
  }

  private countRejected(e: ReceiveError): void {
    this.stats.rejected++;
    this.stats.rejectedByCode[e.code] = (this.stats.rejectedByCode[e.code] ?? 0) + 1;
  }

  /** Puts an event object into the scratch record form, mapping field names to positions. */
  private fromEvent(e: TracingEvent, rec: RawRecord): void {
    rec.pending = 0;
    rec.count = 0;
    rec.time = -1;
    if ('time' in e && e.time !== undefined) {
      if (e.time < 0n || e.time > BigInt(Number.MAX_SAFE_INTEGER)) throw new ReceiveError('MALFORMED', `time ${e.time} out of range`);
      rec.time = Number(e.time);
    }
    switch (e.type) {
      case 'hello':
        rec.tag = Tag.hello;
        rec.version = e.version;
        rec.guestKind = e.guestKind;
        rec.sdkVersion = e.sdkVersion;
        rec.clockOrigin = e.clockOrigin;
        return;
      case 'newCallSite':
        rec.tag = Tag.newCallSite;
        rec.id = e.id;
        rec.kind = e.kind;
        rec.name = e.name;
        rec.target = e.target;
        rec.level = e.level;
        rec.modulePath = e.modulePath;
        rec.file = e.file;
        rec.line = e.line;
        rec.fields = e.fields.slice();
        return;
      case 'newSpan':
      case 'newEvent': {
        rec.tag = e.type === 'newEvent' ? Tag.newEvent : e.entered === true ? Tag.newSpanEntered : Tag.newSpan;
        if (e.type === 'newSpan') rec.id = e.id;
        rec.callsite = e.metadataId;
        rec.parent = e.parentId;
        if (e.values.length > this.maxValues) throw new ReceiveError('TOO_MANY_VALUES', `${e.values.length} values; at most ${this.maxValues} are allowed`);
        const meta = this.slot(e.metadataId).meta;
        rec.values.length = 0;
        let count = 0;
        for (const [name, v] of e.values) {
          const i = this.fieldIndex(meta, name);
          while (count < i) rec.values[count++] = EMPTY;
          rec.values[i] = v;
          if (i >= count) count = i + 1;
        }
        rec.count = count;
        return;
      }
      case 'valuesRecorded': {
        rec.tag = Tag.valuesRecorded;
        rec.id = e.id;
        if (e.values.length > this.maxValues) throw new ReceiveError('TOO_MANY_VALUES', `${e.values.length} values; at most ${this.maxValues} are allowed`);
        const meta = this.span(e.id).meta;
        for (let i = 0; i < e.values.length; i++) {
          rec.indices[i] = this.fieldIndex(meta, e.values[i]![0]);
          rec.values[i] = e.values[i]![1];
        }
        rec.count = e.values.length;
        return;
      }
      case 'followsFrom':
        rec.tag = Tag.followsFrom;
        rec.id = e.id;
        rec.follows = e.followsFrom;
        return;
      case 'spanEntered':
      case 'spanExited':
      case 'spanDropped':
        rec.tag = e.type === 'spanEntered' ? Tag.spanEntered : e.type === 'spanExited' ? Tag.spanExited : Tag.spanDropped;
        rec.id = e.id;
        return;
      case 'spanCloned':
        rec.tag = Tag.spanCloned;
        rec.id = e.id;
        return;
      case 'metric':
        rec.tag = Tag.metric;
        rec.name = e.name;
        rec.instrument = e.instrument;
        rec.metricValue = e.value;
        rec.attributes = e.attributes;
        return;
      case 'dropped':
        rec.tag = Tag.dropped;
        rec.droppedCount = e.count;
        return;
      default:
        throw new ReceiveError('MALFORMED', `unknown event type '${(e as { type: unknown }).type}'`);
    }
  }
}

/**
 * One receiver that never dies, for its own class (see KEEP_DECODER_SHAPES): the receiver's
 * methods are most of the decode path. Every receiver assigns its fields in the same order, so
 * this one has the class the others have.
 */
export const KEEP_RECEIVER_SHAPE = new TracingEventReceiver({ collector: new NullCollector() });

/** Removes the link field from the values and parses it; a malformed traceparent is dropped. */
function takeLink(values: Values, index: number): TraceParent[] | undefined {
  const pair = values[index];
  if (pair === undefined) return undefined;
  values.splice(index, 1);
  const parsed = typeof pair[1] === 'string' ? parseTraceParent(pair[1]) : undefined;
  return parsed === undefined ? undefined : [parsed];
}

function fieldIndex(fields: readonly string[], name: string): number {
  const i = fields.indexOf(name);
  if (i < 0) throw new ReceiveError('UNKNOWN_FIELD', `field '${name}' is not declared by the callsite (fields: ${fields.join(', ') || 'none'})`);
  return i;
}

/** Positional values of the scratch record as `[name, value]` pairs. */
function pairs(meta: CallsiteMeta, rec: RawRecord): Values {
  const n = rec.count;
  const fields = meta.fields;
  const values = rec.values;
  const out: Values = new Array(n);
  for (let i = 0; i < n; i++) out[i] = [fields[i]!, values[i]!];
  return out;
}

/** About what a record's values hold in memory: strings at two bytes a character, bytes as they are. */
function valuesBytes(values: Values): number {
  let n = 64;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]![1];
    if (typeof v === 'string') n += 32 + v.length * 2;
    else if (v instanceof Uint8Array) n += 32 + v.byteLength;
    else if (typeof v === 'object' && v !== null && 'debug' in v) n += 32 + v.debug.length * 2;
    else if (typeof v === 'object' && v !== null && 'error' in v) for (let e: ErrorValue | undefined = v.error; e !== undefined; e = e.source) n += 32 + e.message.length * 2;
    else n += 32;
  }
  return n;
}

/** The span's values after a record (a copy: the collector may hold the earlier array). */
function mergeValues(current: Values, recorded: Values): Values {
  const out = current.slice();
  assignValues(out, recorded);
  return out;
}

function callsiteData(meta: CallsiteMeta): CallsiteData {
  const d: CallsiteData = { kind: meta.kind, name: meta.name, target: meta.target, level: meta.level, fields: meta.fields.slice() };
  if (meta.modulePath !== undefined) d.modulePath = meta.modulePath;
  if (meta.file !== undefined) d.file = meta.file;
  if (meta.line !== undefined) d.line = meta.line;
  return d;
}
