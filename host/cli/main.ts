#!/usr/bin/env node
/** The `sandtrace` command: run a guest, view the local store, replay recorded frames. */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { FmtCollector } from '../collectors/fmt-collector.js';
import { escapeControls } from '../collectors/format-value.js';
import { TracingEventReceiver } from '../receiver/receiver.js';
import type { Level } from '../../shared/records.js';
import { startViewer } from '../viewer/view-server.js';
import { parseLevel, runCommand } from './run-command.js';

const HELP = `sandtrace — tracing out of sandboxed guests

Usage:
  sandtrace run <guest.js | guest.wasm | guest.ts> [options]
      Runs one guest in its sandbox (QuickJS for .js/.mjs; WebAssembly for .wasm; AssemblyScript
      .ts is compiled first), prints its span tree as it is rebuilt, exports its telemetry, and
      sums up. Exits 1 when the guest failed (after its telemetry was exported), 3 when the
      export failed.

      --level L          most verbose level collected: trace, debug, info, warn, error (default info)
      --timeout-ms N     the guest's deadline (default 5000)
      --memory-mb N      the guest's memory limit (default 64)
      --execution-id ID  execution id carried on every span, event and metric
      --endpoint URL     an OTLP/HTTP endpoint (base URL; /v1/traces etc. are appended). The
                         OTEL_EXPORTER_OTLP_* variables work too. Without either, telemetry goes
                         to the local store
      --out DIR          the local store: OTLP JSON lines (default .sandtrace)
      --state FILE       persisted state: resume from it if it exists, commit to it at the end
                         (atomically: a crash leaves the old state or the new one). FILE.lock
                         keeps other runs off the file until this one ends; a stale lock, left
                         by a process that is gone, is taken over
      --trace-per-step   with --state: a resumed step starts a trace of its own, linked to the
                         workflow span (default: every step joins the workflow's trace)
      --entry NAME       WebAssembly: the export to call (default run)
      --arg VALUE        WebAssembly: an argument for the export (repeatable; numbers stay numbers)
      --quiet            no span tree, only the summary

  sandtrace view [folder] [--port N] [--otlp-port N|off] [--max-store-bytes N] [--max-store-age D]
      Serves a local page (on 127.0.0.1) listing the traces in the store (default .sandtrace),
      each as a waterfall: nesting, durations, status, force-closed causes, fields, events and
      metrics, filterable by execution id and status. The page follows the store live: new
      traces and spans appear as they are written. Also receives OTLP/HTTP (protobuf or JSON,
      gzip or not, on /v1/traces, /v1/logs, /v1/metrics) into the store, so an application's
      own OpenTelemetry SDK can export there (OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318)
      and its spans join the guests' in one trace. Prints the addresses; runs until stopped.

      --port N           the page's port (default 4380; 0 picks a free one)
      --otlp-port N|off  the OTLP/HTTP port (default 4318; 0 picks a free one; off receives none)
      --max-store-bytes N  cap the store (its three files together; 500M, 2G, or bytes): over it,
                         the oldest traces are evicted, down to 90% of it
      --max-store-age D  evict traces that started longer ago than D (30m, 12h, 7d)

  sandtrace replay <frame-file>... [--level L] [--execution-id ID]
      Applies recorded protocol v1 frames through one receiver and prints the span tree.
      Exits 1 if any record was rejected or truncated.

  -h, --help           this text
`;

async function replay(files: string[], level: Level, executionId: string | undefined): Promise<number> {
  const receiver = new TracingEventReceiver({ collector: new FmtCollector({ level }), ...(executionId !== undefined && { executionId }) });
  let applied = 0;
  let rejected = 0;
  let truncated = 0;
  for (const file of files) {
    const result = receiver.receiveBatch(new Uint8Array(await readFile(file)));
    applied += result.applied;
    rejected += result.rejected;
    truncated += result.truncated;
    for (const e of result.errors) process.stderr.write(`${file}: ${e.code}: ${escapeControls(e.message)}\n`);
  }
  const open = receiver.openSpans;
  receiver.persist(); // leave open spans open: a replay is not a crash
  process.stdout.write(`\n${files.length} frame(s): ${applied} records applied, ${rejected} rejected, ${truncated} truncated; ${open} span(s) left open; guest dropped ${receiver.stats.guestDropped}\n`);
  return rejected > 0 || truncated > 0 ? 1 : 0;
}

/** `500M`, `2G`, `1.5g`, `4096` (bytes; K, M, G, T are powers of 1024). */
function byteSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (m === null) throw new Error(`--max-store-bytes needs a size such as 500M or 2G, got '${text}'`);
  const n = Math.floor(Number(m[1]) * 1024 ** ' kmgt'.indexOf((m[2] || ' ').toLowerCase()));
  if (n <= 0) throw new Error(`--max-store-bytes must be above 0, got '${text}'`);
  return n;
}

