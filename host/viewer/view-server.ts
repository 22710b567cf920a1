/**
 * `sandtrace view`: serves the viewer page and a small JSON API over a local store, on 127.0.0.1
 * only, and only to requests whose Host names that address. The page loads nothing from anywhere
 * else. Lines of the store that are not what the exporter writes are skipped and counted.
 *
 * The API reads the store through its index (store-index.ts): `/api/traces` (summaries, newest
 * first, filtered by query parameters: trace-filter.ts), `/api/traces/<id>` (one trace, read from
 * its own lines), `/api/services`, and `/api/store` (what the index and the cap did). With a cap
 * (`maxStoreBytes`, `maxStoreAgeMs`) the oldest traces are evicted (store-eviction.ts).
 *
 * With `otlpPort`, it also receives OTLP/HTTP into the store (see otlp-ingest.ts), and
 * `/api/events` tells open pages (server-sent events) when the store changed, by ingest or by
 * another process appending to it.
 */
import { stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { IngestStats, OtlpIngest } from './otlp-ingest.js';
import { PAGE } from './page.js';
import { StoreCap, type EvictionStats } from './store-eviction.js';
import { StoreIndex, type IndexStats } from './store-index.js';
import { checkStoreLine } from './store-reader.js';
import type { TraceSummary } from './trace-digest.js';
import { BadQuery, filtersNothing, matches, parseQuery } from './trace-filter.js';

export interface Viewer {
  url: string;
  /** The OTLP/HTTP base URL (`/v1/traces` etc.), when the viewer receives OTLP. */
  otlpUrl?: string;
  /** What OTLP ingest accepted and refused, when the viewer receives OTLP. */
  readonly ingest?: IngestStats;
  /** What the store's index holds and did (also at `/api/store`). */
  readonly store: IndexStats;
  /** What the cap evicted (also at `/api/store`). */
  readonly eviction: EvictionStats;
  close(): Promise<void>;
}

export interface ViewerOptions {
  folder: string;
  /** The page's port (default 4380; 0 picks a free one). */
  port?: number;
  /** Receive OTLP/HTTP on this port (0 picks a free one); without it, none is received. */
  otlpPort?: number;
  /** The bound on an OTLP request body (default 16 MiB). */
  otlpMaxBodyBytes?: number;
  /** How often the store's files are looked at for other writers while a page listens (default 250 ms). */
  pollMs?: number;
  /** Keep the store's index in `.sandtrace-index/` beside it, so a restart reads only what was added (default true). */
  persistIndex?: boolean;
  /**
   * Cap the store: over this many bytes (its three files together), the oldest traces (by start)
   * are evicted, down to 90% of it. See store-eviction.ts.
   */
  maxStoreBytes?: number;
  /** Evict traces that started longer ago than this. */
  maxStoreAgeMs?: number;
  /** The least time between two compactions (default 10 s); the cap is also looked at this often while idle. */
  evictEveryMs?: number;
  /**
   * How long a request waits for the first look at the store (the first index of a large store
   * takes about a CPU second per 35 MB) before it is answered with what is indexed so far, with
   * {@link INDEXING_HEADER}. Default: it waits until the index is whole (`sandtrace view` waits 1 s).
   */
  firstIndexWaitMs?: number;
}

/** The response header that says how many lines of the store were skipped as bad. */
export const SKIPPED_LINES_HEADER = 'X-Sandtrace-Skipped-Lines';
/**
 * The response header of an answer given while the store is first indexed, from what is indexed
 * so far: `<bytes indexed>/<bytes of the store>`.
 */
export const INDEXING_HEADER = 'X-Sandtrace-Indexing';
/** The response header of `/api/traces` that says how many traces matched the filters, before `limit`. */
export const MATCHED_HEADER = 'X-Sandtrace-Matched';

/**
 * The Host values that name the address the viewer listens on. Anything else is another name
 * resolving to 127.0.0.1 (DNS rebinding: a page on that name would read the store), refused.
 */
function loopbackHosts(port: number): Set<string> {
  const hosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]);
  if (port === 80) for (const h of ['127.0.0.1', 'localhost', '[::1]']) hosts.add(h);
  return hosts;
}

/**
 * Tells listeners when the store's files changed: at once when told (ingest appended), and by
 * looking at the files' sizes and times while anyone listens (another process appended).
 * Notifications closer than `coalesceMs` are one.
 */
class StoreEvents {
  private readonly clients = new Set<http.ServerResponse>();
  private timer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private pending: NodeJS.Timeout | undefined;
  private seen = '';
  private polling = false;

  constructor(
    private readonly folder: string,
    private readonly pollMs: number,
    private readonly coalesceMs = 50,
  ) {}

