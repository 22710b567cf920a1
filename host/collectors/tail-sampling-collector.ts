/**
 * Tail sampling per execution, for plugin hosts: keep every execution that failed or had spans
 * force-closed, and a ratio of the rest. No OpenTelemetry SDK can make this decision, because it
 * needs the whole execution: this collector holds what an execution produces until the runner
 * reports it finished, then hands it all to the collector it wraps, or drops it.
 *
 * Memory: everything an execution produced is held until it ends, at most `maxHeldOps` calls per
 * execution (spans, records, events, enters…, default 20,000); an execution that produces more is
 * kept (passed through from then on) rather than held without bound, and counted. Metrics are
 * never held or sampled. A workflow step that commits open spans is kept (its spans must reach
 * the state), as is a step that resumes carried spans.
 */
import type { Level, Values } from '../../shared/records.js';
import type { CallsiteMeta, Collector, EventInfo, ForcedClose, Interest, MetricInfo, NewSpanInfo, RestoreSpanInfo, SpanSnapshot } from './collector.js';
import type { ExecutionSummary } from './execution-summary.js';

export interface TailSamplingOptions {
  /** Share of executions kept that ended normally with nothing force-closed (0 to 1). */
  ratio: number;
  /** Calls held per execution before it is kept anyway (default 20,000). */
  maxHeldOps?: number;
  /** A uniform number in [0, 1) (default Math.random), for tests. */
  random?: () => number;
}

/** What a held execution did, in order. `id` is this collector's span id. */
type Op =
  | { op: 'newSpan'; id: number; info: NewSpanInfo }
  | { op: 'record'; id: number; values: Values }
  | { op: 'follows'; id: number; follows: number }
  | { op: 'event'; info: EventInfo }
  | { op: 'enter' | 'exit'; id: number; time: bigint }
  | { op: 'clone'; id: number }
  | { op: 'close'; id: number; time: bigint; forced: ForcedClose | undefined };

interface Held {
  ops: Op[];
  /** Decided to keep: calls go straight to the inner collector. */
  passing: boolean;
  /** This collector's ids of the execution's spans not closed yet (forgotten when it finishes). */
  spans: Set<number>;
}

/**
 * @example
 * const collector = new TailSamplingCollector(new PipelineCollector({ handlers }), { ratio: 0.05 });
 * await runQuickJS(plugin, { collector }); // failed or force-closed: always exported; else 5 %
 */
export class TailSamplingCollector implements Collector {
  private readonly ratio: number;
  private readonly maxHeldOps: number;
  private readonly random: () => number;
  private readonly held = new Map<string, Held>();
  /** This collector's span id → the execution it belongs to, and the inner collector's id once it has one. */
  private readonly spans = new Map<number, { exec: string; inner: number | undefined }>();
  private nextId = 1;
  readonly stats = { kept: 0, dropped: 0, keptForSize: 0 };

  constructor(
    readonly inner: Collector,
    options: TailSamplingOptions,
  ) {
    if (!(options.ratio >= 0 && options.ratio <= 1)) throw new RangeError(`ratio must be from 0 to 1, got ${options.ratio}`);
    this.ratio = options.ratio;
    this.maxHeldOps = options.maxHeldOps ?? 20_000;
    this.random = options.random ?? Math.random;
  }

  /** Executions held now (started, not finished). */
  get heldExecutions(): number {
    return this.held.size;
  }

  registerCallsite(meta: CallsiteMeta): Interest {
    return this.inner.registerCallsite(meta);
  }
  enabled(meta: CallsiteMeta): boolean {
    return this.inner.enabled(meta);
  }
  maxLevelHint(): Level | undefined {
    return this.inner.maxLevelHint?.();
  }
  parentSampled(): boolean | undefined {
    return this.inner.parentSampled?.();
  }

  newSpan(info: NewSpanInfo): number {
    const exec = info.executionId ?? '';
    const id = this.nextId++;
    const h = this.execution(exec);
    const entry: { exec: string; inner: number | undefined } = { exec, inner: undefined };
    this.spans.set(id, entry);
    h.spans.add(id);
    if (h.passing) entry.inner = this.inner.newSpan(this.mapped(info));
    else this.hold(exec, h, { op: 'newSpan', id, info });
    return id;
  }

  record(id: number, values: Values): void {
    this.apply(id, { op: 'record', id, values });
  }
  recordFollowsFrom(id: number, follows: number): void {
    this.apply(id, { op: 'follows', id, follows });
  }
  enter(id: number, time: bigint): void {
    this.apply(id, { op: 'enter', id, time });
  }
  exit(id: number, time: bigint): void {
    this.apply(id, { op: 'exit', id, time });
  }
  cloneSpan(id: number): number {
    this.apply(id, { op: 'clone', id });
    return id;
  }
  tryClose(id: number, time: bigint, forced?: ForcedClose): boolean {
    if (!this.spans.has(id)) return false;
    this.apply(id, { op: 'close', id, time, forced });
    return true;
  }

