/**
 * Sends everything to several collectors at once (say, the terminal and an exporter). Each child
 * keeps its own span ids and its own interest in each callsite; the tee maps between them.
 */
import type { Level, Values } from '../../shared/records.js';
import { LEVELS } from '../../shared/records.js';
import type { CallsiteMeta, Collector, EventInfo, ForcedClose, Interest, MetricInfo, NewSpanInfo, RestoreSpanInfo, SpanSnapshot } from './collector.js';
import type { ExecutionSummary } from './execution-summary.js';

/** No child span: the child was not interested in the callsite. */
const NONE = -1;

/**
 * @example
 * const collector = new TeeCollector([new FmtCollector(), new PipelineCollector({ handlers })]);
 */
export class TeeCollector implements Collector {
  private readonly spans = new Map<number, number[]>();
  /** Per callsite id: each child's interest. */
  private readonly interests = new Map<number, Interest[]>();
  private nextId = 1;

  /** Whether any child does something on enter and exit (see Collector.wantsEnterExit). */
  readonly wantsEnterExit: boolean;

  constructor(readonly children: readonly Collector[]) {
    this.wantsEnterExit = children.some((c) => c.wantsEnterExit !== false);
  }

  registerCallsite(meta: CallsiteMeta): Interest {
    const each = this.children.map((c) => c.registerCallsite(meta));
    this.interests.set(meta.id, each);
    if (each.every((i) => i === 'never')) return 'never';
    return each.some((i) => i === 'sometimes') ? 'sometimes' : 'always';
  }

  enabled(meta: CallsiteMeta): boolean {
    return this.children.some((_, i) => this.wants(i, meta));
  }

  maxLevelHint(): Level | undefined {
    let most: number | undefined;
    for (const c of this.children) {
      const hint = c.maxLevelHint?.();
      if (hint === undefined) return undefined; // a child without a hint may want everything
      const n = LEVELS.indexOf(hint);
      most = most === undefined ? n : Math.min(most, n);
    }
    return most === undefined ? undefined : LEVELS[most];
  }

  newSpan(info: NewSpanInfo): number {
    return this.open(info, (c, childInfo) => c.newSpan(childInfo));
  }

  /** Each child checks its own entry of the keyed snapshot; a problem names the child. */
  validateSnapshot(snapshot: SpanSnapshot): string | undefined {
    for (const [i, child] of this.children.entries()) {
      const problem = child.validateSnapshot?.(snapshot);
      if (problem !== undefined) return `collector ${i} (${child.constructor.name}): ${problem}`;
    }
    return undefined;
  }

  restoreSpan(info: RestoreSpanInfo): number {
    return this.open(info, (c, childInfo) => (c.restoreSpan !== undefined ? c.restoreSpan({ ...childInfo, snapshot: info.snapshot, resumedBy: info.resumedBy }) : c.newSpan(childInfo)));
  }

  /** The children's entries merged into one keyed snapshot; every child lets go of the span. */
  persistSpan(id: number): SpanSnapshot | undefined {
    const ids = this.spans.get(id);
    if (ids === undefined) return undefined;
    this.spans.delete(id);
    let merged: SpanSnapshot | undefined;
    ids.forEach((childId, i) => {
      if (childId === NONE) return;
      const own = this.children[i]!.persistSpan?.(childId);
      if (own !== undefined) merged = { ...merged, ...own };
    });
    return merged;
  }

  discardSpan(id: number): void {
    this.each(id, (c, childId) => c.discardSpan?.(childId));
    this.spans.delete(id);
  }

  record(id: number, values: Values): void {
    this.each(id, (c, childId) => c.record(childId, values));
  }

  recordFollowsFrom(id: number, follows: number): void {
    const from = this.spans.get(follows);
    this.each(id, (c, childId, i) => {
      const f = from?.[i];
      if (f !== undefined && f !== NONE) c.recordFollowsFrom(childId, f);
    });
  }

  event(info: EventInfo): void {
    const parents = typeof info.parent === 'number' ? this.spans.get(info.parent) : undefined;
    this.children.forEach((c, i) => {
      if (!this.wants(i, info.meta)) return;
      const parent = parents === undefined ? info.parent : parents[i] === NONE ? undefined : parents[i];
      c.event({ ...info, parent });
    });
  }

  enter(id: number, time: bigint): void {
    this.each(id, (c, childId) => c.enter(childId, time));
  }

  exit(id: number, time: bigint): void {
    this.each(id, (c, childId) => c.exit(childId, time));
  }

  cloneSpan(id: number): number {
    this.each(id, (c, childId) => c.cloneSpan(childId));
    return id;
  }

  tryClose(id: number, time: bigint, forced?: ForcedClose): boolean {
    let closed = false;
    this.each(id, (c, childId) => {
      if (c.tryClose(childId, time, forced)) closed = true;
    });
    this.spans.delete(id);
    return closed;
  }

  currentSpan(): number | undefined {
    return undefined;
  }

  metric(m: MetricInfo): void {
    for (const c of this.children) c.metric?.(m);
  }

  executionFinished(summary: ExecutionSummary): void {
    for (const c of this.children) c.executionFinished?.(summary);
  }

  private wants(i: number, meta: CallsiteMeta): boolean {
    const interest = this.interests.get(meta.id)?.[i] ?? this.children[i]!.registerCallsite(meta);
    return interest === 'always' || (interest === 'sometimes' && this.children[i]!.enabled(meta));
  }

  private open(info: NewSpanInfo, create: (c: Collector, info: NewSpanInfo, i: number) => number): number {
    const parents = typeof info.parent === 'number' ? this.spans.get(info.parent) : undefined;
    const ids = this.children.map((c, i) => {
      if (!this.wants(i, info.meta)) return NONE;
      const parent = parents === undefined ? info.parent : parents[i] === NONE ? undefined : parents[i];
      return create(c, { ...info, parent }, i);
    });
    const id = this.nextId++;
    this.spans.set(id, ids);
    return id;
  }

  private each(id: number, fn: (c: Collector, childId: number, i: number) => void): void {
    const ids = this.spans.get(id);
    if (ids === undefined) return;
    ids.forEach((childId, i) => {
      if (childId !== NONE) fn(this.children[i]!, childId, i);
    });
  }
}
