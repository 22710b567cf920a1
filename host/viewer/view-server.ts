/**
 * `sandtrace view`: serves the viewer page and a small JSON API over a local store, on 127.0.0.1
 * only, and only to requests whose Host names that address. The page loads nothing from anywhere
 * else. Lines of the store that are not what the exporter writes are skipped and counted.
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
import { checkStoreLine, loadStore, summarize, type Store } from './trace-store.js';

export interface Viewer {
  url: string;
  /** The OTLP/HTTP base URL (`/v1/traces` etc.), when the viewer receives OTLP. */
  otlpUrl?: string;
  /** What OTLP ingest accepted and refused, when the viewer receives OTLP. */
  readonly ingest?: IngestStats;
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
}

/** The response header that says how many lines of the store were skipped as bad. */
export const SKIPPED_LINES_HEADER = 'X-Sandtrace-Skipped-Lines';

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
    if (path === '/api/ingest') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      res.end(JSON.stringify(ingest === undefined ? { receiving: false } : { receiving: true, otlpUrl: ingest.url, ...ingest.stats }));
      return;
    }
    handle(options.folder, req.url ?? '/')
      .then(([status, type, body, skipped]) => {
        res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', ...(skipped !== undefined && { [SKIPPED_LINES_HEADER]: String(skipped) }) });
        res.end(body);
      })
      .catch((e: unknown) => {
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`cannot read the store: ${(e as Error).message}`);
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 4380, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  hosts = loopbackHosts(port);
  const closeServer = () =>
    new Promise<void>((resolve) => {
      events.close();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  if (options.otlpPort !== undefined) {
    try {
      // Loaded only here: ingest needs protobufjs, which importing sandtrace must not load.
      const { startOtlpIngest } = await import('./otlp-ingest.js');
      ingest = await startOtlpIngest({
        folder: options.folder,
        port: options.otlpPort,
        ...(options.otlpMaxBodyBytes !== undefined && { maxBodyBytes: options.otlpMaxBodyBytes }),
        onAppend: () => events.changed(),
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
    close: async () => {
      await ingest?.close();
      await closeServer();
    },
  };
}

function skippedLines(store: Store): number {
  return store.skippedLines.traces + store.skippedLines.logs + store.skippedLines.metrics;
}

/** Status, content type, body, and for API answers the number of store lines skipped as bad. */
async function handle(folder: string, url: string): Promise<[number, string, string, number?]> {
  const path = new URL(url, 'http://x').pathname;
  if (path === '/') return [200, 'text/html; charset=utf-8', PAGE];
  if (path === '/api/traces') {
    const store = await loadStore(folder);
    return [200, 'application/json', JSON.stringify(summarize(store.spans)), skippedLines(store)];
  }
  const m = /^\/api\/traces\/([0-9a-f]{32})$/.exec(path);
  if (m) {
    const store = await loadStore(folder);
    const spans = store.spans.filter((s) => s.traceId === m[1]);
    if (spans.length === 0) return [404, 'application/json', JSON.stringify({ error: 'no such trace' }), skippedLines(store)];
    const logs = store.logs.filter((l) => l.traceId === m[1]);
    // Metric series are aggregated across executions: show those recorded during the trace.
    const start = spans.reduce((t, s) => (BigInt(s.start) < t ? BigInt(s.start) : t), BigInt(spans[0]!.start));
    const end = spans.reduce((t, s) => (BigInt(s.end) > t ? BigInt(s.end) : t), BigInt(spans[0]!.end));
    const metrics = store.metrics.filter((p) => BigInt(p.time) >= start && BigInt(p.time) <= end);
    return [200, 'application/json', JSON.stringify({ spans, logs, metrics }), skippedLines(store)];
  }
  return [404, 'text/plain', 'not found'];
}
