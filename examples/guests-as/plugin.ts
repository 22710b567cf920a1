// An AssemblyScript plugin: computes a checksum over a buffer, with a span, events and a metric.
import { SpanCallsite, EventCallsite, Level, counter } from "sandtrace";

const CHECKSUM = new SpanCallsite("checksum", "as-plugin", Level.INFO, ["bytes", "result"]);
const PROGRESS = new EventCallsite("progress", "as-plugin", Level.INFO, ["message", "done"]);

export function run(size: i32): u32 {
  const span = CHECKSUM.span().i64(size).empty().open();
  span.enter();
  let sum: u32 = 0;
  for (let i = 0; i < size; i++) {
    sum = (sum * 31 + <u32>i) ^ (sum >>> 7);
    if (i > 0 && i % (size / 4) == 0) PROGRESS.event().str("chunk done").i64(i).emit();
  }
  counter("checksums", 1).str("plugin", "as-plugin").emit();
  span.recordI64("result", sum);
  span.exit();
  span.close();
  return sum;
}

/** Traps in the middle of its span: the host closes the span with the cause. */
export function crash(): void {
  const span = CHECKSUM.span().i64(0).empty().open();
  span.enter();
  PROGRESS.event().str("about to fail").i64(0).emit();
  unreachable();
}
