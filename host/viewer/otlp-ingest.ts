/**
 * The receiving side of `sandtrace view`: an OTLP/HTTP endpoint (`/v1/traces`, `/v1/logs`,
 * `/v1/metrics`; protobuf or JSON, gzip or not) on 127.0.0.1 that appends what arrives to the
 * local store, as OTLP JSON lines in the form the {@link FileExporter} writes, so a host
 * application's own OpenTelemetry SDK can export next to sandtrace's guests.
 *
 * Every request is hostile until read: the body is bounded (declared, streamed and decompressed),
 * nested values are bounded in depth, and what is written is first read back with the store
 * reader, so a line the viewer would skip is refused (400) instead of stored. Refusals are counted.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzip } from 'node:zlib';
import { otlpType } from '../export/otlp-proto.js';
import type { StoreFile } from './trace-store.js';

/** The default bound on a request body, compressed and decompressed alike. */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
/** Nesting deeper than this (objects and lists) is refused: no OTLP request needs it. */
const MAX_DEPTH = 64;
/** After refusing an oversized body, at most this much more is read and thrown away before the connection is cut. */
const MAX_DISCARD_BYTES = 64 * 1024 * 1024;

interface Signal {
  file: StoreFile;
  request: string;
  response: string;
  /** The top-level list of the request. */
  key: string;
}

const SIGNALS: Record<string, Signal> = {
  '/v1/traces': { file: 'traces.jsonl', request: 'ExportTraceServiceRequest', response: 'ExportTraceServiceResponse', key: 'resourceSpans' },
  '/v1/logs': { file: 'logs.jsonl', request: 'ExportLogsServiceRequest', response: 'ExportLogsServiceResponse', key: 'resourceLogs' },
  '/v1/metrics': { file: 'metrics.jsonl', request: 'ExportMetricsServiceRequest', response: 'ExportMetricsServiceResponse', key: 'resourceMetrics' },
};

export interface IngestStats {
  /** Requests stored (one store line each, none when the request held nothing), per signal. */
  accepted: { traces: number; logs: number; metrics: number };
  /** Requests refused, by reason. */
  rejected: {
    /** 400: a body that does not decode, or is not shaped as OTLP (the store reader would skip it). */
    badBody: number;
    /** 413: a body over the bound, declared, streamed or once decompressed. */
    tooLarge: number;
    /** 415: a content type other than protobuf or JSON, or a content encoding other than gzip. */
    unsupportedMedia: number;
    /** 404 / 405: another path, or a method other than POST. */
    notFound: number;
    methodNotAllowed: number;
    /** 421: a Host that is not the loopback address and port (DNS rebinding). */
    misdirected: number;
    /** 500: the store could not be written. */
    storeFailed: number;
  };
}

export interface OtlpIngest {
  /** The base URL: an SDK's OTLP endpoint (`/v1/traces` etc. are appended). */
  url: string;
  port: number;
  readonly stats: IngestStats;
  close(): Promise<void>;
}

export interface OtlpIngestOptions {
  folder: string;
  /** Default 4318 (the OTLP/HTTP port); 0 picks a free one. */
  port?: number;
  /** The bound on a body, compressed or not (default 16 MiB). */
  maxBodyBytes?: number;
  /** Called after a line was appended to the store. */
  onAppend?: (file: StoreFile) => void;
  /**
   * The store reader's check of a line (trace-store.ts `checkStoreLine`): why it would skip the
   * line, or undefined. Passed in rather than imported, so that this module, loaded only when
   * OTLP is received, shares no module with the package entry (which would split it into a chunk
   * of its own, one more file for every import of sandtrace to load).
   */
  checkLine: (file: StoreFile, line: unknown) => string | undefined;
}

/** A refusal: the status, and the message the client gets. */
class Refused extends Error {
  constructor(
    readonly status: 400 | 413 | 415,
    message: string,
  ) {
    super(message);
  }
}

type Encoding = 'protobuf' | 'json';

/**
 * @example
 * const ingest = await startOtlpIngest({ folder: '.sandtrace', port: 4318, checkLine: checkStoreLine });
 * // OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
 * await ingest.close();
 */
