/**
 * The worker's side of the seam with the host thread: post frames, read the stop word, and make
 * synchronous host calls (the guest waits with `Atomics.wait` while the host runs the function).
 */
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { CallState, Control, monotonicMs, STARTED_AT_BYTE, StopCode, type HostCallReply, type JobOutcome, type WorkerMessage } from '../worker-messages.js';

/** The answer to a host call, as the guest sees it. */
export type CallResult = { value: unknown } | { error: string } | { stopped: true };

export class HostLink {
  private seq = 0;
  private readonly control: Int32Array;
  private readonly startedAt: Float64Array;

  constructor(
    control: SharedArrayBuffer,
    private readonly out: MessagePort,
    private readonly replies: MessagePort,
  ) {
    this.control = new Int32Array(control);
    this.startedAt = new Float64Array(control, STARTED_AT_BYTE, 1);
  }

  /** Marks the moment the guest starts: the host's deadline counts from here. Returns `performance.now()`. */
  guestStarting(): number {
    const now = performance.now();
    this.startedAt[0] = monotonicMs();
    Atomics.store(this.control, Control.RETURNED, 0);
    return now;
  }

  /** The guest no longer runs: what is left is draining its buffer, which the host lets finish. */
  guestReturned(): void {
    Atomics.store(this.control, Control.RETURNED, 1);
  }

  /** Nonzero once the host wants the guest stopped (a StopCode). */
  stopCode(): StopCode {
    return Atomics.load(this.control, Control.STOP) as StopCode;
  }

  private last: { frame: ArrayBuffer; guestDropped: number } | undefined;

  /** Copies a frame out of guest memory and hands the copy to the host (transferred, not cloned). */
  postFrame(bytes: Uint8Array, guestDropped = 0): void {
    if (bytes.length === 0 && guestDropped === 0) return;
    const copy = bytes.slice();
    this.post({ type: 'frame', bytes: copy.buffer, guestDropped }, [copy.buffer]);
  }

  /** Like postFrame, for the job's last frame: it goes with `done`. */
  finalFrame(bytes: Uint8Array, guestDropped = 0): void {
    if (bytes.length === 0 && guestDropped === 0) return;
    if (this.last !== undefined) this.postFrame(new Uint8Array(this.last.frame), this.last.guestDropped);
    this.last = { frame: bytes.slice().buffer, guestDropped };
  }

  /** Ends the job: its outcome, with the last frame if one is held. */
  done(outcome: JobOutcome): void {
    const last = this.last;
    if (last === undefined) this.post({ type: 'done', outcome });
    else this.post({ type: 'done', outcome, frame: last.frame, guestDropped: last.guestDropped }, [last.frame]);
    this.last = undefined; // only once posted: a post that throws (a value that cannot be cloned) is retried with it
  }

  post(message: WorkerMessage, transfer?: ArrayBuffer[]): void {
    this.out.postMessage(message, transfer);
  }

  /**
   * Calls a host function and waits for its answer, at most until `deadlineAt`
   * (a `performance.now()` time). `args` must be structured-clonable.
   */
  call(name: string, args: unknown[], deadlineAt: number): CallResult {
    if (this.stopCode() !== StopCode.NONE) return { stopped: true };
    const seq = ++this.seq;
    this.post({ type: 'call', seq, name, args });
    for (;;) {
      const remaining = deadlineAt - performance.now();
      if (remaining <= 0) return { stopped: true };
      Atomics.wait(this.control, Control.CALL, CallState.WAITING, remaining);
      const state = Atomics.load(this.control, Control.CALL);
      if (state === CallState.ABANDONED) return { stopped: true };
      if (state !== CallState.ANSWERED) continue; // woken early, or timed out: the loop checks the time
      const reply = this.takeReply(seq);
      Atomics.compareExchange(this.control, Control.CALL, CallState.ANSWERED, CallState.WAITING);
      return reply;
    }
  }

  /** The host posts the reply before it flips the call word, so it is already in the port. */
  private takeReply(seq: number): CallResult {
    for (let m = receiveMessageOnPort(this.replies); m !== undefined; m = receiveMessageOnPort(this.replies)) {
      const reply = m.message as HostCallReply;
      if (reply.seq === seq) return 'error' in reply ? { error: reply.error } : { value: reply.value };
    }
    throw new Error(`host call ${seq} was answered but its reply is missing`);
  }
}