/** `90s`, `30m`, `12h`, `7d`, `2w`, `500ms`: milliseconds. */
function duration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/.exec(text.trim());
  if (m === null) throw new Error(`--max-store-age needs a duration such as 30m, 12h or 7d, got '${text}'`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[m[2] as 'ms'];
  const ms = Number(m[1]) * unit;
  // An age of 0 would evict every trace as soon as it is written: a typo, refused rather than obeyed.
  if (ms <= 0) throw new Error(`--max-store-age must be above 0, got '${text}'`);
  return ms;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      level: { type: 'string' },
      'timeout-ms': { type: 'string', default: '5000' },
      'memory-mb': { type: 'string' },
      'execution-id': { type: 'string' },
      endpoint: { type: 'string' },
      out: { type: 'string', default: '.sandtrace' },
      state: { type: 'string' },
      entry: { type: 'string', default: 'run' },
      arg: { type: 'string', multiple: true },
      quiet: { type: 'boolean', default: false },
      'trace-per-step': { type: 'boolean', default: false },
      port: { type: 'string', default: '4380' },
      'otlp-port': { type: 'string', default: '4318' },
      'max-store-bytes': { type: 'string' },
      'max-store-age': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || command === undefined) {
    process.stdout.write(HELP);
    return values.help ? 0 : 2;
  }
  if (command === 'view' && rest.length <= 1) {
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port needs a port number, got '${values.port}'`);
    const otlpText = values['otlp-port']!;
    const otlpPort = otlpText === 'off' ? undefined : Number(otlpText);
    if (otlpPort !== undefined && (!Number.isInteger(otlpPort) || otlpPort < 0 || otlpPort > 65535)) throw new Error(`--otlp-port needs a port number or off, got '${otlpText}'`);
    let viewer;
    try {
      const maxBytes = values['max-store-bytes'] === undefined ? undefined : byteSize(values['max-store-bytes']);
      const maxAge = values['max-store-age'] === undefined ? undefined : duration(values['max-store-age']);
      viewer = await startViewer({
        folder: rest[0] ?? '.sandtrace',
        port,
        ...(otlpPort !== undefined && { otlpPort }),
        ...(maxBytes !== undefined && { maxStoreBytes: maxBytes }),
        ...(maxAge !== undefined && { maxStoreAgeMs: maxAge }),
        // A large store's first index takes a while: the page is answered meanwhile, saying how far it got.
        firstIndexWaitMs: 1000,
      });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
      const which = (e as { port?: number }).port;
      throw new Error(`port ${which ?? ''} on 127.0.0.1 is in use (another viewer, or an OpenTelemetry Collector on 4318?): choose --port N, --otlp-port N, or --otlp-port off`);
    }
    process.stdout.write(`sandtrace view: ${viewer.url} (store: ${rest[0] ?? '.sandtrace'}; Ctrl-C to stop)\n`);
    if (viewer.otlpUrl !== undefined) process.stdout.write(`OTLP/HTTP in: ${viewer.otlpUrl.slice(0, -1)} (OTEL_EXPORTER_OTLP_ENDPOINT; /v1/traces, /v1/logs, /v1/metrics)\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await viewer.close();
    return 0;
  }
  if (command === 'replay' && rest.length > 0) return replay(rest, parseLevel(values.level ?? 'trace'), values['execution-id']);
  if (command === 'run' && rest.length === 1) {
    const number = (name: string, text: string | undefined): number | undefined => {
      if (text === undefined) return undefined;
      const n = Number(text);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} needs a positive number, got '${text}'`);
      return n;
    };
    return runCommand(
      {
        file: rest[0]!,
        level: parseLevel(values.level ?? 'info'),
        timeoutMs: number('timeout-ms', values['timeout-ms'])!,
        memoryMb: number('memory-mb', values['memory-mb']),
        executionId: values['execution-id'],
        endpoint: values.endpoint,
        out: values.out!,
        state: values.state,
        entry: values.entry!,
        args: values.arg ?? [],
        quiet: values.quiet!,
        tracePerStep: values['trace-per-step']!,
      },
      (line) => process.stdout.write(`${line}\n`),
    );
  }
  process.stderr.write(`unknown command or wrong arguments: ${argv.join(' ')}\n\n${HELP}`);
  return 2;
}

// `sandtrace run … | head`: once the reader is gone there is no one to print for, but the run
// and its export still finish. Any other error on stdout is not expected and stays fatal.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
});

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    process.stderr.write(`sandtrace: ${escapeControls(e instanceof Error ? e.message : String(e))}\n`);
    process.exitCode = 2;
  },
);