export async function startOtlpIngest(options: OtlpIngestOptions): Promise<OtlpIngest> {
  const maxBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const stats: IngestStats = {
    accepted: { traces: 0, logs: 0, metrics: 0 },
    rejected: { badBody: 0, tooLarge: 0, unsupportedMedia: 0, notFound: 0, methodNotAllowed: 0, misdirected: 0, storeFailed: 0 },
  };
  // Appends are chained so two requests never interleave their lines.
  let writes: Promise<unknown> = Promise.resolve();
  let ready: Promise<unknown> | undefined;
  const append = (file: StoreFile, line: string): Promise<void> => {
    const write = writes.then(async () => {
      await (ready ??= mkdir(options.folder, { recursive: true }));
      await appendFile(join(options.folder, file), line);
    });
    writes = write.catch(() => undefined);
    return write;
  };

  let hosts = new Set<string>();
  const server = http.createServer((req, res) => {
    const host = req.headers.host?.toLowerCase();
    if (host === undefined || !hosts.has(host)) {
      stats.rejected.misdirected++;
      return plain(res, 421, 'misdirected request: this OTLP endpoint answers only to its loopback address (127.0.0.1, localhost or [::1] with its port)');
    }
    const path = (req.url ?? '/').split('?')[0]!;
    const signal = Object.hasOwn(SIGNALS, path) ? SIGNALS[path]! : undefined;
    if (signal === undefined) {
      stats.rejected.notFound++;
      return plain(res, 404, 'not found: POST to /v1/traces, /v1/logs or /v1/metrics');
    }
    if (req.method !== 'POST') {
      stats.rejected.methodNotAllowed++;
      res.setHeader('Allow', 'POST');
      return plain(res, 405, 'method not allowed: POST');
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const encoding: Encoding | undefined = type === 'application/x-protobuf' ? 'protobuf' : type === 'application/json' ? 'json' : undefined;
    const compression = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    if (encoding === undefined || (compression !== 'gzip' && compression !== 'identity')) {
      stats.rejected.unsupportedMedia++;
      const what = encoding === undefined ? `content type '${type}'` : `content encoding '${compression}'`;
      return plain(res, 415, `unsupported ${what}: send application/x-protobuf or application/json, gzip or not`);
    }
    const refuse = (e: Refused) => {
      if (e.status === 400) stats.rejected.badBody++;
      else if (e.status === 413) stats.rejected.tooLarge++;
      else stats.rejected.unsupportedMedia++;
      status(res, encoding, e.status, e.message);
    };
    const declared = Number(req.headers['content-length']);
    if (declared > maxBytes) {
      discard(req, res);
      return refuse(new Refused(413, `request body of ${declared} bytes is over the bound of ${maxBytes}`));
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > maxBytes) {
        over = true;
        chunks.length = 0;
        discard(req, res);
        refuse(new Refused(413, `request body is over the bound of ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', () => undefined); // a client that goes away: nothing to answer
    req.on('end', () => {
      if (over) return;
      receive(Buffer.concat(chunks), compression === 'gzip', encoding, signal, maxBytes, options.checkLine)
        .then(async ({ line, warning }) => {
          if (line !== undefined) {
            try {
              await append(signal.file, line);
            } catch (e) {
              stats.rejected.storeFailed++;
              return status(res, encoding, 500, `cannot write the store: ${(e as Error).message}`);
            }
            stats.accepted[signal.file.slice(0, -'.jsonl'.length) as keyof IngestStats['accepted']]++;
            options.onAppend?.(signal.file);
          }
          ok(res, encoding, signal, warning);
        })
        .catch((e: unknown) => {
          if (!(e instanceof Refused)) throw e;
          refuse(e);
        })
        .catch((e: unknown) => {
          // Not expected: answer rather than leave the client waiting; the server keeps serving.
          stats.rejected.storeFailed++;
          if (!res.headersSent) status(res, encoding, 500, `internal error: ${(e as Error).message}`);
        });
    });
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 4318, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  hosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]);
  if (port === 80) for (const h of ['127.0.0.1', 'localhost', '[::1]']) hosts.add(h);
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve(writes.then(() => undefined)));
      }),
  };
}

function plain(res: http.ServerResponse, code: number, message: string): void {
  res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(message);
}

/** An error answer as OTLP says: a google.rpc.Status in the request's encoding (code 3 is INVALID_ARGUMENT). */
function status(res: http.ServerResponse, encoding: Encoding, code: number, message: string): void {
  if (res.headersSent) return;
  const rpc = code === 400 ? 3 : code === 413 ? 8 : 13;
  if (encoding === 'json') {
    res.writeHead(code, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ code: rpc, message }));
    return;
  }
  res.writeHead(code, { 'Content-Type': 'application/x-protobuf' });
  res.end(encodeStatus(rpc, message));
}

/** google.rpc.Status { int32 code = 1; string message = 2; }, written by hand (two fields). */
function encodeStatus(code: number, message: string): Buffer {
  const text = Buffer.from(message, 'utf8');
  const varint = (n: number): number[] => {
    const out: number[] = [];
    while (n > 0x7f) {
      out.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    out.push(n);
    return out;
  };
  return Buffer.concat([Buffer.from([0x08, ...varint(code), 0x12, ...varint(text.length)]), text]);
}

/**
 * 200 with an Export*ServiceResponse in the request's encoding: empty, or with a partial success
 * that rejects nothing and carries a warning (OTLP's way to say something was left out).
 */
function ok(res: http.ServerResponse, encoding: Encoding, signal: Signal, warning: string | undefined): void {
  const body = warning === undefined ? {} : { partialSuccess: { errorMessage: warning } };
  if (encoding === 'json') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
    return;
  }
  const type = otlpType(signal.response);
  res.writeHead(200, { 'Content-Type': 'application/x-protobuf' });
  res.end(Buffer.from(type.encode(type.fromObject(body)).finish()));
}

/** Before a 413: read and drop what the client still sends, up to a bound, then cut the connection. */
function discard(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (!res.headersSent) res.setHeader('Connection', 'close');
  let dropped = 0;
  req.removeAllListeners('data');
  req.on('error', () => undefined);
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > MAX_DISCARD_BYTES) req.socket.destroy();
  });
  req.resume();
}

function gunzipBounded(body: Buffer, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    gunzip(body, { maxOutputLength: maxBytes }, (e, out) => {
      if (e === null) return resolve(out);
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return reject(new Refused(413, `request body is over the bound of ${maxBytes} bytes once decompressed`));
      reject(new Refused(400, `body is not gzip: ${e.message}`));
    });
  });
}

/**
 * The store line for a request (none when it holds nothing) and a warning for the partial-success
 * answer, or a {@link Refused}.
 */
async function receive(raw: Buffer, gzip: boolean, encoding: Encoding, signal: Signal, maxBytes: number, checkStoreLine: OtlpIngestOptions['checkLine']): Promise<{ line: string | undefined; warning: string | undefined }> {
  const body = gzip ? await gunzipBounded(raw, maxBytes) : raw;
  const request = encoding === 'protobuf' ? fromProtobuf(body, signal) : fromJson(body);
  const list = request[signal.key];
  if (list !== undefined && !Array.isArray(list)) throw new Refused(400, `${signal.key} is not a list`);
  normalize(request, 0);
  fillDefaults(request);
  const dropped = signal.key === 'resourceMetrics' ? dropUnshownMetrics(request) : 0;
  const problem = checkStoreLine(signal.file, request);
  if (problem !== undefined) throw new Refused(400, `not an OTLP ${signal.request}: ${problem}`);
  const warning = dropped > 0 ? `${dropped} metric(s) of a kind the store does not hold (only gauge, sum and histogram) dropped` : undefined;
  return { line: hasItems(request, signal) ? `${JSON.stringify(request)}\n` : undefined, warning };
}

const objects = (v: unknown): Array<Record<string, any>> => (Array.isArray(v) ? v.filter((x): x is Record<string, any> => typeof x === 'object' && x !== null && !Array.isArray(x)) : []);

/**
 * Fields protobuf leaves out when they hold their default (a zero time, an empty name or key) and
 * the store reader requires: written out, as the JSON mapping allows.
 */
function fillDefaults(request: Record<string, any>): void {
  const keys = (attributes: unknown) => {
    for (const a of objects(attributes)) a.key ??= '';
  };
  const scoped = (r: Record<string, any>, list: string) => {
    keys(r.resource?.attributes);
    return objects(r[list]).flatMap((s) => (keys(s.scope?.attributes), [s]));
  };
  for (const r of objects(request.resourceSpans)) {
    for (const ss of scoped(r, 'scopeSpans')) {
      for (const s of objects(ss.spans)) {
        s.name ??= '';
        s.startTimeUnixNano ??= '0';
        s.endTimeUnixNano ??= '0';
        keys(s.attributes);
        for (const e of objects(s.events)) {
          e.name ??= '';
          e.timeUnixNano ??= '0';
          keys(e.attributes);
        }
        for (const l of objects(s.links)) keys(l.attributes);
      }
    }
  }
  for (const r of objects(request.resourceLogs)) {
    for (const sl of scoped(r, 'scopeLogs')) {
      for (const l of objects(sl.logRecords)) {
        // OTLP: a record without a time is placed at its observed time.
        l.timeUnixNano ??= l.observedTimeUnixNano ?? '0';
        keys(l.attributes);
      }
    }
  }
  for (const r of objects(request.resourceMetrics)) {
    for (const sm of scoped(r, 'scopeMetrics')) {
      for (const m of objects(sm.metrics)) {
        m.name ??= '';
        for (const p of objects((m.sum ?? m.gauge ?? m.histogram)?.dataPoints)) {
          p.timeUnixNano ??= '0';
          keys(p.attributes);
        }
      }
    }
  }
}

/** Removes metrics that are neither gauge, sum nor histogram (exponential histograms, summaries): their count. */
function dropUnshownMetrics(request: Record<string, any>): number {
  let dropped = 0;
  for (const r of objects(request.resourceMetrics)) {
    for (const sm of objects(r.scopeMetrics)) {
      if (!Array.isArray(sm.metrics)) continue;
      const kept = sm.metrics.filter((m: unknown) => typeof m !== 'object' || m === null || 'sum' in m || 'gauge' in m || 'histogram' in m);
      dropped += sm.metrics.length - kept.length;
      sm.metrics = kept;
    }
  }
  return dropped;
}

function fromProtobuf(body: Buffer, signal: Signal): Record<string, unknown> {
  const type = otlpType(signal.request);
  let message: ReturnType<typeof type.decode>;
  try {
    message = type.decode(body);
  } catch (e) {
    // protobufjs reports bytes that are not the message with Error or RangeError (index out of
    // range, invalid wire type, nesting that exhausts the stack): all of them mean "does not decode".
    if (!(e instanceof Error)) throw e;
    throw new Refused(400, `body does not decode as ${signal.request}: ${e.message}`);
  }
  // The OTLP JSON mapping: camelCase names, 64-bit integers as decimal strings, enums as numbers,
  // NaN and the infinities as strings, bytes as base64 (ids are made hex by normalize).
  return type.toObject(message, { longs: String, bytes: String, enums: Number, json: true }) as Record<string, unknown>;
}

function fromJson(body: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch (e) {
    if (!(e instanceof SyntaxError || e instanceof TypeError)) throw e;
    throw new Refused(400, `body is not JSON: ${e.message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Refused(400, 'body is not a JSON object');
  return parsed as Record<string, unknown>;
}

const ID_KEYS = new Set(['traceId', 'spanId', 'parentSpanId']);
/** Fields the JSON mapping writes as decimal strings, which JSON senders may write as numbers. */
const INT64_KEYS = new Set(['startTimeUnixNano', 'endTimeUnixNano', 'timeUnixNano', 'observedTimeUnixNano', 'intValue', 'asInt', 'count', 'bucketCounts']);

/**
 * Brings a request to the form the store holds, in place: ids as lower-case hex (protobuf gives
 * base64; OTLP JSON gives hex), 64-bit integers given as JSON numbers as decimal strings.
 */
function normalize(v: unknown, depth: number): void {
  if (depth > MAX_DEPTH) throw new Refused(400, `nested deeper than ${MAX_DEPTH} levels`);
  if (Array.isArray(v)) {
    for (const item of v) normalize(item, depth + 1);
    return;
  }
  if (typeof v !== 'object' || v === null) return;
  const o = v as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    const value = o[key];
    if (ID_KEYS.has(key) && typeof value === 'string') o[key] = id(value);
    else if (INT64_KEYS.has(key)) o[key] = int64(value);
    else normalize(value, depth + 1);
  }
}

/** An id as hex: already hex (JSON), or base64 of its bytes (protobuf, and some JSON senders). */
function id(v: string): string {
  if (v === '' || /^[0-9a-fA-F]{16}$|^[0-9a-fA-F]{32}$/.test(v)) return v.toLowerCase();
  return Buffer.from(v, 'base64').toString('hex');
}

/** A 64-bit integer a sender wrote as a JSON number, as the decimal string of what JSON.parse read. */
function int64(v: unknown): unknown {
  const one = (x: unknown) => (typeof x === 'number' && Number.isInteger(x) ? BigInt(x).toString() : x);
  return Array.isArray(v) ? v.map(one) : one(v);
}

function hasItems(request: Record<string, any>, signal: Signal): boolean {
  for (const r of request[signal.key] ?? []) {
    for (const s of r.scopeSpans ?? []) if ((s.spans ?? []).length > 0) return true;
    for (const s of r.scopeLogs ?? []) if ((s.logRecords ?? []).length > 0) return true;
    for (const s of r.scopeMetrics ?? []) if ((s.metrics ?? []).length > 0) return true;
  }
  return false;
}