  event(info: EventInfo): void {
    const exec = info.executionId ?? '';
    const h = this.execution(exec);
    if (h.passing) this.inner.event(this.mappedEvent(info));
    else this.hold(exec, h, { op: 'event', info });
  }

  metric(m: MetricInfo): void {
    this.inner.metric?.(m); // metrics are aggregates: never sampled
  }

  currentSpan(): number | undefined {
    return undefined;
  }

  /** A workflow step committing open spans is kept: they must reach the state whole. */
  persistSpan(id: number): SpanSnapshot | undefined {
    const s = this.spans.get(id);
    if (s === undefined) return undefined;
    this.keep(s.exec);
    this.forget(id);
    return s.inner === undefined ? undefined : this.inner.persistSpan?.(s.inner);
  }

  /**
   * A step that resumes carried spans is kept (the carried span's story continues in it). The
   * span belongs to the running execution (`resumedBy`), not to the one that created it.
   */
  restoreSpan(info: RestoreSpanInfo): number {
    const exec = info.resumedBy ?? info.executionId ?? '';
    const id = this.nextId++;
    this.keep(exec);
    const mapped = { ...info, parent: this.innerParent(info.parent) };
    this.spans.set(id, { exec, inner: this.inner.restoreSpan !== undefined ? this.inner.restoreSpan(mapped) : this.inner.newSpan(mapped) });
    this.execution(exec).spans.add(id);
    return id;
  }

  discardSpan(id: number): void {
    const s = this.spans.get(id);
    if (s?.inner !== undefined) this.inner.discardSpan?.(s.inner);
    this.forget(id);
  }

  validateSnapshot(snapshot: SpanSnapshot): string | undefined {
    return this.inner.validateSnapshot?.(snapshot);
  }

  /** The decision: failed or force-closed executions are kept; the rest at `ratio`. */
  executionFinished(summary: ExecutionSummary): void {
    const exec = summary.executionId;
    const h = this.held.get(exec);
    if (h !== undefined && !h.passing) {
      const keep = summary.termination !== undefined || summary.forceClosed > 0 || this.random() < this.ratio;
      if (keep) this.keep(exec);
      else this.stats.dropped++;
    }
    if (h !== undefined) for (const id of h.spans) this.spans.delete(id);
    this.held.delete(exec);
    this.inner.executionFinished?.(summary);
  }

  private execution(exec: string): Held {
    let h = this.held.get(exec);
    if (h === undefined) this.held.set(exec, (h = { ops: [], passing: false, spans: new Set() }));
    return h;
  }

  /** A span this collector holds nothing more for (closed on the inner collector, persisted, discarded). */
  private forget(id: number): void {
    const s = this.spans.get(id);
    if (s === undefined) return;
    this.spans.delete(id);
    this.held.get(s.exec)?.spans.delete(id);
  }

  private hold(exec: string, h: Held, op: Op): void {
    h.ops.push(op);
    if (h.ops.length > this.maxHeldOps) {
      this.stats.keptForSize++;
      this.keep(exec);
    }
  }

  private apply(id: number, op: Op): void {
    const s = this.spans.get(id);
    if (s === undefined) return;
    const h = this.execution(s.exec);
    if (h.passing) this.replay(op);
    else this.hold(s.exec, h, op);
  }

  /** Keeps an execution: what it held goes to the inner collector in order, and later calls pass straight through. */
  private keep(exec: string): void {
    const h = this.execution(exec);
    if (h.passing) return;
    h.passing = true;
    this.stats.kept++;
    const ops = h.ops;
    h.ops = [];
    for (const op of ops) this.replay(op);
  }

  private replay(op: Op): void {
    if (op.op === 'event') {
      this.inner.event(this.mappedEvent(op.info));
      return;
    }
    const s = this.spans.get(op.id);
    if (s === undefined) return;
    if (op.op === 'newSpan') {
      s.inner = this.inner.newSpan(this.mapped(op.info));
      return;
    }
    const inner = s.inner;
    if (inner === undefined) return;
    switch (op.op) {
      case 'record':
        return this.inner.record(inner, op.values);
      case 'follows': {
        const f = this.spans.get(op.follows)?.inner;
        if (f !== undefined) this.inner.recordFollowsFrom(inner, f);
        return;
      }
      case 'enter':
        return this.inner.enter(inner, op.time);
      case 'exit':
        return this.inner.exit(inner, op.time);
      case 'clone':
        this.inner.cloneSpan(inner);
        return;
      case 'close':
        this.inner.tryClose(inner, op.time, op.forced);
        this.forget(op.id);
    }
  }

  private innerParent(parent: number | null | undefined): number | null | undefined {
    return typeof parent === 'number' ? this.spans.get(parent)?.inner : parent;
  }

  private mapped(info: NewSpanInfo): NewSpanInfo {
    return typeof info.parent === 'number' ? { ...info, parent: this.innerParent(info.parent) } : info;
  }

  private mappedEvent(info: EventInfo): EventInfo {
    return typeof info.parent === 'number' ? { ...info, parent: this.innerParent(info.parent) } : info;
  }
}
