/**
 * The guest's clock as the receiver sees it: where guest time 0 lies in unix time (the origin),
 * the latest guest time seen, and the conversion of guest-monotonic ns to the unix-ns bigints
 * collectors take.
 */
import { hostNowNs } from '../clock.js';

export class GuestClock {
  /** Unix ns at guest time 0. */
  private origin: bigint;
  /** Latest guest-monotonic ns seen, or -1. */
  private lastMono = -1;

  constructor(origin: bigint) {
    this.origin = origin;
  }

  /** Moves guest time 0 (a hello record says where it lies). */
  setOrigin(origin: bigint): void {
    this.origin = origin;
  }

  /** Notes a guest time (cheap: a number) so force-closes know the last time seen. */
  observe(mono: number): void {
    if (mono > this.lastMono) this.lastMono = mono;
  }

  /**
   * Unix ns for a guest-monotonic time. It makes a bigint (an allocation), so the receiver calls
   * it only when a collector call needs one. -1 (a record without a time) takes the last guest
   * time seen, or guest time 0 before the guest's first timestamp: a guest's records stay on the
   * guest's clock, never the host's time of ingestion.
   */
  unixTime(mono: number): bigint {
    if (mono >= 0) return this.origin + BigInt(mono);
    return this.lastMono < 0 ? this.origin : this.origin + BigInt(this.lastMono);
  }

  /** The last time observed from the guest, or the host's clock when the guest sent none. */
  lastTime(): bigint {
    return this.lastMono < 0 ? hostNowNs() : this.origin + BigInt(this.lastMono);
  }
}
