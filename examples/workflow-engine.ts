/**
 * A workflow engine: each step of a workflow runs as its own guest execution, maybe hours apart
 * and in another process. The engine keeps the guest's span state between steps (here, in a JSON
 * file), so the workflow's span is exported once, from the first step's start to the last step's end.
 *
 *   npm run example:workflow-engine
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { BatchingManager } from '../host/batching/batching-manager.js';
import type { Exporter } from '../host/export/exporter.js';
import { FileExporter } from '../host/export/otlp-json.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import type { PersistedExecution } from '../host/sandbox/execution.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';

/** The workflow's steps, as guest code. Step 1 opens the span; the last one closes it. */
export const STEPS = [
  `const wf = tracing.span('order workflow', { order: 'A-1001', status: undefined });
   wf.inSpan(() => tracing.info('order received', { items: 2 }));`,
  `const wf = tracing.resume('order workflow');
   wf.inSpan(() => tracing.inSpan('reserve stock', { sku: 'X-1' }, () => tracing.info('reserved')));`,
  `const wf = tracing.resume('order workflow');
   wf.inSpan(() => { tracing.inSpan('charge card', { cents: 4999 }, () => {}); wf.record('status', 'paid'); });
   wf.close();`,
];

/** Runs every step with the state the previous one committed; returns each step's outcome. */
export async function runWorkflow(stateFile: string, exporter: Exporter): Promise<string[]> {
  const outcomes: string[] = [];
  await rm(stateFile, { force: true });
  for (let i = 0; i < STEPS.length; i++) {
    // Each step could run in another process: only the state file carries over.
    const batching = new BatchingManager(exporter);
    const collector = new PipelineCollector({ handlers: batching.handlers() });
    let state: PersistedExecution | undefined;
    try {
      state = JSON.parse(await readFile(stateFile, 'utf8')) as PersistedExecution;
    } catch {
      state = undefined;
    }
    const result = await runQuickJS(STEPS[i]!, { collector, persist: true, executionId: `order-A-1001/step-${i + 1}`, ...(state && { state }) });
    if (result.state !== undefined) await writeFile(stateFile, JSON.stringify(result.state));
    await batching.flushAll();
    outcomes.push(`step ${i + 1}: ${result.ok ? 'ok' : result.summary.cause}, ${result.summary.persistedSpans} span(s) carried over`);
  }
  await exporter.shutdown();
  return outcomes;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of await runWorkflow('.sandtrace-workflow-state.json', new FileExporter('.sandtrace'))) console.log(line);
  console.log('the workflow span is in .sandtrace/traces.jsonl; see it with: npx sandtrace view');
}
