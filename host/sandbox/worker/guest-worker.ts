/**
 * Entry point of a sandbox worker thread: takes one job at a time from the pool, runs it, and
 * answers with its frames and then one `done`. A failure of this code itself (not the guest's)
 * is reported as a fault and retires the worker.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Job, JobOutcome, WorkerInit } from '../worker-messages.js';
import { HostLink } from './host-link.js';
import { prepareNextRun, runQuickJSJob } from './quickjs-job.js';
import { runWasmJob } from './wasm-job.js';

const init = workerData as WorkerInit;
const link = new HostLink(init.control, init.out, init.replies);

async function run(job: Job): Promise<JobOutcome> {
  try {
    return job.kind === 'quickjs' ? await runQuickJSJob(job, link) : await runWasmJob(job, link);
  } catch (e) {
    const message = e instanceof Error ? (e.stack ?? e.message) : String(e);
    link.post({ type: 'fault', message });
    return { termination: { kind: 'exception', message: `sandbox failure: ${e instanceof Error ? e.message : String(e)}` }, retire: 'sandbox failure' };
  }
}

parentPort!.on('message', (job: Job) => {
  void run(job).then((outcome) => {
    try {
      link.done(outcome);
      if (job.kind === 'quickjs' && outcome.retire === undefined) setImmediate(prepareNextRun);
    } catch (e) {
      // The guest's value could not be cloned: report it without the value.
      if (!(e instanceof Error && e.name === 'DataCloneError')) throw e;
      const { value: _dropped, ...rest } = outcome;
      link.done({ ...rest, error: { name: 'DataCloneError', message: `the guest's result cannot be passed to the host: ${e.message}` } });
    }
  });
});
