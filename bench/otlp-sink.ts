/**
 * A loopback OTLP/HTTP trace sink for the benches, run in a child process. It stands for a
 * collector on another machine: every request to /v1/traces is read whole and answered at once
 * (200, an empty ExportTraceServiceResponse), so what an exporter pays ends with its bytes on the
 * wire and the answer, as it would against a real collector.
 *
 * Every request is still decoded and checked: gunzipped when its Content-Encoding says gzip,
 * decoded with protobufjs (the OTLP definitions of host/export/otlp-proto.ts), its spans counted
 * by name, with a check that each span named `handle request` has the attributes `http.route` and
 * `attempt` and one event, `loaded`. By default the bodies are kept and decoded when the counts are
 * taken (`take()`, after a round), so the sink's decoding (about 3 µs per span in protobufjs) does
 * not compete for this machine's two cores with the side being measured, nor delay the answers
 * (the sink is one thread). `decode: 'inline'` (E2E_SINK_DECODE=inline) decodes each request right
 * after answering it instead, as a collector sharing the machine would.
 *
 * `startSink()` forks it and returns its URL and `take()`, which returns the counts since the last
 * take and resets them.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';

export interface SinkCounts {
  requests: number;
  gzipped: number;
  /** Request bytes as received (compressed). */
  bytes: number;
  spans: number;
  byName: Record<string, number>;
  /** `handle request` spans without exactly two attributes and one event. */
  malformed: number;
  /** Most attributes seen on a `handle request` span. */
  attributes: number;
  /** Requests that failed to decode. */
  undecodable: number;
}

export interface Sink {
  url: string;
  take(): Promise<SinkCounts>;
  close(): Promise<void>;
}

/** `deferred` (default): bodies are decoded when the counts are taken; `inline`: right after each answer. */
export type SinkDecode = 'deferred' | 'inline';

export async function startSink(decode: SinkDecode = process.env.E2E_SINK_DECODE === 'inline' ? 'inline' : 'deferred'): Promise<Sink> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [decode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the OTLP sink exited (${code})`)));
    child.once('message', (m) => resolve((m as { port: number }).port));
  });
  child.removeAllListeners('exit');
  const take = () =>
    new Promise<SinkCounts>((resolve) => {
      child.once('message', (m) => resolve(m as SinkCounts));
      child.send('take');
    });
  const close = () =>
    new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill();
    });
  return { url: `http://127.0.0.1:${port}`, take, close };
}

async function serve(): Promise<void> {
  const { otlpType } = await import('../host/export/otlp-proto.js');
  const Request = otlpType('ExportTraceServiceRequest');
  const empty = Buffer.from(otlpType('ExportTraceServiceResponse').encode({}).finish());
  const zero = (): SinkCounts => ({ requests: 0, gzipped: 0, bytes: 0, spans: 0, byName: {}, malformed: 0, attributes: 0, undecodable: 0 });
  let counts = zero();
  interface Decoded {
    resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: Array<{ name: string; attributes?: Array<{ key: string }>; events?: Array<{ name: string }> }> }> }>;
  }
  const count = (raw: Buffer, gz: boolean): void => {
    counts.requests++;
    counts.bytes += raw.length;
    try {
      if (gz) counts.gzipped++;
      const msg = Request.decode(gz ? gunzipSync(raw) : raw) as unknown as Decoded;
      for (const rs of msg.resourceSpans ?? [])
        for (const ss of rs.scopeSpans ?? [])
          for (const s of ss.spans ?? []) {
            counts.spans++;
            counts.byName[s.name] = (counts.byName[s.name] ?? 0) + 1;
            if (s.name !== 'handle request') continue;
            const keys = (s.attributes ?? []).map((a) => a.key);
            if (!keys.includes('http.route') || !keys.includes('attempt') || s.events?.length !== 1 || s.events[0]!.name !== 'loaded') counts.malformed++;
            counts.attributes = Math.max(counts.attributes, keys.length);
          }
    } catch (e) {
      // Not gzip or not the OTLP message: counted (the bench fails on any), never fatal to the sink.
      if (!(e instanceof Error)) throw e;
      counts.undecodable++;
    }
  };
  const inline = process.argv[2] === 'inline';
  const pending: Array<{ raw: Buffer; gz: boolean }> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'application/x-protobuf', 'Content-Length': String(empty.length) });
      res.end(empty);
      const body = { raw: Buffer.concat(chunks), gz: req.headers['content-encoding'] === 'gzip' };
      if (inline) count(body.raw, body.gz);
      else pending.push(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as { port: number }).port }));
  process.on('message', (m) => {
    if (m === 'take') {
      for (const body of pending.splice(0)) count(body.raw, body.gz);
      process.send!(counts);
      counts = zero();
    }
  });
  process.on('disconnect', () => process.exit(0));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await serve();
