/**
 * OTLP exporter configuration: what the code says, then the standard OTEL_* environment
 * variables, then the defaults of the OTLP specification.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Values } from '../../shared/records.js';
import { packagePath } from '../package-root.js';

export type Signal = 'traces' | 'logs' | 'metrics';

export interface ExporterOptions {
  /** Base URL; `/v1/<signal>` is appended (default http://localhost:4318). */
  endpoint?: string;
  /** Full URLs per signal, used as they are. */
  endpoints?: Partial<Record<Signal, string>>;
  headers?: Record<string, string>;
  /** Deadline for one export, all attempts included, in ms (default 10,000). */
  timeoutMs?: number;
  /** gzip bodies larger than `gzipThresholdBytes` (default: gzip). */
  compression?: 'gzip' | 'none';
  /** OTLP's encoding over HTTP (default: OTEL_EXPORTER_OTLP_PROTOCOL, else `http/protobuf`). */
  protocol?: OtlpProtocol;
  gzipThresholdBytes?: number;
  /** Encoded requests larger than this are split (default 64 MiB). */
  maxRequestBytes?: number;
  /** First retry delay and cap, in ms (defaults 1,000 and 5,000; each try multiplies by 1.5). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  serviceName?: string;
  /** More resource attributes (OTEL_RESOURCE_ATTRIBUTES adds to them). */
  resource?: Record<string, string | number | boolean>;
  /**
   * TLS for https endpoints, as PEM: `ca` to trust a collector with its own certificate
   * authority, `cert` and `key` for client authentication (default: the environment's
   * OTEL_EXPORTER_OTLP_CERTIFICATE, _CLIENT_CERTIFICATE and _CLIENT_KEY files, else Node's CAs).
   */
  tls?: TlsFiles;
}

/** PEM contents for the https connections of one signal. */
export interface TlsFiles {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

/** The OTLP/HTTP encodings sandtrace sends: protobuf, or the JSON mapping of the same messages. */
export type OtlpProtocol = 'http/protobuf' | 'http/json';

export interface ResolvedConfig {
  protocol: Record<Signal, OtlpProtocol>;
  urls: Record<Signal, string>;
  headers: Record<Signal, Record<string, string>>;
  timeoutMs: Record<Signal, number>;
  compression: Record<Signal, 'gzip' | 'none'>;
  gzipThresholdBytes: number;
  maxRequestBytes: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  resource: Values;
  tls: Record<Signal, TlsFiles>;
}

const SIGNALS: Signal[] = ['traces', 'logs', 'metrics'];

/** `k=v,k2=v2` with URL-encoded parts, as OTEL_EXPORTER_OTLP_HEADERS and OTEL_RESOURCE_ATTRIBUTES are written. */
export function parseKeyValues(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!text) return out;
  for (const part of text.split(',')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    try {
      out[decodeURIComponent(part.slice(0, i).trim())] = decodeURIComponent(part.slice(i + 1).trim());
    } catch (e) {
      if (!(e instanceof URIError)) throw e;
      // a malformed escape: skip this entry, as the specification allows
    }
  }
  return out;
}

