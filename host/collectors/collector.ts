/**
 * The collector interface: where the receiver hands rebuilt spans, events and metrics.
 *
 * It has the shape of tracing-core's `Collect` trait. Ids passed to and returned by a collector
 * are the collector's own span ids (host ids), never guest ids.
 */
import type { Level, Values } from '../../shared/records.js';
import type { Interest, CallsiteMeta } from '../receiver/callsite-registry.js';
import type { TraceParent } from '../traceparent.js';
import type { ExecutionSummary } from './execution-summary.js';

export type { Interest, CallsiteMeta };

/** A span as it is created (or re-created after a restore). `time` is unix nanoseconds. */
export interface NewSpanInfo {
  meta: CallsiteMeta;
  /** A host span id, `null` for an explicit root, `undefined` when the guest had no span entered. */
  parent: number | null | undefined;
  values: Values;
  time: bigint;
  executionId?: string;
  /**
   * Only on a runner's execution span: the host's parent context (from a W3C traceparent or the
   * active OpenTelemetry span), which the execution span, and so every guest span, belongs to.
   */
  remoteParent?: TraceParent;
  /** Links to remote spans (for instance a trace context the guest supplied, which never becomes a parent). */
  links?: TraceParent[];
  /**
   * The guest's id for the span (0 for the runner's execution span), given when the run asked for
   * stable ids (workflow runs, by default). With `executionId` it names the span uniquely within
   * its trace, so a collector can derive the same span id every time the same execution runs
   * again (a replayed workflow step): see host/pipeline/span-ids.ts. Absent: use random ids.
   */
  guestSpanId?: number;
}

export interface EventInfo {
  meta: CallsiteMeta;
  parent: number | null | undefined;
  values: Values;
  time: bigint;
  executionId?: string;
}

export interface MetricInfo {
  name: string;
  instrument: 'counter' | 'histogram' | 'gauge';
  value: number | bigint;
  attributes: Values;
  time: bigint;
  executionId?: string;
}

/** Why a span was closed by the host rather than by the guest. */
export interface ForcedClose {
  /** Machine-readable cause: trap, abort, deadline, out_of_memory, stack_overflow, exception, host_cancel, rollback. */
  cause: string;
  /** Human-readable description, e.g. `abort: bad input at plugin.ts:12:5`. */
  message: string;
}

/**
 * A carried span's collector data, as plain JSON: one entry per kind of collector, under a key of
 * its own (`pipeline`, `capture`, `opentelemetry`, …). Keyed rather than positional so the state
 * does not depend on how the host composed its collectors: a step run with a tee of three
 * collectors and the next run with one of them both read what they need, and the receiver keeps
 * the entries of collectors absent from a run for the next one.
 */
export type SpanSnapshot = Record<string, unknown>;

/** What the receiver keeps of a span between executions, handed to {@link Collector.restoreSpan}. */
export interface RestoreSpanInfo extends NewSpanInfo {
  /** Every collector's entry for this span (the collector reads its own key), or undefined. */
  snapshot: SpanSnapshot | undefined;
  /**
   * The execution restoring the span, which is running now (`executionId` is the one that created
   * it, which the span keeps: its ids derive from it).
   */
  resumedBy: string | undefined;
}

/**
 * Receives what guests do. Implement it to send guest telemetry anywhere.
 *
 * The receiver owns reference counting: `cloneSpan` is informational, and `tryClose` is called
 * exactly once per span, when the guest drops its last reference or when the host force-closes
 * the span (then `forced` says why).
 *
 * @example
 * const collector: Collector = {
 *   registerCallsite: () => 'always', enabled: () => true,
 *   newSpan: ({ meta }) => { console.log('span', meta.name); return nextId++; },
 *   record() {}, recordFollowsFrom() {}, event: ({ meta }) => console.log(meta.name),
 *   enter() {}, exit() {}, cloneSpan: (id) => id, tryClose: () => true, currentSpan: () => undefined,
 * };
 */
export interface Collector {
  /** Called once per interned callsite; the answer is cached. 'sometimes' makes the receiver ask `enabled` each time. */
  registerCallsite(meta: CallsiteMeta): Interest;
  enabled(meta: CallsiteMeta): boolean;
  /** The most verbose level this collector wants; guests use it to skip disabled callsites early. */
  maxLevelHint?(): Level | undefined;
  newSpan(span: NewSpanInfo): number;
  record(span: number, values: Values): void;
  recordFollowsFrom(span: number, follows: number): void;
  event(event: EventInfo): void;
  /**
   * False when `enter` and `exit` do nothing in this collector (the pipeline collector builds a
   * span from its creation, events and close): the receiver then skips both calls and the
   * timestamps it would make for them. Absent means true.
   */
  readonly wantsEnterExit?: boolean;
  enter(span: number, time: bigint): void;
  exit(span: number, time: bigint): void;
  cloneSpan(span: number): number;
  tryClose(span: number, time: bigint, forced?: ForcedClose): boolean;
  currentSpan(): number | undefined;
  /** Metric points (counter add, histogram record, gauge set). */
  metric?(metric: MetricInfo): void;
  /**
   * The execution commits with this span still open: return the plain, JSON-safe data needed to
   * re-create it later (under this collector's own key), and let go of it. Ownership passes to the
   * persisted state: the collector keeps nothing of the span and never exports it from here; a
   * later `restoreSpan` takes it back. A collector may report the open span now (a "span started"
   * log record) so a long-running workflow is visible, but the span itself is exported once, when
   * it closes.
   */
  persistSpan?(span: number): SpanSnapshot | undefined;
  /** Takes a persisted span back (lazily, on its first use in an execution); returns its host id. */
  restoreSpan?(info: RestoreSpanInfo): number;
  /**
   * The execution that restored this carried span ended without committing (rollback, or the
   * guest died): forget the span without exporting it. The persisted state it came from still
   * holds it, and the retried step restores it from there.
   */
  discardSpan?(span: number): void;
  /**
   * Checks a snapshot read back from storage (plain data) before any span is restored from it:
   * returns what is wrong with this collector's entry, or `undefined` when `restoreSpan` can use
   * it (or the snapshot has no entry of this collector's). The receiver refuses persisted state
   * with a snapshot this rejects (MALFORMED).
   */
  validateSnapshot?(snapshot: SpanSnapshot): string | undefined;
  /**
   * The sampled flag of the host context an execution starts under, when the collector knows one
   * that the runner cannot see (the OpenTelemetry bridge: the active span); undefined for none.
   * The runner's head sampling follows it (see RunOptions.sampler).
   */
  parentSampled?(): boolean | undefined;
  /** A runner's execution ended (after its spans were closed or committed). */
  executionFinished?(summary: ExecutionSummary): void;
}
