/** A real OTLP/HTTP endpoint on 127.0.0.1 for export tests: records and decodes requests, replies as scripted. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { otlpType } from '../../host/export/otlp-proto.js';

export interface ScriptedResponse {
  status: number;
  headers?: Record<string, string>;
  body?: Uint8Array;
  delayMs?: number;
  /** Destroy the connection instead of answering (the client sees ECONNRESET). */
  reset?: boolean;
  /** Never answer. */
  hang?: boolean;
}

export interface ReceivedRequest {
  path: string;
  headers: http.IncomingHttpHeaders;
  /** The protobuf body, decompressed. */
  body: Buffer;
  at: number;
}

const REQUEST_TYPE: Record<string, string> = { '/v1/traces': 'ExportTraceServiceRequest', '/v1/logs': 'ExportLogsServiceRequest', '/v1/metrics': 'ExportMetricsServiceRequest' };

export class OtlpTestServer {
  readonly requests: ReceivedRequest[] = [];
  /** Responses for the next requests, in order; when empty, 200 with an empty body. */
  readonly script: ScriptedResponse[] = [];
  /** The response used for each request, in order (parallel to `requests`). */
  readonly replies: ScriptedResponse[] = [];
  /** Requests being answered now, and the most there ever were at once. */
  open = 0;
  maxOpen = 0;
  private readonly server = http.createServer((req, res) => this.handle(req, res));
  url = '';

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  /** Items in the i-th request: spans, log records, or metric data points. */
  items(i: number): number {
    const d = this.decoded(i);
    let n = 0;
    for (const r of d.resourceSpans ?? []) for (const s of r.scopeSpans ?? []) n += (s.spans ?? []).length;
    for (const r of d.resourceLogs ?? []) for (const s of r.scopeLogs ?? []) n += (s.logRecords ?? []).length;
    for (const r of d.resourceMetrics ?? []) for (const s of r.scopeMetrics ?? []) for (const m of s.metrics ?? []) n += (m.sum ?? m.gauge ?? m.histogram).dataPoints.length;
    return n;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The i-th request decoded with the OTLP definitions (as plain objects). */
  decoded(i: number): Record<string, any> {
    const r = this.requests[i]!;
    const type = otlpType(REQUEST_TYPE[r.path]!);
    return type.toObject(type.decode(r.body), { longs: String, bytes: String }) as Record<string, any>;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    this.open++;
    this.maxOpen = Math.max(this.maxOpen, this.open);
    res.on('close', () => this.open--);
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      this.requests.push({ path: req.url ?? '', headers: req.headers, body, at: Date.now() });
      const reply = this.script.shift() ?? { status: 200 };
      this.replies.push(reply);
      if (reply.reset) {
        req.socket.destroy();
        return;
      }
      if (reply.hang) return;
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(reply.status, { 'Content-Type': 'application/x-protobuf', ...reply.headers });
        res.end(reply.body ?? Buffer.alloc(0));
      };
      if (reply.delayMs) setTimeout(send, reply.delayMs).unref();
      else send();
    });
  }
}

/** An encoded ExportXServiceResponse with a partial success. */
export function partialSuccess(signal: 'traces' | 'logs' | 'metrics', rejected: number, message: string): Uint8Array {
  const names = { traces: ['ExportTraceServiceResponse', 'rejectedSpans'], logs: ['ExportLogsServiceResponse', 'rejectedLogRecords'], metrics: ['ExportMetricsServiceResponse', 'rejectedDataPoints'] } as const;
  const [type, field] = names[signal];
  const t = otlpType(type);
  return t.encode(t.fromObject({ partialSuccess: { [field]: rejected, errorMessage: message } })).finish();
}
