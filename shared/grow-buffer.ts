/** Geometric growth for the hand-written writers' byte buffers. */

const max = Math.max; // taken at load: this also runs in the QuickJS SDK's realm

/** A buffer at least `used + extra` long (doubling), holding the first `used` bytes of `buf`. */
export function grownBuffer(buf: Uint8Array, used: number, extra: number): Uint8Array {
  let size = max(buf.length * 2, 64);
  while (size < used + extra) size *= 2;
  const next = new Uint8Array(size);
  next.set(buf.subarray(0, used));
  return next;
}
