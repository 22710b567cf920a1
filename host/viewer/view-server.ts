/**
 * `sandtrace view`: serves the viewer page and a small JSON API over a local store, on 127.0.0.1
 * only, and only to requests whose Host names that address. The page loads nothing from anywhere
 * else. Lines of the store that are not what the exporter writes are skipped and counted.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PAGE } from './page.js';
import { loadStore, summarize, type Store } from './trace-store.js';

export interface Viewer {
  url: string;
  close(): Promise<void>;
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
 * @example
 * const viewer = await startViewer({ folder: '.sandtrace', port: 0 });
 * console.log(viewer.url);
 * await viewer.close();
 */
export async function startViewer(options: { folder: string; port?: number }): Promise<Viewer> {
  let hosts = new Set<string>();
  const server = http.createServer((req, res) => {
    const host = req.headers.host?.toLowerCase();
    if (host === undefined || !hosts.has(host)) {
      res.writeHead(421, { 'Content-Type': 'text/plain' });
      res.end('misdirected request: the viewer answers only to its loopback address (127.0.0.1, localhost or [::1] with its port)');
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
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
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
