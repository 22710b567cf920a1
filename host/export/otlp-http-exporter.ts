/**
 * OTLP/HTTP protobuf exporter: POSTs to /v1/traces, /v1/logs, /v1/metrics.
 *
 * Retries only 429, 502, 503, 504 and connection failures or timeouts, with exponential backoff
 * and jitter, honouring Retry-After (seconds or an HTTP date), all within one deadline per
 * export. Other statuses fail at once. A 200 with partial_success is not retried; its rejected
 * count is reported. Empty exports send nothing; oversized ones are split, and the parts sent
 * one at a time.
 */
import type { Agent, ClientRequest, IncomingHttpHeaders } from 'node:http';
import type { LogRecord, SpanRecord } from '../pipeline/telemetry-records.js';
import { parseEndpoints, resolveConfig, sdkVersion, type ExporterOptions, type ResolvedConfig, type Signal } from './exporter-config.js';
import type { ExportFailureReason, ExportResult, Exporter, RecordEncoder } from './exporter.js';
import type { MetricSeries } from './metric-aggregation.js';

import { encodeEncodedRequest, encodeLogEntry, encodeLogs, encodeMetrics, encodeSpanEntry, encodeTraces, ProtoWriter, type ResourceAttributes } from './otlp-encoder.js';
import { logsJson, metricsJson, tracesJson } from './otlp-json.js';

const utf8 = new TextEncoder();
/** An OTLP JSON message as the request body. */
const jsonBody = (message: unknown): Uint8Array => utf8.encode(JSON.stringify(message));

let userAgent: string | undefined;
/** `sandtrace-otlp-exporter/<version>`: which exporter, which version, for the collector's logs. */
const USER_AGENT = (): string => (userAgent ??= `sandtrace-otlp-exporter/${sdkVersion()}`);

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
/** The encoding buffer is kept between exports up to this size (a larger one goes after its export). */
const KEPT_WRITER_BYTES = 1 << 20;
const MAX_RESPONSE_BYTES = 1 << 20;

