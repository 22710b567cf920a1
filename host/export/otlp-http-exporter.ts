/**
 * OTLP/HTTP protobuf exporter: POSTs to /v1/traces, /v1/logs, /v1/metrics.
 *
 * Retries only 429, 502, 503, 504 and connection failures or timeouts, with exponential backoff
 * and jitter, honouring Retry-After (seconds or an HTTP date), all within one deadline per
 * export. Other statuses fail at once. A 200 with partial_success is not retried; its rejected
 * count is reported. Empty exports send nothing; oversized ones are split.
 */
import type { Agent, ClientRequest, IncomingHttpHeaders } from 'node:http';
import type { LogRecord, SpanRecord } from '../pipeline/telemetry-records.js';
import { resolveConfig, type ExporterOptions, type ResolvedConfig, type Signal } from './exporter-config.js';
import type { ExportResult, Exporter } from './exporter.js';
import type { MetricSeries } from './metric-aggregation.js';
import { encodeLogs, encodeMetrics, encodeTraces } from './otlp-encoder.js';

/**
 * What sending needs (node:http, node:https, gzip) and what reading a response body needs
 * (protobufjs and the OTLP definitions, about 25 ms to load), imported once when first needed:
 * importing sandtrace, or making an exporter that never sends, costs neither.
 */
interface Transport {
  http: typeof import('node:http');
  https: typeof import('node:https');
  gzip: (data: Uint8Array) => Promise<Buffer>;
}
type OtlpProto = typeof import('./otlp-proto.js');

let transport: Promise<Transport> | undefined;
let otlpProto: Promise<OtlpProto> | undefined;

function loadTransport(): Promise<Transport> {
  return (transport ??= Promise.all([import('node:http'), import('node:https'), import('node:zlib'), import('node:util')]).then(([http, https, zlib, util]) => ({
    http: http.default,
    https: https.default,
    gzip: util.promisify(zlib.gzip),
  })));
}

function loadOtlpProto(): Promise<OtlpProto> {
  return (otlpProto ??= import('./otlp-proto.js'));
}

const RETRYABLE = new Set([429, 502, 503, 504]);
const MAX_RESPONSE_BYTES = 1 << 20;

/** A failed export attempt, with the HTTP status when there was one. */
export class ExportError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ExportError';
  }
}

export interface ExporterStats {
  requests: number;
  retries: number;
  /** Items accepted by the collector, per signal. */
  exported: Record<Signal, number>;
  /** Items rejected by the collector in a partial success. */
  rejected: Record<Signal, number>;
  /** Items lost because an export failed. */
  failed: Record<Signal, number>;
}

interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const RESPONSE_TYPE: Record<Signal, string> = { traces: 'ExportTraceServiceResponse', logs: 'ExportLogsServiceResponse', metrics: 'ExportMetricsServiceResponse' };
const REJECTED_FIELD: Record<Signal, string> = { traces: 'rejectedSpans', logs: 'rejectedLogRecords', metrics: 'rejectedDataPoints' };

/**
 * @example
 * const exporter = new OtlpHttpExporter({ endpoint: 'http://collector:4318', serviceName: 'plugin-host' });
 * const result = await exporter.exportSpans(spans);
 * await exporter.shutdown();
 */
export class OtlpHttpExporter implements Exporter {
  readonly config: ResolvedConfig;
  readonly stats: ExporterStats = {
    requests: 0,
    retries: 0,
    exported: { traces: 0, logs: 0, metrics: 0 },
    rejected: { traces: 0, logs: 0, metrics: 0 },
    failed: { traces: 0, logs: 0, metrics: 0 },
  };
  /** Keep-alive agents, made with the first request. */
  private agents: { http: Agent; https: Agent } | undefined;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly requests = new Set<ClientRequest>();
  private closed = false;
  /** Set at the shutdown deadline: retry loops stop. */
  private aborted = false;

  constructor(options: ExporterOptions = {}, env: NodeJS.ProcessEnv = process.env) {
    this.config = resolveConfig(options, env);
  }

  exportSpans(spans: readonly SpanRecord[]): Promise<ExportResult> {
    return this.track(this.exportItems('traces', spans, (s) => encodeTraces(s, this.config.resource)));
  }

  exportLogs(logs: readonly LogRecord[]): Promise<ExportResult> {
    return this.track(this.exportItems('logs', logs, (l) => encodeLogs(l, this.config.resource)));
  }

  exportMetrics(series: readonly MetricSeries[]): Promise<ExportResult> {
    return this.track(this.exportItems('metrics', series, (m) => encodeMetrics(m, this.config.resource)));
  }