  add(res: http.ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    res.write('retry: 1000\n\n');
    this.clients.add(res);
    res.on('close', () => {
      this.clients.delete(res);
      if (this.clients.size === 0) this.stop();
    });
    if (this.timer === undefined) {
      void this.signature().then((s) => (this.seen ||= s));
      this.timer = setInterval(() => void this.poll(), this.pollMs);
      this.heartbeat = setInterval(() => {
        for (const c of this.clients) c.write(': keep-alive\n\n');
      }, 15_000);
    }
  }

  /** The store changed (or may have): every listener hears of it once, soon. */
  changed(): void {
    if (this.pending !== undefined || this.clients.size === 0) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      for (const c of this.clients) c.write('event: store\ndata: changed\n\n');
    }, this.coalesceMs);
  }

  stop(): void {
    clearInterval(this.timer);
    clearInterval(this.heartbeat);
    clearTimeout(this.pending);
    this.timer = this.heartbeat = this.pending = undefined;
    this.seen = '';
  }

  close(): void {
    for (const c of this.clients) c.end();
    this.clients.clear();
    this.stop();
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const now = await this.signature();
      if (now !== this.seen) {
        this.seen = now;
        this.changed();
      }
    } finally {
      this.polling = false;
    }
  }

  private async signature(): Promise<string> {
    const parts = await Promise.all(
      ['traces.jsonl', 'logs.jsonl', 'metrics.jsonl'].map((f) =>
        stat(join(this.folder, f)).then(
          (s) => `${s.size}:${s.mtimeMs}`,
          () => '-',
        ),
      ),
    );
    return parts.join(' ');
  }
}

/**
 * @example
 * const viewer = await startViewer({ folder: '.sandtrace', port: 0, otlpPort: 0 });
 * console.log(viewer.url, viewer.otlpUrl);
 * await viewer.close();
 */