/** A failed export attempt, with the HTTP status or the connection error code when there was one. */
export class ExportError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
    readonly reason: ExportFailureReason = retryable ? 'retriesExhausted' : 'nonRetryable',
    /** The connection error's code (ECONNREFUSED, ECONNRESET, …). */
    readonly errorCode?: string,
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
  /** Items lost because an export failed (all reasons). */
  failed: Record<Signal, number>;
  /** 2xx responses whose body was not an OTLP response (the items count as exported: the status said so). */
  unreadableResponses: number;
  /** The latest failure or rejection: why, the HTTP status, and the collector's message or the connection error. */
  lastFailure?: { at: number; signal: Signal; reason: ExportFailureReason | 'rejected'; status?: number; errorCode?: string; message: string };
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
    unreadableResponses: 0,
    exported: { traces: 0, logs: 0, metrics: 0 },
    rejected: { traces: 0, logs: 0, metrics: 0 },
    failed: { traces: 0, logs: 0, metrics: 0 },
  };
  private readonly targets: Record<Signal, URL>;
  /** The protobuf writer exports encode with (made on the first). */
  private writer: ProtoWriter | undefined;
  /** Keep-alive agents, made with the first request: one for http, one per signal for https (each its own TLS files). */
  private agents: { http: Agent; https: Partial<Record<Signal, Agent>> } | undefined;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly requests = new Set<ClientRequest>();
  /** Exports asleep in a retry backoff: woken when shutdown starts. */
  private readonly sleepers = new Set<() => void>();
  private closed = false;
  /** When shutdown() must be done: no retry is planned past it. */
  private closeBy = Infinity;
  /** Set at the shutdown deadline: requests are destroyed, retry loops stop. */
  private aborted = false;

  /** Throws InvalidEndpointError for an endpoint that is not an http(s) URL. */
  constructor(options: ExporterOptions = {}, env: NodeJS.ProcessEnv = process.env) {
    this.config = resolveConfig(options, env);
    this.targets = parseEndpoints(this.config.urls);
  }

  exportSpans(spans: readonly SpanRecord[]): Promise<ExportResult> {
    const res = this.config.resource;
    return this.track('traces', spans, this.json('traces') ? (s) => jsonBody(tracesJson(s, res)) : (s) => this.proto(encodeTraces, s));
  }

  /**
   * Protobuf spans are encoded one by one as they are queued (OTLP JSON ones are not: undefined),
   * with a writer of their own, so an export encoding meanwhile never shares it.
   */
  spanEncoder(): RecordEncoder<SpanRecord> | undefined {
    return this.json('traces') ? undefined : this.encoder('traces', encodeSpanEntry);
  }

  /** As `spanEncoder`, for log records. */
  logEncoder(): RecordEncoder<LogRecord> | undefined {
    return this.json('logs') ? undefined : this.encoder('logs', encodeLogEntry);
  }

  private encoder<R>(signal: Signal, entry: (r: R, w: ProtoWriter) => Uint8Array): RecordEncoder<R> {
    let w = new ProtoWriter(4096);
    return {
      encode: (record) => {
        if (w.buf.length > KEPT_WRITER_BYTES) w = new ProtoWriter(4096); // one huge record does not pin its buffer
        return entry(record, w);
      },
      exportEncoded: (records) => this.track(signal, records, (r) => this.proto(encodeEncodedRequest, r)),
    };
  }

  exportLogs(logs: readonly LogRecord[]): Promise<ExportResult> {
    const res = this.config.resource;
    return this.track('logs', logs, this.json('logs') ? (l) => jsonBody(logsJson(l, res)) : (l) => this.proto(encodeLogs, l));
  }

  exportMetrics(series: readonly MetricSeries[]): Promise<ExportResult> {
    const res = this.config.resource;
    return this.track('metrics', series, this.json('metrics') ? (m) => jsonBody(metricsJson(m, res)) : (m) => this.proto(encodeMetrics, m));
  }

  /**
   * Encodes with this exporter's one writer: encoding is synchronous and the body is copied out,
   * so exports share it, and no request pays for a fresh buffer grown to its size.
   */
  private proto<T>(encode: (items: readonly T[], res: ResourceAttributes, w: ProtoWriter) => Uint8Array, items: readonly T[]): Uint8Array {
    const w = (this.writer ??= new ProtoWriter());
    w.pos = 0; // an encode that threw left its bytes behind
    const body = encode(items, this.config.resource, w);
    if (w.buf.length > KEPT_WRITER_BYTES) this.writer = undefined;
    return body;
  }

  /** This signal goes as OTLP JSON (`http/json`) rather than protobuf. */
  private json(signal: Signal): boolean {
    return this.config.protocol[signal] === 'http/json';
  }

  /**
   * Lets exports under way finish within `timeoutMs`: one asleep in a backoff that would retry
   * after the deadline fails at once (reason `shutdown`); at the deadline, requests still open are
   * destroyed and their exports fail (reason `shutdown`). Resolves once every export has settled.
   */
  async shutdown(timeoutMs = Infinity): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const wait = Number.isFinite(timeoutMs) ? Math.max(0, timeoutMs) : Infinity;
    this.closeBy = Date.now() + wait;
    for (const wake of [...this.sleepers]) wake();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      if (wait !== Infinity) timer = setTimeout(resolve, wait);
    });
    await Promise.race([Promise.allSettled([...this.inFlight]), deadline]);
    clearTimeout(timer);
    // Past the deadline: abort what is still under way (those exports fail and are counted).
    this.aborted = true;
    for (const wake of [...this.sleepers]) wake();
    this.agents?.http.destroy();
    for (const agent of Object.values(this.agents?.https ?? {})) agent.destroy();
    for (const req of this.requests) req.destroy(new Error('exporter shut down'));
    await Promise.allSettled([...this.inFlight]);
  }

  /** Runs one export, which never rejects: anything thrown becomes a failure (reason `failed`). */
  private track<T>(signal: Signal, items: readonly T[], encode: (items: readonly T[]) => Uint8Array): Promise<ExportResult> {
    const p = this.exportItems(signal, items, encode).catch((e: unknown) => this.fail(signal, items.length, 0, new ExportError(`export failed: ${(e as Error)?.message ?? String(e)}`, false, undefined, 'failed')));
    this.inFlight.add(p);
    const done = () => this.inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  /** `deadline`: the whole export's (set by the first call; the parts of a split export share it). */
  private async exportItems<T>(signal: Signal, items: readonly T[], encode: (items: readonly T[]) => Uint8Array, deadline = Date.now() + this.config.timeoutMs[signal]): Promise<ExportResult> {
    if (items.length === 0) return { code: 'success', items: 0, attempts: 0, rejected: 0 };
    if (this.closed) return this.fail(signal, items.length, 0, new ExportError('exporter is shut down', false, undefined, 'shutdown'));
    const body = encode(items);
    if (body.length > this.config.maxRequestBytes) {
      if (items.length === 1) return this.fail(signal, 1, 0, new ExportError(`one item encodes to ${body.length} bytes, over maxRequestBytes (${this.config.maxRequestBytes})`, false, undefined, 'tooLarge'));
      // The halves go one after the other, each encoded when its turn comes and let go once it is
      // answered; this body is not held meanwhile. An oversized export so holds one part's body
      // at a time (at most maxRequestBytes, compressed when gzip is on), never the whole.
      return this.exportSplit(signal, items, encode, deadline);
    }
    return this.send(signal, body, items.length, deadline);
  }

  private async exportSplit<T>(signal: Signal, items: readonly T[], encode: (items: readonly T[]) => Uint8Array, deadline: number): Promise<ExportResult> {
    const half = items.length >> 1;
    // One deadline for both halves: sent in turn, each with its own, an export of k parts could
    // retry for k timeouts (they overlapped when the parts went in parallel).
    const a = await this.exportItems(signal, items.slice(0, half), encode, deadline);
    const b = await this.exportItems(signal, items.slice(half), encode, deadline);
    return merge(a, b);
  }

  /** One export (or one part of a split one): attempts until success, a final failure, or the deadline (the export's, or shutdown's). */
  private async send(signal: Signal, body: Uint8Array, items: number, deadline: number): Promise<ExportResult> {
    const cfg = this.config;
    const net = await loadTransport();
    // A User-Agent naming the exporter, as OpenTelemetry's exporters send (configured headers may replace it).
    const headers: Record<string, string> = { 'User-Agent': USER_AGENT(), ...cfg.headers[signal], 'Content-Type': this.json(signal) ? 'application/json' : 'application/x-protobuf' };
    let payload: Uint8Array = body;
    if (cfg.compression[signal] === 'gzip' && body.length > cfg.gzipThresholdBytes) {
      payload = await net.gzip(body);
      headers['Content-Encoding'] = 'gzip';
    }
    body = payload; // the uncompressed body is not held during retries
    let last: ExportError | undefined;
    for (let attempt = 1; ; attempt++) {
      if (this.aborted) return this.fail(signal, items, attempt - 1, shutdownError(last));
      const remaining = Math.min(deadline, this.closeBy) - Date.now();
      if (remaining <= 0) {
        if (this.closeBy <= deadline) return this.fail(signal, items, attempt - 1, shutdownError(last));
        return this.fail(signal, items, attempt - 1, new ExportError(`no success within ${cfg.timeoutMs[signal]} ms${last ? ` (last: ${last.message})` : ''}`, true, last?.status, 'retriesExhausted', last?.errorCode));
      }
      this.stats.requests++;
      let res: Response | undefined;
      let error: ExportError;
      try {
        res = await this.post(net, signal, this.targets[signal], headers, payload, remaining);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (this.aborted) return this.fail(signal, items, attempt, shutdownError(last));
        error = new ExportError(`request to ${cfg.urls[signal]} failed: ${(e as Error).message}`, true, undefined, 'retriesExhausted', code);
      }
      if (res !== undefined) {
        if (res.status >= 200 && res.status < 300) return await this.succeed(signal, items, attempt, res.body);
        const text = statusMessage(res.body);
        error = new ExportError(`collector answered ${res.status}${text ? `: ${text}` : ''}`, RETRYABLE.has(res.status), res.status);
      }
      last = error!;
      if (!error!.retryable) return this.fail(signal, items, attempt, error!);
      const wakeAt = Date.now() + (retryAfterMs(res?.headers['retry-after']) ?? backoffMs(attempt, cfg.initialBackoffMs, cfg.maxBackoffMs));
      if (wakeAt >= deadline) return this.fail(signal, items, attempt, new ExportError(`${error!.message}; no time left to retry within ${cfg.timeoutMs[signal]} ms`, true, error!.status, 'retriesExhausted', error!.errorCode));
      this.stats.retries++;
      while (Date.now() < wakeAt) {
        if (this.aborted || wakeAt >= this.closeBy) return this.fail(signal, items, attempt, shutdownError(last));
        await this.sleep(wakeAt - Date.now());
      }
    }
  }

  /** Sleeps `ms`, or less when shutdown wakes it. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  private async succeed(signal: Signal, items: number, attempts: number, body: Buffer): Promise<ExportResult> {
    let rejected = 0;
    let message: string | undefined;
    if (body.length > 0) {
      const partial = await this.partialSuccess(signal, body);
      if (partial !== undefined) {
        rejected = Number(partial[REJECTED_FIELD[signal]] ?? 0);
        message = typeof partial.errorMessage === 'string' ? partial.errorMessage : undefined;
      }
    }
    // A collector's count is clamped to what this export carried: never negative, never more.
    rejected = Number.isFinite(rejected) ? Math.min(items, Math.max(0, Math.trunc(rejected))) : 0;
    this.stats.exported[signal] += items - rejected;
    this.stats.rejected[signal] += rejected;
    const result: ExportResult = { code: 'success', items, attempts, rejected };
    if (message) result.message = message;
    if (rejected > 0) this.stats.lastFailure = { at: Date.now(), signal, reason: 'rejected', message: message || `${rejected} rejected by the collector` };
    return result;
  }

  /**
   * The partial_success of a 2xx response body, in the encoding this signal speaks; undefined when
   * there is none. A body that is not an OTLP response is counted (`unreadableResponses`): the
   * status said success, so the items count as exported.
   */
  private async partialSuccess(signal: Signal, body: Buffer): Promise<Record<string, unknown> | undefined> {
    if (this.json(signal)) {
      let res: unknown;
      try {
        res = JSON.parse(body.toString('utf8'));
      } catch (e) {
        if (!(e instanceof SyntaxError)) throw e;
        this.stats.unreadableResponses++;
        return undefined;
      }
      const partial = typeof res === 'object' && res !== null ? (res as { partialSuccess?: unknown }).partialSuccess : undefined;
      return typeof partial === 'object' && partial !== null ? (partial as Record<string, unknown>) : undefined;
    }
    const { otlpType } = await loadOtlpProto();
    const type = otlpType(RESPONSE_TYPE[signal]);
    try {
      const res = type.toObject(type.decode(body), { longs: Number }) as { partialSuccess?: Record<string, unknown> };
      return res.partialSuccess;
    } catch (e) {
      // protobufjs reports a body that is not the message as an Error (index out of range, wire type).
      if (!(e instanceof Error)) throw e;
      this.stats.unreadableResponses++;
      return undefined;
    }
  }

  private fail(signal: Signal, items: number, attempts: number, error: ExportError): ExportResult {
    this.stats.failed[signal] += items;
    const last: NonNullable<ExporterStats['lastFailure']> = { at: Date.now(), signal, reason: error.reason, message: error.message };
    if (error.status !== undefined) last.status = error.status;
    if (error.errorCode !== undefined) last.errorCode = error.errorCode;
    this.stats.lastFailure = last;
    const result: ExportResult = { code: 'failure', items, attempts, retryable: error.retryable, error, reason: error.reason };
    if (error.status !== undefined) result.status = error.status;
    return result;
  }

  private post(net: Transport, signal: Signal, target: URL, headers: Record<string, string>, body: Uint8Array, timeoutMs: number): Promise<Response> {
    return new Promise((resolve, reject) => {
      const secure = target.protocol === 'https:';
      const agents = (this.agents ??= { http: new net.http.Agent({ keepAlive: true, maxSockets: 4 }), https: {} });
      const agent = secure ? (agents.https[signal] ??= new net.https.Agent({ keepAlive: true, maxSockets: 4, ...this.config.tls[signal] })) : agents.http;
      const req = (secure ? net.https : net.http).request(target, { method: 'POST', headers: { ...headers, 'Content-Length': String(body.length) }, agent });
      const timer = setTimeout(() => req.destroy(Object.assign(new Error(`timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
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

function shutdownError(last: ExportError | undefined): ExportError {
  return new ExportError(`exporter shut down before the export completed${last ? ` (last: ${last.message})` : ''}`, true, last?.status, 'shutdown', last?.errorCode);
}

/** A response body that is not a google.rpc.Status. */
class NotAStatus extends Error {}

/**
 * The collector's message in an error answer: OTLP says a google.rpc.Status (message = field 2);
 * else the body as text when it is printable. At most 200 characters.
 */
export function statusMessage(body: Uint8Array): string | undefined {
  if (body.length === 0) return undefined;
  const fromStatus = rpcStatusMessage(body);
  const text = fromStatus ?? new TextDecoder().decode(body.subarray(0, 400));
  // eslint-disable-next-line no-control-regex
  if (fromStatus === undefined && /[\u0000-\u0008\u000e-\u001f\ufffd]/.test(text)) return undefined;
  const clean = text.replace(/\s+/g, ' ').trim();
  return clean === '' ? undefined : clean.slice(0, 200);
}

/** Field 2 of a google.rpc.Status, or undefined when the body does not read as one. */
function rpcStatusMessage(b: Uint8Array): string | undefined {
  let i = 0;
  let message: string | undefined;
  const varint = (): number => {
    let n = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (i >= b.length) throw new NotAStatus('truncated');
      const byte = b[i++]!;
      n += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return n;
    }
    throw new NotAStatus('varint too long');
  };
  try {
    while (i < b.length) {
      const tag = varint();
      const field = Math.floor(tag / 8);
      const wire = tag & 7;
      if (field === 0) return undefined;
      if (wire === 0) varint();
      else if (wire === 2) {
        const len = varint();
        if (i + len > b.length) return undefined;
        if (field === 2) message = new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(i, i + len));
        i += len;
      } else return undefined;
    }
  } catch (e) {
    // Bytes that are not a google.rpc.Status, or a message that is not UTF-8 (the decoder is
    // fatal): no message to show. Anything else is a bug.
    if (!(e instanceof NotAStatus) && !(e instanceof TypeError)) throw e;
    return undefined;
  }
  return message;
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

function merge(a: ExportResult, b: ExportResult): ExportResult {
  const items = a.items + b.items;
  const attempts = Math.max(a.attempts, b.attempts);
  if (a.code === 'success' && b.code === 'success') {
    const r: ExportResult = { code: 'success', items, attempts, rejected: a.rejected + b.rejected };
    const message = a.message ?? b.message;
    if (message) r.message = message;
    return r;
  }
  // One part failed: what the other parts delivered is kept, what they lost is counted per reason.
  const failure = (a.code === 'failure' ? a : b) as Extract<ExportResult, { code: 'failure' }>;
  const exported = (r: ExportResult) => (r.code === 'success' ? r.items - r.rejected : (r.exported ?? 0));
  const rejected = (r: ExportResult) => r.rejected ?? 0;
  const dropped: Partial<Record<ExportFailureReason, number>> = {};
  for (const r of [a, b]) {
    if (r.code === 'success') continue;
    if (r.dropped) for (const [k, n] of Object.entries(r.dropped) as Array<[ExportFailureReason, number]>) dropped[k] = (dropped[k] ?? 0) + n;
    else {
      const k = r.reason ?? 'failed';
      dropped[k] = (dropped[k] ?? 0) + r.items - (r.exported ?? 0) - (r.rejected ?? 0);
    }
  }
  const out: ExportResult = { ...failure, items, attempts, exported: exported(a) + exported(b), rejected: rejected(a) + rejected(b), dropped };
  const message = a.message ?? b.message;
  if (message) out.message = message;
  return out;
}
