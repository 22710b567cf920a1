/**
 * The host-thread half of a run, shared by both runners: hand the job to a pool, apply the
 * frames the worker posts as they arrive, report progress from a host timer (the host thread
 * is free while the guest runs), and finish the execution with the worker's outcome.
 */
import { FRAME_EXPANSION, type Execution, type RunOptions, type RunResult } from './execution.js';
import { defaultSandboxPool, type HostFunction } from './sandbox-pool.js';
import { ROOM_CALL, type Job, type JobOutcome } from './worker-messages.js';

export async function runInPool(exec: Execution, job: Job, options: RunOptions, hostFunctions: Record<string, HostFunction> | undefined): Promise<RunResult> {
  const pool = options.pool ?? defaultSandboxPool();
  let hostError: unknown;
  const progress = options.onProgress === undefined ? undefined : setInterval(() => exec.tick(), 200);
  const backpressure = options.backpressure;
  if (backpressure !== undefined) {
    // The guest waits in this call, at most the time its deadline leaves it (the worker counts it
    // from when the guest started, not from when the run was queued, and bounds the call too).
    const room: HostFunction = (bytes, remainingMs) => backpressure.whenRoom(Number(bytes) * FRAME_EXPANSION, Math.max(0, Math.min(Number(remainingMs), job.deadlineMs)));
    hostFunctions = { ...hostFunctions, [ROOM_CALL]: room };
  }
  let outcome: JobOutcome;
  try {
    outcome = await pool.execute(job, {
      onFrame: (bytes, guestDropped) => {
        try {
          if (bytes.length > 0) exec.ingest(bytes);
          if (guestDropped > 0) exec.guestDropped(guestDropped);
        } catch (e) {
          // Bad guest bytes never throw; this is a host-side failure, reported when the run ends.
          hostError ??= e;
        }
      },
      hostFunctions,
      deadlineMs: job.deadlineMs,
      signal: options.signal,
    });
  } catch (e) {
    // The pool refused the run (it is closed): the execution span opened for it is closed too.
    exec.finish({ kind: 'host_cancel', message: (e as Error).message });
    throw e;
  } finally {
    clearInterval(progress);
  }
  const { summary, state } = exec.finish(outcome.termination, outcome.invalidFrames);
  const result: RunResult = { ok: outcome.termination === undefined, summary };
  if ('value' in outcome) result.value = outcome.value;
  if (outcome.error !== undefined) result.error = outcome.error;
  if (state !== undefined) result.state = state;
  if (hostError !== undefined) throw hostError;
  return result;
}
