/**
 * Runs JavaScript in QuickJS (quickjs-ng) with the sandtrace SDK installed, on a worker of a
 * SandboxPool, and wires its frames into a receiver on this thread.
 */
import { Execution, type RunOptions, type RunResult } from './execution.js';
import { runInPool } from './run-in-pool.js';
import { DEFAULT_QUICKJS_MEMORY, type HostFunction } from './sandbox-pool.js';
import { parseTraceParent } from '../traceparent.js';
import type { QuickJSJob } from './worker-messages.js';

export interface QuickJSRunOptions extends RunOptions {
  /** Evaluate as an ES module (default: when the source has top-level import/export). */
  module?: boolean;
  /** The SDK hands its buffer to the host once it holds this many bytes (default 32 KiB). */
  flushBytes?: number;
  /**
   * Functions the guest can call, installed as globals of these names. They run on the host's
   * thread; the guest waits for the answer (a returned promise is awaited). Arguments and
   * results are plain data (structured-clonable, and into the guest: primitives, bigints,
   * arrays, plain objects, Uint8Array as ArrayBuffer). A thrown error becomes an error in the
   * guest. The deadline and the run's signal hold while the guest waits.
   */
  hostFunctions?: Record<string, HostFunction>;
}

const DEFAULTS = { deadlineMs: 5_000, memoryLimitBytes: DEFAULT_QUICKJS_MEMORY, stackLimitBytes: 256 << 10, flushBytes: 32 << 10 };

/**
 * Runs `source` in QuickJS with `tracing` installed (global, and `import { tracing } from 'sandtrace'`).
 * The guest runs on a worker thread of `options.pool` (default: a shared pool), so the host's
 * event loop keeps running; the deadline, the signal and the memory limit hold even for a guest
 * inside a long native call.
 *
 * @example
 * const collector = new CaptureCollector();
 * const result = await runQuickJS(`tracing.inSpan('work', { n: 1 }, () => tracing.info('hi')); 42`, { collector, deadlineMs: 100 });
 * result.value;             // 42
 * result.summary.records;   // records received from the guest
 */
export async function runQuickJS(source: string, options: QuickJSRunOptions = {}): Promise<RunResult> {
  const filename = options.filename ?? 'guest.js';
  const hostFunctions = options.hostFunctions ?? {};
  if ('tracing' in hostFunctions) throw new TypeError(`a host function cannot be named 'tracing'`);
  const exec = new Execution('quickjs', filename, options);
  const traceparent = options.traceparent !== undefined && parseTraceParent(options.traceparent) !== undefined ? options.traceparent : undefined;
  const job: QuickJSJob = {
    kind: 'quickjs',
    source,
    filename,
    module: options.module ?? /^\s*(import|export)\b/m.test(source),
    settings: {
      minLevel: exec.minLevel,
      flushBytes: options.flushBytes ?? DEFAULTS.flushBytes,
      executionId: exec.executionId,
      ...(traceparent !== undefined && { traceparent }),
      carried: Execution.carried(options),
      firstSpanId: Execution.firstSpanId(options),
      ...(options.tenant !== undefined && { cacheScope: options.tenant }),
    },
    deadlineMs: options.deadlineMs ?? DEFAULTS.deadlineMs,
    memoryLimitBytes: options.memoryLimitBytes ?? DEFAULTS.memoryLimitBytes,
    stackLimitBytes: options.stackLimitBytes ?? DEFAULTS.stackLimitBytes,
    hostFunctions: Object.keys(hostFunctions),
    waitForRoom: options.backpressure !== undefined,
  };
  return runInPool(exec, job, options, hostFunctions);
}
