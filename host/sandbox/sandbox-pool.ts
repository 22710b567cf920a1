/**
 * A pool of worker threads that run guests off the host's event loop.
 *
 * The host thread keeps the receiver, the collectors and export; a worker only runs the guest
 * and posts its frames back. That split is what makes the limits hold: a guest stuck in a long
 * native call, or a WebAssembly guest that catches the host's stop, is asked to stop first
 * (the stop word the interrupt handler and the imports read) and, if it has not returned within
 * a short grace, its worker is terminated and replaced. Frames it posted before are applied.
 */
import { availableParallelism } from 'node:os';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { packageUrl } from '../package-root.js';
import { PacedInbox } from './paced-inbox.js';
import type { TerminationCause } from '../receiver/termination.js';
import { CallState, Control, CONTROL_BYTES, monotonicMs, STARTED_AT_BYTE, StopCode, type HostCallReply, type Job, type JobOutcome, type QuickJSJob, type WorkerInit, type WorkerMessage } from './worker-messages.js';

/** A function the host offers a guest; it runs on the host thread and may be async. */
export type HostFunction = (...args: any[]) => unknown;

export interface SandboxPoolOptions {
  /** Worker threads (default: the number of cores). */
  size?: number;
  /**
   * How long a guest may go on after it was asked to stop (deadline, cancel) before its worker is
   * terminated (default 100 ms). The interrupt handler stops a spinning QuickJS guest within
   * microseconds; the grace is for a guest inside one long native call, or one that catches.
   */
  stopGraceMs?: number;
  /** V8 heap cap of each worker's own JavaScript, in MiB (default 64). Guest memory is separate. */
  workerHeapMb?: number;
}

/** What the pool reports about itself. */
export interface SandboxPoolStats {
  /** Workers alive now, and how many of them run a guest. */
  workers: number;
  busy: number;
  /** Runs waiting for a free worker. */
  queued: number;
  /** Workers started, terminated because a guest would not stop, and retired after a run. */
  started: number;
  terminated: number;
  retired: number;
  /** Failures of a worker itself (not of a guest), with the last message. */
  faults: number;
  lastFault?: string;
}

/** Thrown by a run submitted to a pool that is closing or closed. */
export class PoolClosedError extends Error {
  override name = 'PoolClosedError';
}

/** What a runner gives the pool for one job. */
export interface JobHandlers {
  /** A frame the guest handed over; `bytes` is the runner's to keep. */
  onFrame(bytes: Uint8Array, guestDropped: number): void;
  hostFunctions?: Record<string, HostFunction>;
  deadlineMs: number;
  signal?: AbortSignal | undefined;
}

interface ActiveJob {
  handlers: JobHandlers;
  resolve(outcome: JobOutcome): void;
  stop: StopCode;
  deadlineTimer?: NodeJS.Timeout;
  graceTimer?: NodeJS.Timeout;
  onAbort?: () => void;
  settled: boolean;
}

interface Slot {
  worker: Worker;
  control: Int32Array;
  startedAt: Float64Array;
  replies: MessagePort;
  out: MessagePort;
  /** What the worker posted, applied in order, a few ms at a time. */
  inbox: PacedInbox<WorkerMessage>;
  active?: ActiveJob;
  /** No longer takes jobs. */
  gone: boolean;
  /** The pool itself terminates it: its exit is expected. */
  exiting: boolean;
}

interface Pending {
  job: Job;
  handlers: JobHandlers;
  resolve(outcome: JobOutcome): void;
  onAbort?: () => void;
}

/**
 * A worker starts from this one line, which imports its entry, rather than from the entry's file:
 * Node refuses to start a worker from a file when the host was started with `--input-type`
 * (`node --input-type=module -e …`), and the worker inherits the host's options as they are.
 */
const WORKER_BOOT = `import(${JSON.stringify(packageUrl('dist/host/sandbox/worker/guest-worker.js').href)})`;
/** How much longer than the grace a guest that has returned may take to drain and report. */
const RETURNED_GRACE_MS = 1_000;
/** The QuickJS memory limit a run gets by default (quickjs-runner.ts uses the same). */
export const DEFAULT_QUICKJS_MEMORY = 64 << 20;
const CANCELLED: TerminationCause = { kind: 'host_cancel', message: 'cancelled through the run signal' };

