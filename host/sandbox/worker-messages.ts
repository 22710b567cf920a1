/**
 * The contract between the host thread and a sandbox worker: the jobs the host sends, the
 * messages a worker sends back, and the shared control words both read. Nothing else crosses.
 *
 * Data moves one way: a worker posts frames (transferred, never copied twice) and, last, one
 * `done`. Control moves the other way only through the control words (stop, host-call state)
 * and the host-call reply port.
 */
import type { MessagePort } from 'node:worker_threads';
import type { TerminationCause } from '../receiver/termination.js';

/** Index of each 32-bit control word in the worker's shared control buffer. */
export const Control = {
  /** 0 while the guest may run; a StopCode once the host wants it stopped. */
  STOP: 0,
  /** Host-call handshake: CallState. */
  CALL: 1,
  /** 1 once the guest has returned (or was stopped) and the worker only drains and reports. */
  RETURNED: 4,
} as const;
/** Bytes of the control buffer: words 0–1, the float64 at STARTED_AT_BYTE, then word 4 (RETURNED). */
export const CONTROL_BYTES = 24;
/**
 * Byte offset of a float64: the time in ms on the process-wide monotonic clock (`monotonicMs()`)
 * at which the guest started, 0 before. The deadline counts from it, not from the dispatch, so
 * a cold worker's start-up is not charged to the guest.
 */
export const STARTED_AT_BYTE = 8;

/**
 * Milliseconds on the process's monotonic clock, the same in every thread (each thread's
 * `performance.timeOrigin` is a separate wall-clock reading, which a clock step can skew).
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Why the host asks a guest to stop (written into Control.STOP). */
export const StopCode = { NONE: 0, DEADLINE: 1, HOST_CANCEL: 2 } as const;
export type StopCode = (typeof StopCode)[keyof typeof StopCode];

/** State of a synchronous host call (Control.CALL). */
export const CallState = { WAITING: 0, ANSWERED: 1, ABANDONED: 2 } as const;

/** What the guest SDK needs before guest code runs (mirrors the SDK's GuestConfig, minus flush). */
export interface GuestSettings {
  minLevel: number;
  flushBytes: number;
  executionId: string;
  traceparent?: string;
  carried: Array<{ id: number; name: string; target: string; fields: string[] }>;
  /** The first span id the guest may allocate (the host owns span ids across a workflow's executions). */
  firstSpanId: number;
  /** Runs share the SDK's caches of encoded strings only within one scope (the run's `tenant`). */
  cacheScope?: string;
}

export interface QuickJSJob {
  kind: 'quickjs';
  source: string;
  filename: string;
  module: boolean;
  settings: GuestSettings;
  deadlineMs: number;
  memoryLimitBytes: number;
  stackLimitBytes: number;
  /** Names of host functions to install as guest globals (they run on the host thread). */
  hostFunctions: string[];
  /** Before each frame it hands over, the guest waits for room on the host (see RunOptions.backpressure). */
  waitForRoom: boolean;
}

/** The host call a guest makes before a frame when the run has backpressure (args: the frame's bytes). */
export const ROOM_CALL = 'sandtrace.room';

/** How the worker provides the guest's memory: created here with this cap, or the module's own. */
export type WasmMemoryPlan =
  | { kind: 'import'; module: string; field: string; initial: number; maximum: number }
  | { kind: 'own'; maximum: number };

export interface WasmJob {
  kind: 'wasm';
  module: WebAssembly.Module;
  memory: WasmMemoryPlan;
  entry: string;
  args: Array<number | bigint | boolean | string>;
  minLevel: number;
  deadlineMs: number;
  /** Imports answered by host functions: [module, name]. */
  hostImports: Array<[string, string]>;
  /** Before each frame it hands over, the guest waits for room on the host (see RunOptions.backpressure). */
  waitForRoom: boolean;
  /** Unix ns of the guest's time 0 (the guest's clock import counts from it). */
  clockOriginNs: bigint;
  /** The first span id the guest may allocate, written into its state block at +24 (when it has that field). */
  firstSpanId: number;
  /** Spans carried over from the persisted state: what `sandtrace.resume(name, target)` looks up. */
  carried: Array<{ id: number; name: string; target: string }>;
}

export type Job = QuickJSJob | WasmJob;

/** A guest failure or result, as plain data (structured-clonable). */
export interface GuestError {
  name: string;
  message: string;
  stack?: string;
}

/** The last message of a job. */
export interface JobOutcome {
  /** Undefined for a normal end. */
  termination?: TerminationCause;
  value?: unknown;
  error?: GuestError;
  /** The worker's engine should not serve another guest (it hit its memory cap, aborted, …). */
  retire?: string;
  /** Frames the guest handed over with a pointer or length outside its buffer, not applied. */
  invalidFrames?: number;
}

export type WorkerMessage =
  | { type: 'frame'; bytes: ArrayBuffer; guestDropped: number }
  | { type: 'call'; seq: number; name: string; args: unknown[] }
  /** The job's last frame rides along (one thread wake-up less per run: they cost 0.1–0.2 ms here). */
  | { type: 'done'; outcome: JobOutcome; frame?: ArrayBuffer; guestDropped?: number }
  /** A failure of the worker's own code (not the guest's): reported and counted by the pool. */
  | { type: 'fault'; message: string };

export type HostCallReply = { seq: number; value: unknown } | { seq: number; error: string };

/** What a worker is started with (workerData). */
export interface WorkerInit {
  control: SharedArrayBuffer;
  /** Host-call replies; read synchronously with receiveMessageOnPort while the guest waits. */
  replies: MessagePort;
  /** Worker → host messages (a dedicated port, so the host can drain it after a terminate). */
  out: MessagePort;
}
