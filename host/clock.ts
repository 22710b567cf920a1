/**
 * Host wall clock in unix nanoseconds with sub-millisecond resolution. Anchored on
 * `performance.timeOrigin` (microsecond resolution), so worker threads agree with the main
 * thread to within microseconds: guest times taken in a worker line up with host spans.
 */
const wallAtStart = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
const hrAtStart = process.hrtime.bigint();

export function hostNowNs(): bigint {
  return wallAtStart + (process.hrtime.bigint() - hrAtStart);
}