/**
 * Runs guests in worker threads. Create one per host (or use the default one that `runQuickJS`
 * and `runWasm` share), pass it as `pool` to runs, and close it when the host shuts down. Idle
 * workers do not keep the process alive.
 *
 * @example
 * const pool = new SandboxPool({ size: 4 });
 * const result = await runQuickJS(source, { pool, deadlineMs: 200 });
 * await pool.close();
 */
export class SandboxPool {
  readonly size: number;
  private readonly graceMs: number;
  private readonly heapMb: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private closing: Promise<void> | undefined;
  private readonly counts = { started: 0, terminated: 0, retired: 0, faults: 0 };
  private lastFault: string | undefined;

  constructor(options: SandboxPoolOptions = {}) {
    this.size = Math.max(1, Math.floor(options.size ?? availableParallelism()));
    this.graceMs = options.stopGraceMs ?? 100;
    this.heapMb = options.workerHeapMb ?? 64;
  }

  /** Runs one job on a free worker (waiting for one if all are busy). Never rejects for guest behaviour. */
  execute(job: Job, handlers: JobHandlers): Promise<JobOutcome> {
    if (this.closing !== undefined) return Promise.reject(new PoolClosedError('the sandbox pool is closed'));
    if (handlers.signal?.aborted) return Promise.resolve({ termination: CANCELLED });
    return new Promise((resolve) => {
      const pending: Pending = { job, handlers, resolve };
      if (handlers.signal !== undefined) {
        // Cancelled while still queued: settle without running.
        pending.onAbort = () => {
          const i = this.queue.indexOf(pending);
          if (i >= 0) {
            this.queue.splice(i, 1);
            resolve({ termination: CANCELLED });
          }
        };
        handlers.signal.addEventListener('abort', pending.onAbort, { once: true });
      }
      this.queue.push(pending);
      this.dispatch();
    });
  }

  /**
   * Starts `count` workers ahead of time and has each make its QuickJS engine (for guests with
   * that memory limit: an engine is made per limit) and a fresh context, so the first runs do not
   * pay for it (a cold worker takes 0.1–0.3 s before its first guest). Settles when they are
   * warm (a pool closed meanwhile refuses the warm-ups it had not started yet).
   */
  async warmUp(count = this.size, options: { memoryLimitBytes?: number } = {}): Promise<void> {
    const job: QuickJSJob = {
      kind: 'quickjs',
      source: '',
      filename: 'warm-up.js',
      module: false,
      settings: { minLevel: 4, flushBytes: 1 << 15, executionId: 'warm-up', carried: [], firstSpanId: 1 },
      deadlineMs: 60_000,
      memoryLimitBytes: options.memoryLimitBytes ?? DEFAULT_QUICKJS_MEMORY,
      stackLimitBytes: 256 << 10,
      hostFunctions: [],
      waitForRoom: false,
    };
    const runs = Array.from({ length: Math.min(count, this.size) }, () => this.execute(job, { onFrame: () => {}, deadlineMs: job.deadlineMs }));
    for (const run of runs) {
      try {
        await run;
      } catch (e) {
        if (!(e instanceof PoolClosedError)) throw e;
      }
    }
  }

  get stats(): SandboxPoolStats {
    const busy = this.slots.filter((s) => s.active !== undefined).length;
    return { workers: this.slots.length, busy, queued: this.queue.length, ...this.counts, ...(this.lastFault !== undefined && { lastFault: this.lastFault }) };
  }

