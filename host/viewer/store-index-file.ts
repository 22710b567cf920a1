/**
 * The store index on disk: `.sandtrace-index/index.json` in the store folder, two lines.
 *
 *   line 1, the header:  {"format":"sandtrace-store-index","version":1,
 *                         "files":{"traces.jsonl":{"consumed":<bytes indexed>,"dev":…,"ino":…,
 *                                  "mtimeMs":…,"head":"<sha256 of the first ≤4096 bytes>",
 *                                  "skipped":<bad lines>}, "logs.jsonl":…, "metrics.jsonl":…},
 *                         "bodyBytes":<length of line 2>,"bodySha256":"<its hash>"}
 *   line 2, the body:    {"traces":[[traceId, [offset,length,…] of its traces.jsonl lines,
 *                                    [offset,length,…] of its logs.jsonl lines, digest|null], …],
 *                         "metrics":[offset,length,firstMs,lastMs, …]}   (one per metrics.jsonl line)
 *
 * Written to a temporary file, synced, renamed over the old one. Read back only if it is exactly
 * that: the header's format and version, a body of the stated length and hash, every field of the
 * stated type, every range inside the indexed bytes and after the trace's previous one. Anything
 * else is 'corrupt' (never trusted), and so is a path that is not a regular file (a FIFO, a device)
 * or is over 1 GiB: those are not read at all.
 * Whether it still describes the store (the files' identity) is the index's check, not this file's.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { STORE_FILES, TRACE_ID, type StoreFile } from './store-reader.js';
import type { TraceDigest, TraceSummary } from './trace-digest.js';

export const INDEX_FOLDER = '.sandtrace-index';
const INDEX_FILE = 'index.json';
const FORMAT = 'sandtrace-store-index';
const VERSION = 1;
/** The engine's longest string (2^29 − 24 characters) bounds the body JSON.stringify can write. */
const MAX_INDEX_BYTES = 2 ** 30;

/** What the index knows of one store file. */
export interface FileState {
  /** Bytes indexed: the store file's complete lines up to here have been read. */
  consumed: number;
  dev: number;
  ino: number;
  mtimeMs: number;
  /** sha256 of the first min(consumed, 4096) bytes. */
  head: string;
  skipped: number;
}

/** What the index knows of one trace. */
export interface TraceEntry {
  /** offset, length pairs of the traces.jsonl lines that hold its spans. */
  spanLines: number[];
  /** The same for logs.jsonl lines that hold its logs (and `span started` records). */
  logLines: number[];
  /** Undefined while the store holds only logs of it. */
  digest: TraceDigest | undefined;
  /** Lower-cased span names, made when a name filter first needs them (not saved). */
  lowerNames?: string[] | undefined;
  /** The summary, kept until the digest changes (made again on each read while the trace runs; not saved). */
  summary?: TraceSummary | undefined;
}

export interface SavedIndex {
  files: Record<StoreFile, FileState>;
  traces: Map<string, TraceEntry>;
  /** offset, length, first and last point time (unix ms) of each metrics.jsonl line. */
  metrics: number[];
}

type Json = Record<string, any>;