function positive(text: string | undefined): number | undefined {
  const n = text === undefined ? NaN : Number(text);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

export function resolveConfig(options: ExporterOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedConfig {
  const base = (options.endpoint ?? env.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'http://localhost:4318').replace(/\/+$/, '');
  const upper = (s: Signal) => s.toUpperCase();
  const urls = {} as Record<Signal, string>;
  const headers = {} as Record<Signal, Record<string, string>>;
  const timeoutMs = {} as Record<Signal, number>;
  const compression = {} as Record<Signal, 'gzip' | 'none'>;
  const tls = {} as Record<Signal, TlsFiles>;
  const protocols = {} as Record<Signal, OtlpProtocol>;
  for (const s of SIGNALS) {
    tls[s] = options.tls ?? tlsFromEnv(env, upper(s));
    urls[s] = options.endpoints?.[s] ?? (options.endpoint === undefined ? env[`OTEL_EXPORTER_OTLP_${upper(s)}_ENDPOINT`] : undefined) ?? `${base}/v1/${s}`;
    headers[s] = { ...parseKeyValues(env.OTEL_EXPORTER_OTLP_HEADERS), ...parseKeyValues(env[`OTEL_EXPORTER_OTLP_${upper(s)}_HEADERS`]), ...options.headers };
    timeoutMs[s] = options.timeoutMs ?? positive(env[`OTEL_EXPORTER_OTLP_${upper(s)}_TIMEOUT`]) ?? positive(env.OTEL_EXPORTER_OTLP_TIMEOUT) ?? 10_000;
    const compressionVar = env[`OTEL_EXPORTER_OTLP_${upper(s)}_COMPRESSION`] !== undefined ? `OTEL_EXPORTER_OTLP_${upper(s)}_COMPRESSION` : 'OTEL_EXPORTER_OTLP_COMPRESSION';
    const c = options.compression ?? env[compressionVar] ?? 'gzip';
    if (c !== 'gzip' && c !== 'none') throw new ConfigError(compressionVar, c, "supported: 'gzip', 'none'");
    compression[s] = c;
    const protocolVar = env[`OTEL_EXPORTER_OTLP_${upper(s)}_PROTOCOL`] !== undefined ? `OTEL_EXPORTER_OTLP_${upper(s)}_PROTOCOL` : 'OTEL_EXPORTER_OTLP_PROTOCOL';
    const protocol = options.protocol ?? env[protocolVar] ?? 'http/protobuf';
    if (protocol !== 'http/protobuf' && protocol !== 'http/json') throw new ConfigError(protocolVar, protocol, "sandtrace exports OTLP over 'http/protobuf' or 'http/json' (not grpc)");
    protocols[s] = protocol;
  }
  const resourceAttrs: Record<string, string | number | boolean> = { ...parseKeyValues(env.OTEL_RESOURCE_ATTRIBUTES), ...options.resource };
  const serviceName = options.serviceName ?? env.OTEL_SERVICE_NAME ?? (resourceAttrs['service.name'] as string | undefined) ?? defaultServiceName();
  const resource: Values = [['service.name', serviceName], ['telemetry.sdk.name', 'sandtrace'], ['telemetry.sdk.language', 'nodejs'], ['telemetry.sdk.version', sdkVersion()]];
  for (const k of ['telemetry.sdk.name', 'telemetry.sdk.language', 'telemetry.sdk.version']) delete resourceAttrs[k]; // the SDK's own, not overridable
  for (const [k, v] of Object.entries(resourceAttrs)) if (k !== 'service.name') resource.push([k, v]);
  return {
    protocol: protocols,
    urls,
    headers,
    timeoutMs,
    compression,
    gzipThresholdBytes: options.gzipThresholdBytes ?? 1024,
    maxRequestBytes: options.maxRequestBytes ?? 64 << 20,
    initialBackoffMs: options.initialBackoffMs ?? 1000,
    maxBackoffMs: options.maxBackoffMs ?? 5000,
    resource,
    tls,
  };
}

/** The PEM files the environment names for a signal (its own variable first); unreadable is a ConfigError. */
function tlsFromEnv(env: NodeJS.ProcessEnv, signal: string): TlsFiles {
  const out: TlsFiles = {};
  const read = (name: string): Buffer | undefined => {
    const variable = env[`OTEL_EXPORTER_OTLP_${signal}_${name}`] !== undefined ? `OTEL_EXPORTER_OTLP_${signal}_${name}` : `OTEL_EXPORTER_OTLP_${name}`;
    const path = env[variable];
    if (path === undefined || path === '') return undefined;
    try {
      return readFileSync(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === undefined) throw e;
      throw new ConfigError(variable, path, `the file cannot be read (${code})`);
    }
  };
  const ca = read('CERTIFICATE');
  const cert = read('CLIENT_CERTIFICATE');
  const key = read('CLIENT_KEY');
  if (ca !== undefined) out.ca = ca;
  if (cert !== undefined) out.cert = cert;
  if (key !== undefined) out.key = key;
  return out;
}

/** A configuration value sandtrace cannot honour (say, an unknown compression): refused, never guessed. */
export class ConfigError extends Error {
  readonly code = 'INVALID_CONFIG';
  constructor(
    readonly variable: string,
    readonly value: string,
    reason: string,
  ) {
    super(`${variable}='${value}' is not supported: ${reason}`);
    this.name = 'ConfigError';
  }
}

/** The specification's default when OTEL_SERVICE_NAME is unset: `unknown_service:` and the executable's name. */
export function defaultServiceName(): string {
  return `unknown_service:${basename(process.argv0 || 'node')}`;
}

let version: string | undefined;

/** This package's version (telemetry.sdk.version), read once from its package.json. */
export function sdkVersion(): string {
  return (version ??= (JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as { version: string }).version);
}

/** An endpoint that cannot be exported to: not a URL, or not http(s). Thrown when the exporter is made. */
export class InvalidEndpointError extends Error {
  readonly code = 'INVALID_ENDPOINT';
  constructor(
    readonly signal: Signal,
    readonly endpoint: string,
    reason: string,
  ) {
    super(`invalid OTLP ${signal} endpoint '${endpoint}': ${reason}`);
    this.name = 'InvalidEndpointError';
  }
}

/** The endpoints parsed, each an http: or https: URL with a host; InvalidEndpointError otherwise. */
export function parseEndpoints(urls: Record<Signal, string>): Record<Signal, URL> {
  const out = {} as Record<Signal, URL>;
  for (const s of SIGNALS) {
    let url: URL;
    try {
      url = new URL(urls[s]);
    } catch (e) {
      if (!(e instanceof TypeError)) throw e; // what new URL() throws for text that is not a URL
      throw new InvalidEndpointError(s, urls[s], 'not a URL (expected http://host:port or https://host:port)');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidEndpointError(s, urls[s], `unsupported scheme '${url.protocol}' (expected http: or https:)`);
    if (url.hostname === '') throw new InvalidEndpointError(s, urls[s], 'no host');
    out[s] = url;
  }
  return out;
}
