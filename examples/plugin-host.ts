/**
 * A plugin host: runs untrusted QuickJS plugins, each with a deadline and a memory limit, and
 * exports their telemetry to an OTLP collector (or, without one, to the local store).
 *
 *   npm run example:plugin-host -- [http://collector:4318]
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BatchingManager, FileExporter, OtlpHttpExporter, PipelineCollector, runQuickJS, type Exporter } from 'sandtrace';

export interface PluginReport {
  plugin: string;
  ok: boolean;
  outcome: string;
  spans: number;
}

/**
 * Runs every `.js` plugin in `folder`, each stopped after `deadlineMs`, and exports what they
 * traced; returns one line per plugin.
 */
export async function hostPlugins(folder: string, exporter: Exporter, deadlineMs = 100): Promise<PluginReport[]> {
  const batching = new BatchingManager(exporter, { maxBatchSize: 256 });
  let spans = 0;
  const handlers = batching.handlers();
  const collector = new PipelineCollector({ level: 'info', handlers: { ...handlers, onSpan: (s) => (spans++, handlers.onSpan!(s)) } });
  const reports: PluginReport[] = [];
  for (const file of (await readdir(folder)).filter((f) => f.endsWith('.js')).sort()) {
    const before = spans;
    const result = await runQuickJS(await readFile(join(folder, file), 'utf8'), {
      collector,
      filename: file,
      deadlineMs, // an untrusted plugin gets 100 ms …
      memoryLimitBytes: 16 << 20, // … and 16 MiB
      executionId: `plugin-host/${file}`,
    });
    reports.push({ plugin: file, ok: result.ok, outcome: result.ok ? `returned ${JSON.stringify(result.value)}` : (result.summary.cause ?? 'failed'), spans: spans - before });
  }
  await batching.shutdown();
  return reports;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const endpoint = process.argv[2];
  const exporter = endpoint ? new OtlpHttpExporter({ endpoint, serviceName: 'plugin-host' }) : new FileExporter('.sandtrace');
  const plugins = fileURLToPath(new URL('../../examples/guests', import.meta.url));
  for (const r of await hostPlugins(plugins, exporter)) console.log(`${r.ok ? '✔' : '✖'} ${r.plugin.padEnd(22)} ${r.outcome} (${r.spans} spans)`);
  console.log(`telemetry exported to ${endpoint ?? '.sandtrace/'}`);
}
