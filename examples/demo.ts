/**
 * `npm start`: real guests in real sandboxes, their traces rebuilt on the host and printed.
 *
 *   1. a QuickJS plugin (spans, events, a hot-path event site, a metric);
 *   2. an AssemblyScript plugin, compiled here with the project's own compiler;
 *   3. two plugins that die in the middle of a span: one stuck past its deadline, one trapping;
 *   4. a three-step workflow whose span is committed after each step to a state file (as an
 *      engine would keep it), with a step that fails once and is retried from the last commit:
 *      one trace, the workflow span exported once.
 *
 * Everything also goes to the local store, .sandtrace/ (OTLP JSON lines), as `sandtrace run`
 * does when no collector is configured.
 */
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BatchingManager, FileExporter, FmtCollector, PipelineCollector, TeeCollector, compileAssemblyScript, resolveConfig, runQuickJS, runWasm, type RunResult } from 'sandtrace';
import { runWorkflow } from './workflow-engine.js';

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

section('4. a workflow whose span outlives its executions (one step fails and is retried)');
const stateFile = join(tmpdir(), `sandtrace-demo-workflow-${process.pid}.json`);
for (const line of await runWorkflow(stateFile, collector)) console.log(`   ${line}`);
await rm(stateFile, { force: true });

await batching.shutdown();
const stats = batching.getStats();
console.log(`\nWritten to the local store .sandtrace/: ${stats.exported.spans} spans, ${stats.exported.logs} logs, ${stats.exported.metrics} metric series (OTLP JSON lines).`);
