/**
 * `sandtrace run <guest>`: runs one guest in the right sandbox, prints its span tree as it is
 * rebuilt, exports its telemetry (to an OTLP endpoint, or else to the local store), and sums up.
 */
import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { BatchingManager, type BatchingStats, type ExportFailure, type RecordKind } from '../batching/batching-manager.js';
import { FmtCollector } from '../collectors/fmt-collector.js';
import { escapeControls } from '../collectors/format-value.js';
import { TeeCollector } from '../collectors/tee-collector.js';
import type { Exporter } from '../export/exporter.js';
import { resolveConfig } from '../export/exporter-config.js';
import { OtlpHttpExporter } from '../export/otlp-http-exporter.js';
import { FileExporter } from '../export/otlp-json.js';
import { PipelineCollector, SPAN_STARTED } from '../pipeline/pipeline-collector.js';
import type { SpanRecord } from '../pipeline/telemetry-records.js';
import { compileAssemblyScript } from '../sandbox/compile-assemblyscript.js';
import type { RunOptions, RunResult } from '../sandbox/execution.js';
import { runQuickJS } from '../sandbox/quickjs-runner.js';
import { runWasm } from '../sandbox/wasm-runner.js';
import { StateFile } from '../state/state-file.js';
import { LEVELS, type Level } from '../../shared/records.js';

export interface RunCommandOptions {
  file: string;
  level: Level;
  timeoutMs: number;
  memoryMb: number | undefined;
  executionId: string | undefined;
  endpoint: string | undefined;
  out: string;
  state: string | undefined;
  entry: string;
  args: string[];
  quiet: boolean;
  /** A resumed step starts its own trace, linked to the workflow span (RunOptions.traceMode 'step'). */
  tracePerStep?: boolean;
}

/**
 * Exit codes: 0 the guest completed, 1 it failed (its telemetry was exported first), 3 export
 * failed. With `--state`, the state file is locked for the whole run: a second run on it, or a
 * file this sandtrace cannot read, is refused (thrown) before anything starts.
 */
export async function runCommand(o: RunCommandOptions, print: (line: string) => void): Promise<number> {
  if (o.state === undefined) return runWith(o, undefined, print);
  const stateFile = await StateFile.open(o.state);
  try {
    return await runWith(o, stateFile, print);
  } finally {
    await stateFile.release();
  }
}

