/** What a run reports when it ends; produced by the runners, received by collectors and handlers. */
import type { TerminationCause } from '../receiver/termination.js';

export interface ExecutionSummary {
  executionId: string;
  guestKind: 'quickjs' | 'wasm';
  /** Host crossings: frames the guest handed over (batches, not events). */
  frames: number;
  /** Records applied / rejected (every rejection has a code in `rejectedByCode`). */
  records: number;
  rejected: number;
  rejectedByCode: Record<string, number>;
  /** Records lost to per-execution limits (included in `rejected`). */
  limitDropped: number;
  /** Frames cut mid-record (a guest that died while writing). */
  truncated: number;
  /** Records the guest reported dropping itself. */
  guestDropped: number;
  /**
   * Records skipped unread for being longer than maxFrameBytes on their own, and their bytes
   * (each is also counted in `rejected` and `limitDropped`). Frames are never refused whole.
   */
  refusedFrames: number;
  /** Frames a WebAssembly guest handed over with a pointer or length outside its buffer (not applied). */
  invalidFrames: number;
  refusedBytes: number;
  /**
   * Guest field and metric attribute names in the host's `sandtrace.*` namespace that were
   * renamed to `guest.sandtrace.*` (see ReceiverStats.reservedRenamed).
   */
  reservedRenamed: number;
  /** Spans the host closed because the guest died or did not commit. */
  forceClosed: number;
  /**
   * What the guest did to carried spans that the end without a commit took back (closes, events
   * under them): the persisted state still holds the spans, and the retried step redoes it.
   */
  uncommitted: number;
  /** False when head sampling left the execution untraced (no spans or events; metrics still). */
  sampled: boolean;
  /** Spans committed for the next execution (with `persist: true`). */
  persistedSpans: number;
  durationMs: number;
  /** How the guest died, if it did. */
  termination?: TerminationCause;
  /** One line naming the cause, if the guest died. */
  cause?: string;
}
