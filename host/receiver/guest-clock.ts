/**
 * The guest's clock as the receiver sees it: where guest time 0 lies in unix time (the origin),
 * the latest guest time seen, and the conversion of guest-monotonic ns to the unix-ns bigints
 * collectors take.
 *
 * The conversion is on the hot path (a span's start, each event, a span's end), and a bigint
 * costs an allocation per operation: `origin + BigInt(mono)` makes two, and `BigInt(number)` is
 * the slower of them (about 25 ns on the bench machine, a runtime call). A guest's consecutive
 * timestamps are mostly a few hundred ns apart, so the clock keeps the last time it converted
 * and adds the difference from a table of small bigints: one allocation, no conversion.
 */
import { hostNowNs } from '../clock.js';

/** Differences (ns) the table covers; with a precise clock almost every step between two converted times is below it. */
const SMALL_STEPS = 1024;
/** `BigInt(i)` for i below SMALL_STEPS, made on first use (shared: bigints are immutable). */
const smallSteps: Array<bigint | undefined> = new Array<bigint | undefined>(SMALL_STEPS).fill(undefined);

function step(d: number): bigint {
  const s = smallSteps[d];
  return s !== undefined ? s : (smallSteps[d] = BigInt(d));
}

export class GuestClock {
  /** Unix ns at guest time 0. */
  private origin: bigint;
  /** Latest guest-monotonic ns seen, or -1. */
  private lastMono = -1;
  /** The time converted last (guest ns, or -1) and its unix ns. */
  private baseMono = -1;
  private baseUnix = 0n;

  constructor(origin: bigint) {
    this.origin = origin;
  }

  /** Moves guest time 0 (a hello record says where it lies). */
  setOrigin(origin: bigint): void {
    this.origin = origin;
    this.baseMono = -1;
  }

  /** Notes a guest time (cheap: a number) so force-closes know the last time seen. */
  observe(mono: number): void {
    if (mono > this.lastMono) this.lastMono = mono;
  }

  /** Unix ns for a guest-monotonic time; -1 (a record without one) takes the last time seen, or guest time 0 before any. */
  unixTime(mono: number): bigint {
    if (mono < 0) {
      mono = this.lastMono;
      if (mono < 0) return this.origin;
    }
    const d = mono - this.baseMono;
    let t: bigint;
    if (d >= 0 && d < SMALL_STEPS && this.baseMono >= 0) {
      if (d === 0) return this.baseUnix;
      t = this.baseUnix + step(d);
    } else t = this.origin + BigInt(mono);
    this.baseMono = mono;
    this.baseUnix = t;
    return t;
  }

  /** The last time observed from the guest, or the host's clock when the guest sent none. */
  lastTime(): bigint {
    return this.lastMono < 0 ? hostNowNs() : this.unixTime(this.lastMono);
  }
}