export async function writeIndexFile(folder: string, index: SavedIndex): Promise<void> {
  const traces: unknown[] = [];
  for (const [id, e] of index.traces) traces.push([id, e.spanLines, e.logLines, e.digest ?? null]);
  const body = JSON.stringify({ traces, metrics: index.metrics });
  const header = JSON.stringify({ format: FORMAT, version: VERSION, files: index.files, bodyBytes: Buffer.byteLength(body), bodySha256: createHash('sha256').update(body).digest('hex') });
  const dir = join(folder, INDEX_FOLDER);
  const temp = join(dir, `${INDEX_FILE}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  await mkdir(dir, { recursive: true });
  try {
    const fd = await open(temp, 'w');
    try {
      await fd.writeFile(`${header}\n${body}\n`);
      await fd.sync();
    } finally {
      await fd.close();
    }
    await rename(temp, join(dir, INDEX_FILE));
  } catch (e) {
    // The old index file stays as it was; the temporary one goes. The first error is the one reported.
    await unlink(temp).catch(() => undefined);
    throw e;
  }
}

/** The saved index; 'none' when there is none, 'corrupt' when the file is not exactly what {@link writeIndexFile} writes. */
export async function readIndexFile(folder: string): Promise<SavedIndex | 'none' | 'corrupt'> {
  let fd: FileHandle;
  try {
    // Non-blocking: opening a FIFO put (or linked) there would otherwise wait for a writer forever.
    fd = await open(join(folder, INDEX_FOLDER, INDEX_FILE), constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'none';
    throw e;
  }
  try {
    // Only a regular file is read: a device such as /dev/zero never ends, a directory cannot be read.
    const st = await fd.stat();
    if (!st.isFile()) return 'corrupt';
    // Larger than any index this writes (its body is one string): not read into memory (past
    // 2 GiB the read would throw, and every refresh with it).
    if (st.size > MAX_INDEX_BYTES) return 'corrupt';
    return parseIndexFile(await fd.readFile()) ?? 'corrupt';
  } finally {
    await fd.close();
  }
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

function parseIndexFile(content: Buffer): SavedIndex | undefined {
  const nl = content.indexOf(10);
  if (nl < 0) return undefined;
  let header: Json;
  let body: Json;
  try {
    header = JSON.parse(content.toString('utf8', 0, nl));
    if (typeof header !== 'object' || header === null || header.format !== FORMAT || header.version !== VERSION) return undefined;
    const bodyBytes = content.subarray(nl + 1, content.length - 1);
    if (content[content.length - 1] !== 10 || bodyBytes.length !== header.bodyBytes || createHash('sha256').update(bodyBytes).digest('hex') !== header.bodySha256) return undefined;
    body = JSON.parse(bodyBytes.toString('utf8'));
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    return undefined;
  }
  const files = {} as Record<StoreFile, FileState>;
  for (const f of STORE_FILES) {
    const s = header.files?.[f];
    if (typeof s !== 'object' || s === null || !isCount(s.consumed) || typeof s.dev !== 'number' || typeof s.ino !== 'number' || typeof s.mtimeMs !== 'number' || typeof s.head !== 'string' || !isCount(s.skipped)) return undefined;
    files[f] = { consumed: s.consumed, dev: s.dev, ino: s.ino, mtimeMs: s.mtimeMs, head: s.head, skipped: s.skipped };
  }
  // A trace's lines in file order, each once and apart (the index only ever appends them so): a
  // range repeated or overlapping another would show a span twice (as a duplicate) or half a line.
  const refsFit = (refs: unknown, file: StoreFile): refs is number[] =>
    Array.isArray(refs) &&
    refs.length % 2 === 0 &&
    refs.every(isCount) &&
    refs.every((v, i) => (i % 2 === 0 ? i === 0 || v >= refs[i - 2] + refs[i - 1] : v > 0 && refs[i - 1] + v <= files[file].consumed));
  if (typeof body !== 'object' || body === null || !Array.isArray(body.traces) || !Array.isArray(body.metrics) || body.metrics.length % 4 !== 0) return undefined;
  for (let i = 0; i < body.metrics.length; i += 4) {
    const [offset, length, first, last] = body.metrics.slice(i, i + 4);
    if (!isCount(offset) || !isCount(length) || offset + length > files['metrics.jsonl'].consumed || typeof first !== 'number' || typeof last !== 'number') return undefined;
  }
  const traces = new Map<string, TraceEntry>();
  for (const t of body.traces) {
    if (!Array.isArray(t) || t.length !== 4 || typeof t[0] !== 'string' || !TRACE_ID.test(t[0]) || !refsFit(t[1], 'traces.jsonl') || !refsFit(t[2], 'logs.jsonl')) return undefined;
    const d = t[3];
    if (d !== null && !isDigest(d)) return undefined;
    traces.set(t[0], { spanLines: t[1], logLines: t[2], digest: d ?? undefined });
  }
  return { files, traces, metrics: body.metrics };
}

function isDigest(d: Json): d is TraceDigest {
  return (
    typeof d === 'object' && d !== null && typeof d.root === 'string' && typeof d.start === 'string' && /^\d+$/.test(d.start) && typeof d.end === 'string' && /^\d+$/.test(d.end) &&
    isCount(d.spans) && d.spans > 0 && isCount(d.errors) && isCount(d.running) && isCount(d.duplicateSpans) &&
    isStrings(d.forced) && isStrings(d.executionIds) && isStrings(d.services) && isStrings(d.names) && Array.isArray(d.attributes) && d.attributes.every(isCount)
  );
}