export async function startViewer(options: ViewerOptions): Promise<Viewer> {
  let hosts = new Set<string>();
  const events = new StoreEvents(options.folder, options.pollMs ?? 250);
  const index = new StoreIndex(options.folder, { ...(options.persistIndex !== undefined && { persist: options.persistIndex }) });
  const policy = { ...(options.maxStoreBytes !== undefined && { maxBytes: options.maxStoreBytes }), ...(options.maxStoreAgeMs !== undefined && { maxAgeMs: options.maxStoreAgeMs }) };
  const evictEveryMs = options.evictEveryMs ?? 10_000;
  const cap = new StoreCap(options.folder, index, policy, evictEveryMs);
  /** A cap looked at in the background (timer, ingest): a failure is counted, the server keeps serving. */
  const capInBackground = () =>
    void cap.check().catch((e: unknown) => {
      cap.stats.failed++;
      cap.stats.lastError = (e as Error).message;
    });
  const capTimer = cap.active ? setInterval(capInBackground, evictEveryMs) : undefined;
  capTimer?.unref();
  // The index is read (or built) from the start, not at the first request; that request joins it.
  // A failure here (an unreadable store) comes again at that request, which answers it.
  const warm = index.refresh().then(capInBackground, (e: unknown) => e);
  let ingest: OtlpIngest | undefined;
  const server = http.createServer((req, res) => {
    const host = req.headers.host?.toLowerCase();
    if (host === undefined || !hosts.has(host)) {
      res.writeHead(421, { 'Content-Type': 'text/plain' });
      res.end('misdirected request: the viewer answers only to its loopback address (127.0.0.1, localhost or [::1] with its port)');
      return;
    }
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/api/events') return events.add(res);
    if (path === '/api/store') {
      index
        .refresh()
        .then(() => {
          res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
          res.end(JSON.stringify({ index: index.stats, eviction: { policy, ...cap.stats } }));
        })
        .catch((e: unknown) => failed(res, e));
      return;
    }
    if (path === '/api/ingest') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      res.end(JSON.stringify(ingest === undefined ? { receiving: false } : { receiving: true, otlpUrl: ingest.url, ...ingest.stats }));
      return;
    }
    handle(index, capInBackground, options.firstIndexWaitMs ?? Infinity, req.url ?? '/')
      .then(({ status, type, body, headers }) => {
        res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', ...headers });
        res.end(body);
      })
      .catch((e: unknown) => failed(res, e));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 4380, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  hosts = loopbackHosts(port);
  const closeServer = () =>
    new Promise<void>((resolve) => {
      clearInterval(capTimer);
      events.close();
      server.closeAllConnections();
      server.close(() => resolve());
    })
      // Both told at once: a compaction waiting behind a first look of a large store would
      // otherwise wait for the whole look (index.close() stops it), and close() for both.
      .then(() => Promise.all([cap.close(), index.close()]))
      .then(() => warm);
  if (options.otlpPort !== undefined) {
    try {
      // Loaded only here: ingest needs protobufjs, which importing sandtrace must not load.
      const { startOtlpIngest } = await import('./otlp-ingest.js');
      ingest = await startOtlpIngest({
        folder: options.folder,
        port: options.otlpPort,
        ...(options.otlpMaxBodyBytes !== undefined && { maxBodyBytes: options.otlpMaxBodyBytes }),
        onAppend: () => {
          events.changed();
          capInBackground();
        },
        checkLine: checkStoreLine,
      });
    } catch (e) {
      await closeServer();
      throw e;
    }
  }
  return {
    url: `http://127.0.0.1:${port}/`,
    ...(ingest !== undefined && { otlpUrl: ingest.url, ingest: ingest.stats }),
    store: index.stats,
    eviction: cap.stats,
    close: async () => {
      await ingest?.close();
      await closeServer();
    },
  };
}

/**
 * Brings the index up to the files; while the first look at the store runs past `waitMs`, returns
 * how far it got instead (the request is answered from what is indexed so far).
 */
async function look(index: StoreIndex, waitMs: number): Promise<{ done: number; total: number } | undefined> {
  const refreshed = index.refresh();
  if (index.indexing() === undefined || !Number.isFinite(waitMs)) {
    await refreshed;
    return undefined;
  }
  let timer: NodeJS.Timeout | undefined;
  // A failure of the look is this request's answer only if it comes within the wait; later, the next request meets it again.
  const outcome = refreshed.then(
    () => ({ done: true as const }),
    (error: unknown) => ({ done: true as const, error }),
  );
  const waited = await Promise.race([outcome, new Promise<{ done: false }>((resolve) => (timer = setTimeout(() => resolve({ done: false }), waitMs)))]);
  clearTimeout(timer);
  if (waited.done) {
    if ('error' in waited) throw waited.error;
    return undefined;
  }
  return index.indexing();
}

function failed(res: http.ServerResponse, e: unknown): void {
  if (res.headersSent) return void res.end();
  res.writeHead(500, { 'Content-Type': 'text/plain' });
  res.end(`cannot read the store: ${(e as Error).message}`);
}

interface Answer {
  status: number;
  type: string;
  body: string;
  headers?: Record<string, string>;
}

const json = (status: number, value: unknown, headers?: Record<string, string>): Answer => ({ status, type: 'application/json', body: JSON.stringify(value), ...(headers && { headers }) });

/**
 * The page and the JSON API; every API answer says how many store lines were skipped as bad.
 * The cap is looked at after each look at the files, but not waited for: a compaction runs
 * beside the requests, which are answered from the index as it was before it until it swaps the
 * compacted files in.
 */
async function handle(index: StoreIndex, capCheck: () => void, firstIndexWaitMs: number, url: string): Promise<Answer> {
  const { pathname: path, searchParams } = new URL(url, 'http://x');
  if (path === '/') return { status: 200, type: 'text/html; charset=utf-8', body: PAGE };
  const isTrace = /^\/api\/traces\/([0-9a-f]{32})$/.exec(path);
  if (path !== '/api/traces' && path !== '/api/services' && isTrace === null) return { status: 404, type: 'text/plain', body: 'not found' };
  const indexing = await look(index, firstIndexWaitMs);
  if (indexing === undefined) capCheck();
  const now = BigInt(Date.now()) * 1_000_000n;
  const skipped = { [SKIPPED_LINES_HEADER]: String(index.skippedLines()), ...(indexing !== undefined && { [INDEXING_HEADER]: `${indexing.done}/${indexing.total}` }) };
  if (path === '/api/services') return json(200, index.services(), skipped);
  if (isTrace !== null) {
    const detail = await index.openTrace(isTrace[1]!, now);
    return detail === undefined ? json(404, { error: 'no such trace' }, skipped) : json(200, detail, skipped);
  }
  let query;
  try {
    query = parseQuery(searchParams);
  } catch (e) {
    if (!(e instanceof BadQuery)) throw e;
    return json(400, { error: e.message }, skipped);
  }
  const shown: TraceSummary[] = [];
  let matched = 0;
  if (filtersNothing(query)) {
    // Every trace matches: only the first `limit` need their summaries.
    matched = index.listedTraces();
    index.forEachTrace(now, (_, summary) => {
      if (shown.length >= query.limit) return false;
      shown.push(summary);
    });
  } else {
    index.forEachTrace(now, (digest, summary, lowerNames) => {
      if (!matches(query, digest, summary, lowerNames)) return;
      matched++;
      if (shown.length < query.limit) shown.push(summary);
    });
  }
  return json(200, shown, { ...skipped, [MATCHED_HEADER]: String(matched) });
}