async function runWith(o: RunCommandOptions, stateFile: StateFile | undefined, print: (line: string) => void): Promise<number> {
  const state = await stateFile?.read(); // before anything starts: a bad state file is refused first
  const file = resolve(o.file);
  const ext = extname(file);
  // With an endpoint (flag or OTEL_EXPORTER_OTLP_*), telemetry goes there; else to the local store.
  const endpoint = o.endpoint ?? (process.env.OTEL_EXPORTER_OTLP_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? '' : undefined);
  const exporter: Exporter = endpoint !== undefined ? new OtlpHttpExporter(endpoint === '' ? {} : { endpoint }) : new FileExporter(resolve(o.out), resolveConfig().resource);
  const destination = endpoint !== undefined ? (exporter as OtlpHttpExporter).config.urls.traces.replace(/\/v1\/traces$/, '') : resolve(o.out);
  const batching = new BatchingManager(exporter, { flushIntervalMs: 1000 });
  const counts = { spans: 0, events: 0, metrics: 0 };
  const handlers = batching.handlers();
  const pipeline = new PipelineCollector({
    level: o.level,
    handlers: {
      // Guest events arrive as span events inside spans and as log records outside them; the
      // host's own additions (exception events, span started records) are not guest events.
      onSpan: (s) => (counts.spans++, (counts.events += guestEvents(s)), handlers.onSpan!(s)),
      onLog: (l) => (l.body !== SPAN_STARTED && counts.events++, handlers.onLog!(l)),
      onMetric: (m) => (counts.metrics++, handlers.onMetric!(m)),
    },
  });
  const collector = o.quiet ? pipeline : new TeeCollector([new FmtCollector({ level: o.level, write: print }), pipeline]);

  const options: RunOptions = {
    collector,
    ...(o.tracePerStep === true && { traceMode: 'step' as const }),
    level: o.level,
    deadlineMs: o.timeoutMs,
    filename: o.file,
    ...(o.memoryMb !== undefined && { memoryLimitBytes: o.memoryMb * 1024 * 1024 }),
    ...(o.executionId !== undefined && { executionId: o.executionId }),
    ...(state && { state }),
    ...(stateFile !== undefined && { persist: true }),
    onProgress: (p) => process.stderr.write(`… ${(p.elapsedMs / 1000).toFixed(1)} s, ${p.records} records in ${p.frames} frame(s)\n`),
  };

  let result: RunResult;
  if (ext === '.js' || ext === '.mjs') result = await runQuickJS(await readFile(file, 'utf8'), options);
  else if (ext === '.wasm' || ext === '.ts') {
    const wasm = ext === '.ts' ? await compileAssemblyScript(file) : new Uint8Array(await readFile(file));
    result = await runWasm(wasm, { ...options, entry: o.entry, args: o.args.map((a) => (/^-?\d+(\.\d+)?$/.test(a) ? Number(a) : a)) });
  } else throw new Error(`cannot run '${o.file}': expected a .js, .mjs, .wasm or AssemblyScript .ts file`);

  if (stateFile !== undefined && result.state !== undefined) await stateFile.commit(result.state);
  await batching.shutdown();
  const stats = batching.getStats();
  const s = result.summary;
  const lost = (k: RecordKind) => stats.rejected[k] + Object.values(stats.dropped[k]).reduce((a, b) => a + b, 0);
  const exportFailed = lost('spans') + lost('logs') + lost('metrics') > 0;
  print('');
  // The cause and the completion value carry guest text (error messages, strings): escaped.
  print(`${result.ok ? '✔ completed' : `✖ ${escapeControls(String(s.cause))}`}${result.ok && result.value !== undefined ? ` → ${escapeControls(JSON.stringify(result.value))}` : ''}`);
  print(`  ${counts.spans} spans, ${counts.events} events, ${counts.metrics} metric points; ${s.records} records in ${s.frames} frame(s) in ${s.durationMs.toFixed(1)} ms`);
  print(`  dropped: ${s.rejected} rejected by the host (${s.limitDropped} over limits), ${s.guestDropped} by the guest, ${s.truncated} truncated frame(s)`);
  print(`  export: ${stats.exported.spans} spans, ${stats.exported.logs} logs, ${stats.exported.metrics} metric series to ${destination}${exportFailed ? ` — ${lost('spans')} spans, ${lost('logs')} logs, ${lost('metrics')} series lost` : ''}`);
  if (exportFailed) print(`  export lost: ${lossReasons(stats)}${stats.lastFailure ? `; last failure: ${describeFailure(stats.lastFailure)}` : ''}`);
  if (o.state !== undefined) {
    const resumed = state === undefined ? 'started fresh' : `resumed ${state.spans.spans.length} span(s)`;
    print(`  state: ${resumed}; ${result.state !== undefined ? `${s.persistedSpans} open span(s) committed to ${o.state}` : `not committed (${o.state} unchanged)`}`);
  }
  if (!result.ok) return 1;
  return exportFailed ? 3 : 0;
}

/** "rejected by the collector 2, retriesExhausted 4", over every kind. */
function lossReasons(stats: BatchingStats): string {
  const parts: string[] = [];
  const rejected = stats.rejected.spans + stats.rejected.logs + stats.rejected.metrics;
  if (rejected > 0) parts.push(`rejected by the collector ${rejected}`);
  const why = new Map<string, number>();
  for (const k of ['spans', 'logs', 'metrics'] as const) for (const [r, n] of Object.entries(stats.dropped[k])) if (n > 0) why.set(r, (why.get(r) ?? 0) + n);
  for (const [r, n] of why) parts.push(`${r} ${n}`);
  return parts.join(', ');
}

function describeFailure(f: ExportFailure): string {
  // The collector's message is remote text: escaped like guest text.
  return `${f.kind} ${f.reason}${f.status !== undefined ? ` (HTTP ${f.status})` : ''}: ${escapeControls(f.message)}`;
}

export function parseLevel(text: string): Level {
  if (!(LEVELS as readonly string[]).includes(text)) throw new Error(`unknown level '${text}'; use one of ${LEVELS.join(', ')}`);
  return text as Level;
}

/** Span events the guest wrote (not the exception event the pipeline adds for a guest error). */
function guestEvents(s: SpanRecord): number {
  let n = 0;
  for (const e of s.events) if (e.name !== 'exception') n++;
  return n + s.droppedEvents;
}
