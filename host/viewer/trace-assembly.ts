/**
 * From the records of the store, in the order written, to the spans the viewer shows: one per
 * (trace id, span id), running spans for `span started` records whose span is not written yet.
 * The same rules serve a whole-store read (trace-store.ts `loadStore`), the index (which folds
 * each trace once to describe it) and the opening of one trace by its lines. What the list shows
 * of an assembled trace is its digest (trace-digest.ts).
 */
import type { LogLine, ViewLog, ViewSpan } from './store-reader.js';

/** The spans and ordinary logs assembled, and what was dropped as duplicates. */
export interface Assembled<S extends ViewSpan = ViewSpan> {
  /** The spans written, then the running ones (only `span started` records). */
  spans: S[];
  logs: ViewLog[];
  duplicates: { spans: number; spanStarts: number };
}

/**
 * Folds span records and log records (each kind in the order written) into spans.
 *
 * One record per span id. A replayed step re-emits the ids of the spans an earlier run already
 * exported: the same span, written again. The first record is kept, so a later write never
 * changes a trace already shown, with one exception: a record the host force-closed (the attempt
 * died, or did not commit) gives way to a later one that ended normally, since the replay that
 * finished is what happened. The count (×N on the span) says there were other records.
 */
export class TraceAssembler<S extends ViewSpan = ViewSpan> {
  private readonly spans: S[] = [];
  private readonly byId = new Map<string, number>();
  private duplicateSpans = 0;
  private readonly logs: ViewLog[] = [];
  private readonly started = new Map<string, { span: S; identities: Set<string>; duplicates: number }>();
  private duplicateStarts = 0;

  addSpan(s: S): void {
    const key = s.traceId + s.spanId;
    const at = this.byId.get(key);
    if (at === undefined) {
      this.byId.set(key, this.spans.length);
      this.spans.push(s);
      return;
    }
    const kept = this.spans[at]!;
    this.duplicateSpans++;
    const count = (kept.duplicates ?? 0) + 1;
    if (kept.forcedCause !== undefined && s.forcedCause === undefined) this.spans[at] = s;
    this.spans[at]!.duplicates = count;
  }

  addLog(r: LogLine<S>): void {
    if ('log' in r) {
      this.logs.push(r.log);
      return;
    }
    const key = r.started.traceId + r.started.spanId;
    const seen = this.started.get(key);
    if (seen === undefined) {
      this.started.set(key, { span: r.started, identities: new Set([r.identity]), duplicates: 0 });
    } else if (seen.identities.has(r.identity)) {
      seen.duplicates++;
      this.duplicateStarts++;
    } else {
      // A later commit of the same open span: its fields as they are now replace the earlier ones.
      seen.identities.add(r.identity);
      seen.span = r.started;
    }
  }

  /** @param now unix ns: where running spans end (never before their start). */
  finish(now: bigint): Assembled<S> {
    const spans = this.spans.slice();
    for (const [key, { span, duplicates }] of this.started) {
      if (this.byId.has(key)) continue; // the span closed: the span record wins
      span.end = now > BigInt(span.start) ? now.toString() : span.start;
      span.durationMs = Number(BigInt(span.end) - BigInt(span.start)) / 1e6;
      if (duplicates > 0) span.duplicates = duplicates;
      spans.push(span);
    }
    return { spans, logs: this.logs, duplicates: { spans: this.duplicateSpans, spanStarts: this.duplicateStarts } };
  }
}
