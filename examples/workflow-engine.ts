/**
 * A workflow engine: each step of a workflow runs as its own guest execution, maybe hours apart
 * and in another process. The engine keeps the guest's span state between steps in a state file
 * (locked while a step runs, committed atomically), commits it only when a step succeeds, and
 * retries a failed step from the last commit. The workflow is one trace: its span is exported
 * once, from the first step's start to the last step's end, and every step hangs under it.
 *
 *   npm run example:workflow-engine
 */
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { BatchingManager, FileExporter, PipelineCollector, StateFile, runQuickJS, type Collector, type Exporter } from 'sandtrace';

/** The workflow's steps, as guest code. Step 1 opens the span; the last one closes it. */
export const STEPS = [
  `const wf = tracing.span('order workflow', { order: 'A-1001', status: undefined });
   wf.inSpan(() => tracing.info('order received', { items: 2 }));`,
  // The stock service is down on the first attempt: the step throws after touching the workflow span.
  `const wf = tracing.resume('order workflow');
   wf.inSpan(() => tracing.inSpan('reserve stock', { sku: 'X-1' }, () => {
     if (attempt === 1) throw new Error('stock service unavailable');
     tracing.info('reserved');
   }));`,
  `const wf = tracing.resume('order workflow');
   wf.inSpan(() => { tracing.inSpan('charge card', { cents: 4999 }, () => {}); wf.record('status', 'paid'); });
   wf.close();`,
];

const MAX_ATTEMPTS = 3;

/** Runs every step with the state the previous one committed, retrying a failed step; returns one line per attempt. */
export async function runWorkflow(stateFile: string, collector: Collector): Promise<string[]> {
  const outcomes: string[] = [];
  await rm(stateFile, { force: true });
  for (let i = 0; i < STEPS.length; i++) {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      // Each attempt could run in another process: only the state file carries over.
      await using file = await StateFile.open(stateFile);
      const state = await file.read();
      const result = await runQuickJS(`const attempt = ${attempt};\n${STEPS[i]!}`, {
        collector,
        persist: true,
        executionId: `order-A-1001/step-${i + 1}#${attempt}`, // a new id per attempt: both attempts show
        ...(state && { state }),
      });
      if (result.ok) await file.commit(result.state!);
      outcomes.push(`step ${i + 1}, attempt ${attempt}: ${result.ok ? `ok, ${result.summary.persistedSpans} span(s) carried over` : `${result.summary.cause}; retried from the last commit`}`);
      if (result.ok) break;
    }
  }
  return outcomes;
}

/** The example on its own: the pipeline collector, batched into the local store (or any exporter). */
export async function runWorkflowTo(stateFile: string, exporter: Exporter): Promise<string[]> {
  const batching = new BatchingManager(exporter);
  try {
    return await runWorkflow(stateFile, new PipelineCollector({ handlers: batching.handlers() }));
  } finally {
    await batching.shutdown();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const line of await runWorkflowTo('.sandtrace-workflow-state.json', new FileExporter('.sandtrace'))) console.log(line);
  console.log('the workflow is one trace in .sandtrace/traces.jsonl; see it with: npx sandtrace view');
}