  async shutdown(timeoutMs = Infinity): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      if (Number.isFinite(timeoutMs)) timer = setTimeout(resolve, Math.max(0, timeoutMs));
    });
    await Promise.race([Promise.allSettled([...this.inFlight]), deadline]);
    clearTimeout(timer);
    // Past the deadline: abort what is still under way (those exports fail and are counted).
    this.aborted = true;
    this.agents?.http.destroy();
    this.agents?.https.destroy();
    for (const req of this.requests) req.destroy(new Error('exporter shut down'));
    await Promise.allSettled([...this.inFlight]);
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
    return p;
  }

  private async exportItems<T>(signal: Signal, items: readonly T[], encode: (items: readonly T[]) => Uint8Array): Promise<ExportResult> {
    if (items.length === 0) return { code: 'success', items: 0, attempts: 0, rejected: 0 };
    if (this.closed) return this.fail(signal, items.length, 0, new ExportError('exporter is shut down', false));
    const body = encode(items);
    if (body.length > this.config.maxRequestBytes) {
      if (items.length === 1) return this.fail(signal, 1, 0, new ExportError(`one item encodes to ${body.length} bytes, over maxRequestBytes (${this.config.maxRequestBytes})`, false));
      const half = items.length >> 1;
      const [a, b] = await Promise.all([this.exportItems(signal, items.slice(0, half), encode), this.exportItems(signal, items.slice(half), encode)]);
      return merge(a, b);
    }
    return this.send(signal, body, items.length);
  }

  /** One export: attempts until success, a final failure, or the deadline. */
  private async send(signal: Signal, body: Uint8Array, items: number): Promise<ExportResult> {
    const cfg = this.config;
    const deadline = Date.now() + cfg.timeoutMs[signal];
    const net = await loadTransport();
    const headers: Record<string, string> = { ...cfg.headers[signal], 'Content-Type': 'application/x-protobuf' };
    let payload: Uint8Array = body;
    if (cfg.compression[signal] === 'gzip' && body.length > cfg.gzipThresholdBytes) {
      payload = await net.gzip(body);
      headers['Content-Encoding'] = 'gzip';
    }
    for (let attempt = 1; ; attempt++) {
      if (this.aborted) return this.fail(signal, items, attempt - 1, new ExportError('exporter shut down before the export completed', true));
      const remaining = deadline - Date.now();
      if (remaining <= 0) return this.fail(signal, items, attempt - 1, new ExportError(`no success within ${cfg.timeoutMs[signal]} ms`, true));
      this.stats.requests++;
      let res: Response | undefined;
      let error: ExportError;
      try {
        res = await this.post(net, cfg.urls[signal], headers, payload, remaining);
      } catch (e) {
        error = new ExportError(`request to ${cfg.urls[signal]} failed: ${(e as Error).message}`, true);
      }
      if (res !== undefined) {
        if (res.status >= 200 && res.status < 300) return await this.succeed(signal, items, attempt, res.body);
        error = new ExportError(`collector answered ${res.status}${res.body.length ? `: ${res.body.toString('utf8', 0, 200)}` : ''}`, RETRYABLE.has(res.status), res.status);
      }
      if (!error!.retryable) return this.fail(signal, items, attempt, error!);
      const delay = retryAfterMs(res?.headers['retry-after']) ?? backoffMs(attempt, cfg.initialBackoffMs, cfg.maxBackoffMs);
      if (Date.now() + delay >= deadline) return this.fail(signal, items, attempt, new ExportError(`${error!.message}; no time left to retry within ${cfg.timeoutMs[signal]} ms`, true, error!.status));
      this.stats.retries++;
      await sleep(delay);
    }
  }

  private async succeed(signal: Signal, items: number, attempts: number, body: Buffer): Promise<ExportResult> {
    let rejected = 0;
    let message: string | undefined;
    if (body.length > 0) {
      const { otlpType } = await loadOtlpProto();
      try {
        const type = otlpType(RESPONSE_TYPE[signal]);
        const res = type.toObject(type.decode(body), { longs: Number }) as { partialSuccess?: Record<string, unknown> };
        rejected = Number(res.partialSuccess?.[REJECTED_FIELD[signal]] ?? 0);
        message = res.partialSuccess?.errorMessage as string | undefined;
      } catch {
        // a body that is not an OTLP response: the status said success
      }
    }
    this.stats.exported[signal] += items - rejected;
    this.stats.rejected[signal] += rejected;
    const result: ExportResult = { code: 'success', items, attempts, rejected };
    if (message) result.message = message;
    return result;
  }

  private fail(signal: Signal, items: number, attempts: number, error: ExportError): ExportResult {
    this.stats.failed[signal] += items;
    return { code: 'failure', items, attempts, retryable: error.retryable, error };
  }

  private post(net: Transport, url: string, headers: Record<string, string>, body: Uint8Array, timeoutMs: number): Promise<Response> {
    return new Promise((resolve, reject) => {
      const target = new URL(url);
      const secure = target.protocol === 'https:';
      const agents = (this.agents ??= { http: new net.http.Agent({ keepAlive: true, maxSockets: 4 }), https: new net.https.Agent({ keepAlive: true, maxSockets: 4 }) });
      const req = (secure ? net.https : net.http).request(target, { method: 'POST', headers: { ...headers, 'Content-Length': String(body.length) }, agent: secure ? agents.https : agents.http });
      const timer = setTimeout(() => req.destroy(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      timer.unref();
      this.requests.add(req);
      req.on('close', () => this.requests.delete(req));
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size <= MAX_RESPONSE_BYTES) chunks.push(c);
        });
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
        });
        res.on('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
      });
      req.end(body);
    });
  }
}

/** Retry-After in ms: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(header: string | string[] | undefined, now = Date.now()): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Exponential backoff (×1.5 per attempt, capped) with ±20% jitter. */
export function backoffMs(attempt: number, initial: number, max: number): number {
  const base = Math.min(max, initial * 1.5 ** (attempt - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function merge(a: ExportResult, b: ExportResult): ExportResult {
  const items = a.items + b.items;
  const attempts = Math.max(a.attempts, b.attempts);
  if (a.code === 'failure') return { ...a, items, attempts };
  if (b.code === 'failure') return { ...b, items, attempts };
  return { code: 'success', items, attempts, rejected: a.rejected + b.rejected };
}
