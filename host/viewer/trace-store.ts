/**
 * Reads a whole local store (OTLP JSON lines: traces.jsonl, logs.jsonl, metrics.jsonl) at once.
 * The viewer itself reads through the index (store-index.ts), which reads each line once and then
 * only the lines of the trace asked for; this whole read is the reference it agrees with, and what
 * tools and tests use on small stores.
 *
 * Durable workflows add two things to a store. A step that commits with spans still open leaves
 * a `span started` log record per open span (see {@link SPAN_STARTED}): until the span itself is
 * written, the reader shows it as a running span, from its start to the time the store was read.
 * A step that is replayed re-emits the same span ids: the reader keeps one span per
 * (trace id, span id) and counts the others (see trace-assembly.ts).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TraceAssembler } from './trace-assembly.js';
import { BadStoreLine, parseLine, readLogs, readMetrics, readSpans, Resources, type Attributes, type LogLine, type StoreFile, type ViewLog, type ViewMetric, type ViewSpan } from './store-reader.js';

export { summarize, type TraceSummary } from './trace-digest.js';
export { checkStoreLine, SPAN_STARTED, type AttrValue, type Attributes, type StoreFile, type ViewLink, type ViewLog, type ViewMetric, type ViewSpan } from './store-reader.js';

/** What one store file holds: its records, and how many of its lines were skipped as bad. */
interface FileLines<T> {
  records: T[];
  skipped: number;
}

/**
 * Reads one file of the store, line by line, turning each line into records with `read`. A line
 * that is not JSON, or not shaped as the exporter writes it, is skipped whole and counted (a torn
 * last line, from a writer still appending, counts too).
 */
async function readLines<T>(folder: string, file: StoreFile, read: (line: Record<string, unknown>, out: T[]) => void): Promise<FileLines<T>> {
  let content: string;
  try {
    content = await readFile(join(folder, file), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], skipped: 0 };
    throw e;
  }
  const records: T[] = [];
  let skipped = 0;
  for (const line of content.split('\n')) {
    if (line.trim() === '') continue;
    const fromLine: T[] = [];
    try {
      read(parseLine(line), fromLine);
    } catch (e) {
      if (!(e instanceof BadStoreLine)) throw e;
      skipped++;
      continue;
    }
    for (const r of fromLine) records.push(r);
  }
  return { records, skipped };
}

export interface Store {
  /** One per (trace id, span id): the spans written, then the running ones (only `span started` records). */
  spans: ViewSpan[];
  /** Ordinary logs: `span started` records are not among them, they become running spans or nothing. */
  logs: ViewLog[];
  metrics: ViewMetric[];
  /** The resources that wrote the spans, each once: `span.resource` indexes this list. */
  resources: Attributes[];
  /** Lines of each file skipped because they were not JSON or not shaped as the exporter writes them. */
  skippedLines: { traces: number; logs: number; metrics: number };
  /**
   * Records dropped as duplicates: span records whose ids were already written (a replayed step),
   * and `span started` records identical to one already read (including those of spans now closed).
   */
  duplicates: { spans: number; spanStarts: number };
  /** The time the store was read (unix ns, decimal): where running spans end. */
  readAt: string;
}

/**
 * @param options.now the time the store is read, unix ns (by default the clock's): running spans end there.
 */
export async function loadStore(folder: string, options: { now?: bigint } = {}): Promise<Store> {
  const now = options.now ?? BigInt(Date.now()) * 1_000_000n;
  const resources = new Resources();
  const traces = await readLines<ViewSpan>(folder, 'traces.jsonl', (json, out) => readSpans(json, out, resources));
  const logs = await readLines<LogLine>(folder, 'logs.jsonl', (json, out) => readLogs(json, out, resources));
  const metrics = await readLines<ViewMetric>(folder, 'metrics.jsonl', readMetrics);
  const assembler = new TraceAssembler();
  for (const s of traces.records) assembler.addSpan(s);
  for (const r of logs.records) assembler.addLog(r);
  const { spans, logs: ordinary, duplicates } = assembler.finish(now);
  return {
    spans,
    logs: ordinary,
    metrics: metrics.records,
    resources: resources.list,
    skippedLines: { traces: traces.skipped, logs: logs.skipped, metrics: metrics.skipped },
    duplicates,
    readAt: now.toString(),
  };
}
