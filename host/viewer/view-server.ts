/**
 * `sandtrace view`: serves the viewer page and a small JSON API over a local store, on 127.0.0.1
 * only. The page loads nothing from anywhere else.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PAGE } from './page.js';
import { loadStore, summarize } from './trace-store.js';

export interface Viewer {
  url: string;
  close(): Promise<void>;
}

/**
 * @example
 * const viewer = await startViewer({ folder: '.sandtrace', port: 0 });
 * console.log(viewer.url);
 * await viewer.close();
 */
export async function startViewer(options: { folder: string; port?: number }): Promise<Viewer> {
  const server = http.createServer((req, res) => {
    handle(options.folder, req.url ?? '/')
      .then(([status, type, body]) => {
        res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
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
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function handle(folder: string, url: string): Promise<[number, string, string]> {
  const path = new URL(url, 'http://x').pathname;
  if (path === '/') return [200, 'text/html; charset=utf-8', PAGE];
  if (path === '/api/traces') {
    const store = await loadStore(folder);
    return [200, 'application/json', JSON.stringify(summarize(store.spans))];
  }
  const m = /^\/api\/traces\/([0-9a-f]{32})$/.exec(path);
  if (m) {
    const store = await loadStore(folder);
    const spans = store.spans.filter((s) => s.traceId === m[1]);
    if (spans.length === 0) return [404, 'application/json', JSON.stringify({ error: 'no such trace' })];
    const logs = store.logs.filter((l) => l.traceId === m[1]);
    // Metric series are aggregated across executions: show those recorded during the trace.
    const start = spans.reduce((t, s) => (BigInt(s.start) < t ? BigInt(s.start) : t), BigInt(spans[0]!.start));
    const end = spans.reduce((t, s) => (BigInt(s.end) > t ? BigInt(s.end) : t), BigInt(spans[0]!.end));
    const metrics = store.metrics.filter((p) => BigInt(p.time) >= start && BigInt(p.time) <= end);
    return [200, 'application/json', JSON.stringify({ spans, logs, metrics })];
  }
  return [404, 'text/plain', 'not found'];
}