  /**
   * Stops taking runs, waits for those queued and running (each bounded by its deadline), then
   * terminates every worker. With `cancel: true`, runs in flight and queued are cancelled first
   * (they settle with `host_cancel`). Idempotent.
   */
  close(options: { cancel?: boolean } = {}): Promise<void> {
    if (this.closing === undefined) this.closing = this.shutdown(options.cancel === true);
    else if (options.cancel === true) this.cancelAll();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private async shutdown(cancel: boolean): Promise<void> {
    if (cancel) this.cancelAll();
    while (this.queue.length > 0 || this.slots.some((s) => s.active !== undefined)) {
      await new Promise<void>((r) => (this.drained = r));
    }
    await Promise.all([...this.slots.splice(0).map((s) => this.terminate(s)), ...this.retiring]);
  }

  private drained: (() => void) | undefined;
  /** Workers being terminated after their run retired them. */
  private readonly retiring = new Set<Promise<void>>();

  private cancelAll(): void {
    for (const p of this.queue.splice(0)) this.settleQueued(p, CANCELLED);
    for (const s of this.slots) if (s.active !== undefined) this.requestStop(s, StopCode.HOST_CANCEL);
  }

  private settleQueued(p: Pending, termination: TerminationCause): void {
    if (p.onAbort !== undefined) p.handlers.signal?.removeEventListener('abort', p.onAbort);
    p.resolve({ termination });
  }

  // ---- workers --------------------------------------------------------------------------------

  private spawn(): Slot {
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    const replies = new MessageChannel();
    const out = new MessageChannel();
    const init: WorkerInit = { control, replies: replies.port2, out: out.port2 };
    const worker = new Worker(WORKER_BOOT, {
      eval: true,
      workerData: init,
      transferList: [replies.port2, out.port2],
      resourceLimits: { maxOldGenerationSizeMb: this.heapMb, maxYoungGenerationSizeMb: 16 },
      stdout: false,
      stderr: false,
    });
    const slot: Slot = { worker, control: new Int32Array(control), startedAt: new Float64Array(control, STARTED_AT_BYTE, 1), replies: replies.port1, out: out.port1, inbox: new PacedInbox((m) => this.onMessage(slot, m)), gone: false, exiting: false };
    out.port1.on('message', (m: WorkerMessage) => slot.inbox.push(m));
    worker.on('error', (e) => this.onWorkerGone(slot, `the sandbox worker failed: ${e.message}`, (e as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY'));
    worker.on('exit', (code) => this.onWorkerGone(slot, `the sandbox worker exited (code ${code})`, false));
    this.slots.push(slot);
    this.counts.started++;
    return slot;
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => s.active === undefined && !s.gone);
      if (slot === undefined) {
        if (this.slots.length >= this.size) return;
        slot = this.spawn();
      }
      const p = this.queue.shift()!;
      if (p.onAbort !== undefined) p.handlers.signal?.removeEventListener('abort', p.onAbort);
      this.start(slot, p);
    }
  }

  private start(slot: Slot, p: Pending): void {
    Atomics.store(slot.control, Control.STOP, StopCode.NONE);
    Atomics.store(slot.control, Control.CALL, CallState.WAITING);
    slot.startedAt[0] = 0;
    Atomics.store(slot.control, Control.RETURNED, 0);
    try {
      slot.worker.postMessage(p.job);
    } catch (e) {
      // The job cannot cross to a worker (an argument that cannot be cloned): the run ends here,
      // and the worker, which never saw it, stays free.
      p.resolve({ termination: { kind: 'exception', message: `the run could not be sent to a sandbox worker: ${e instanceof Error ? e.message : String(e)}` } });
      return;
    }
    const active: ActiveJob = { handlers: p.handlers, resolve: p.resolve, stop: StopCode.NONE, settled: false };
    slot.active = active;
    slot.worker.ref();
    slot.out.ref();
    this.armDeadline(slot, active, p.handlers.deadlineMs);
    if (p.handlers.signal !== undefined) {
      active.onAbort = () => this.requestStop(slot, StopCode.HOST_CANCEL);
      p.handlers.signal.addEventListener('abort', active.onAbort, { once: true });
    }
  }

  /**
   * The deadline counts from when the guest started (the worker writes that time), so the timer
   * fires once the budget has passed from dispatch and re-arms for what is left, if anything.
   */
  private armDeadline(slot: Slot, active: ActiveJob, delayMs: number): void {
    active.deadlineTimer = setTimeout(() => {
      if (slot.active !== active) return;
      const started = slot.startedAt[0]!;
      const left = started === 0 ? active.handlers.deadlineMs : started + active.handlers.deadlineMs - monotonicMs();
      if (left > 1) this.armDeadline(slot, active, left);
      else this.requestStop(slot, StopCode.DEADLINE);
    }, delayMs);
  }

  /** Asks the guest to stop; terminates its worker if it has not returned within the grace. */
  private requestStop(slot: Slot, code: StopCode): void {
    const active = slot.active;
    if (active === undefined || active.stop !== StopCode.NONE) return;
    active.stop = code;
    Atomics.store(slot.control, Control.STOP, code);
    // A guest waiting on a host call wakes up and is told no.
    Atomics.store(slot.control, Control.CALL, CallState.ABANDONED);
    Atomics.notify(slot.control, Control.CALL);
    this.armGrace(slot, active);
  }

  /**
   * The grace counts from the stop request or from the guest's start, whichever is later: a
   * worker still starting sees the stop as its guest begins, and must get the whole grace then.
   * A guest that has returned is not killed while its worker drains and reports (a loaded machine
   * can make that slow), up to RETURNED_GRACE_MS more: killing it would lose what it buffered;
   * nor while the host has not yet applied what its worker posted (the inbox is not empty).
   */
  private armGrace(slot: Slot, active: ActiveJob, delayMs = this.graceMs, extendedMs = 0): void {
    active.graceTimer = setTimeout(() => {
      if (slot.active !== active) return;
      const started = slot.startedAt[0]!;
      const sinceStart = monotonicMs() - started;
      if (started === 0) this.armGrace(slot, active);
      else if (sinceStart < this.graceMs) this.armGrace(slot, active, this.graceMs - sinceStart, extendedMs);
      else if (Atomics.load(slot.control, Control.RETURNED) === 1 && (extendedMs < RETURNED_GRACE_MS || slot.inbox.length > 0)) {
        // While what it posted still waits in the inbox, the delay is the host's, not the guest's:
        // killing the worker would only apply that backlog at once and cost a new worker.
        this.armGrace(slot, active, this.graceMs, extendedMs + this.graceMs);
      }
      else void this.kill(slot);
    }, delayMs);
  }

  /** The guest did not stop: terminate its worker, apply what it had posted, settle the run. */
  private async kill(slot: Slot): Promise<void> {
    const active = slot.active;
    if (active === undefined || active.settled) return;
    slot.gone = true;
    slot.exiting = true;
    this.counts.terminated++;
    await slot.worker.terminate();
    this.drainPosted(slot); // frames posted before the end are still in the port
    slot.out.close();
    slot.replies.close();
    if (active.settled) return; // the guest's own `done` was among them
    const cause: TerminationCause =
      active.stop === StopCode.HOST_CANCEL
        ? { kind: 'host_cancel', message: `cancelled through the run signal; the guest did not stop within ${this.graceMs} ms and its worker was terminated` }
        : { kind: 'deadline', message: `no return within ${active.handlers.deadlineMs} ms; the guest did not stop within ${this.graceMs} ms and its worker was terminated` };
    this.settle(slot, { termination: cause });
  }

  /** Applies what the worker posted: what is waiting in its inbox, then what is left in its port. */
  private drainPosted(slot: Slot): void {
    slot.inbox.flush();
    for (let m = receiveMessageOnPort(slot.out); m !== undefined; m = receiveMessageOnPort(slot.out)) this.onMessage(slot, m.message as WorkerMessage);
  }

  private onMessage(slot: Slot, m: WorkerMessage): void {
    const active = slot.active;
    switch (m.type) {
      case 'frame':
        if (active !== undefined && !active.settled) active.handlers.onFrame(new Uint8Array(m.bytes), m.guestDropped);
        return;
      case 'call':
        // A guest already asked to stop, or whose worker is being terminated, gets no host call run for it.
        if (active !== undefined && !active.settled && active.stop === StopCode.NONE && !slot.exiting) void this.answerCall(slot, active, m.seq, m.name, m.args);
        return;
      case 'fault':
        this.counts.faults++;
        this.lastFault = m.message;
        return;
      case 'done':
        if (active === undefined || active.settled) return;
        if (m.frame !== undefined) active.handlers.onFrame(new Uint8Array(m.frame), m.guestDropped ?? 0);
        if (m.outcome.retire !== undefined) {
          this.counts.retired++;
          slot.gone = true;
          const retired: Promise<void> = this.terminate(slot)
            .catch((e: unknown) => {
              this.counts.faults++;
              this.lastFault = `retiring a worker: ${e instanceof Error ? e.message : String(e)}`;
            })
            .finally(() => this.retiring.delete(retired));
          this.retiring.add(retired); // close() waits for it
        }
        this.settle(slot, m.outcome);
    }
  }

  private async answerCall(slot: Slot, active: ActiveJob, seq: number, name: string, args: unknown[]): Promise<void> {
    const fn = active.handlers.hostFunctions?.[name];
    let reply: HostCallReply;
    try {
      if (fn === undefined) throw new TypeError(`no host function '${name}'`);
      reply = { seq, value: await fn(...args) };
    } catch (e) {
      // The host function's failure is the guest's to handle: it becomes an error in the guest.
      reply = { seq, error: e instanceof Error ? `${e.name}: ${e.message}` : describeThrown(e) };
    }
    if (slot.active !== active || active.settled || active.stop !== StopCode.NONE) return; // too late: the guest was stopped
    try {
      slot.replies.postMessage(reply);
    } catch (e) {
      // The value cannot be cloned (a function, say): tell the guest why instead. Anything else is
      // a failure of the pool itself: counted as a fault, and the guest still gets an answer.
      const message = e instanceof Error ? e.message : String(e);
      if (!(e instanceof Error && e.name === 'DataCloneError')) {
        this.counts.faults++;
        this.lastFault = `answering host call '${name}': ${message}`;
      }
      slot.replies.postMessage({ seq, error: `the host function '${name}' returned a value that cannot cross to the guest: ${message}` });
    }
    Atomics.store(slot.control, Control.CALL, CallState.ANSWERED);
    Atomics.notify(slot.control, Control.CALL);
  }

  private settle(slot: Slot, outcome: JobOutcome): void {
    const active = slot.active!;
    active.settled = true;
    clearTimeout(active.deadlineTimer);
    clearTimeout(active.graceTimer);
    if (active.onAbort !== undefined) active.handlers.signal?.removeEventListener('abort', active.onAbort);
    slot.active = undefined;
    if (slot.gone) this.remove(slot);
    else this.idle(slot);
    active.resolve(outcome);
    this.dispatch();
    if (this.drained !== undefined && this.queue.length === 0 && !this.slots.some((s) => s.active !== undefined)) {
      const d = this.drained;
      this.drained = undefined;
      d();
    }
  }

  /** An idle worker does not keep the process alive. */
  private idle(slot: Slot): void {
    slot.worker.unref();
    slot.out.unref();
  }

  private remove(slot: Slot): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
  }

  private async terminate(slot: Slot): Promise<void> {
    slot.gone = true;
    slot.exiting = true;
    this.remove(slot);
    await slot.worker.terminate();
    slot.out.close();
    slot.replies.close();
  }

  /** The worker died on its own (its V8 heap limit, a bug): settle its run and count it. */
  private onWorkerGone(slot: Slot, message: string, outOfMemory: boolean): void {
    if (slot.exiting) return;
    slot.gone = true;
    slot.exiting = true;
    const active = slot.active;
    if (active === undefined || active.settled) {
      this.remove(slot);
      return;
    }
    this.drainPosted(slot);
    if (active.settled) return;
    this.counts.faults++;
    this.lastFault = message;
    this.settle(slot, { termination: outOfMemory ? { kind: 'out_of_memory', message } : { kind: 'exception', message } });
  }
}

/** What a host function threw that is not an Error, as text (`String()` itself can throw). */
function describeThrown(e: unknown): string {
  try {
    return String(e);
  } catch (conversion) {
    if (!(conversion instanceof TypeError)) throw conversion;
    return `a thrown ${typeof e} that has no text`;
  }
}

let shared: SandboxPool | undefined;

/** The pool `runQuickJS` and `runWasm` use when no `pool` is given (created on first use). */
export function defaultSandboxPool(): SandboxPool {
  return (shared ??= new SandboxPool());
}
