/**
 * `npm start`: real guests in real sandboxes, their traces rebuilt on the host and printed.
 *
 *   1. a QuickJS plugin (spans, events, a hot-path event site, a metric);
 *   2. an AssemblyScript plugin, compiled here with the project's own compiler;
 *   3. two plugins that die in the middle of a span: one stuck past its deadline, one trapping;
 *   4. a two-step workflow whose span is committed after step 1 (as JSON, as an engine would
 *      store it) and resumed and closed by step 2.
 *
 * Everything also goes to the local store, .sandtrace/ (OTLP JSON lines), as `sandtrace run`
 * does when no collector is configured.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { BatchingManager } from '../host/batching/batching-manager.js';
import { FmtCollector } from '../host/collectors/fmt-collector.js';
import { TeeCollector } from '../host/collectors/tee-collector.js';
import { resolveConfig } from '../host/export/exporter-config.js';
import { FileExporter } from '../host/export/otlp-json.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import { compileAssemblyScript } from '../host/sandbox/compile-assemblyscript.js';
import type { PersistedExecution, RunResult } from '../host/sandbox/execution.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { runWasm } from '../host/sandbox/wasm-runner.js';

const here = (path: string) => fileURLToPath(new URL(`../../examples/${path}`, import.meta.url));
const source = (name: string) => readFile(here(`guests/${name}`), 'utf8');
const store = new FileExporter('.sandtrace', resolveConfig({ serviceName: 'sandtrace-demo' }).resource);
const batching = new BatchingManager(store);
const collector = new TeeCollector([new FmtCollector({ level: 'info' }), new PipelineCollector({ level: 'info', handlers: batching.handlers() })]);

function section(title: string): void {
  process.stdout.write(`\n── ${title} ${'─'.repeat(Math.max(0, 66 - title.length))}\n`);
}

function summary(r: RunResult): void {
  const s = r.summary;
  const outcome = r.ok ? `returned ${JSON.stringify(r.value)}` : `died: ${s.cause}`;
  console.log(`   ${outcome}; ${s.records} records in ${s.frames} frame(s), ${s.rejected} rejected, ${s.forceClosed} span(s) force-closed, ${s.durationMs.toFixed(1)} ms`);
}

section('1. a QuickJS plugin');
summary(await runQuickJS(await source('plugin.js'), { collector, filename: 'plugin.js', executionId: 'demo-quickjs' }));

section('2. an AssemblyScript plugin');
const wasm = await compileAssemblyScript(here('guests-as/plugin.ts'));
summary(await runWasm(wasm, { entry: 'run', args: [100_000], collector, filename: 'plugin.wasm', executionId: 'demo-wasm' }));

section('3. plugins that die in the middle of a span');
summary(await runQuickJS(await source('crashing-plugin.js'), { collector, filename: 'crashing-plugin.js', deadlineMs: 100, executionId: 'demo-deadline' }));
summary(await runWasm(wasm, { entry: 'crash', collector, filename: 'plugin.wasm', executionId: 'demo-trap' }));

section('4. a workflow whose span outlives one execution');
const step = await source('workflow-step.js');
const first = await runQuickJS(step, { collector, filename: 'workflow-step.js', persist: true, executionId: 'order-A-1001/step-1' });
summary(first);
const stored = JSON.stringify(first.state); // what a workflow engine would keep between steps
console.log(`   committed ${first.summary.persistedSpans} open span(s) as ${stored.length} bytes of JSON`);
const state = JSON.parse(stored) as PersistedExecution;
summary(await runQuickJS(step, { collector, filename: 'workflow-step.js', state, persist: true, executionId: 'order-A-1001/step-2' }));

await batching.shutdown();
const stats = batching.getStats();
console.log(`\nWritten to the local store .sandtrace/: ${stats.exported.spans} spans, ${stats.exported.logs} logs, ${stats.exported.metrics} metric series (OTLP JSON lines).`);
