/** Host wall clock in unix nanoseconds with sub-millisecond resolution. */
const wallAtStart = BigInt(Date.now()) * 1_000_000n;
const hrAtStart = process.hrtime.bigint();

export function hostNowNs(): bigint {
  return wallAtStart + (process.hrtime.bigint() - hrAtStart);
}
