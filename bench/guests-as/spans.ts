// Benchmark guest for bench/end-to-end: n spans, each with two fields and one event inside it,
// the workload the OpenTelemetry baselines reproduce on the host.
import { EventCallsite, Level, SpanCallsite } from "sandtrace";

const HANDLE = new SpanCallsite("handle request", "plugin", Level.INFO, ["http.route", "attempt"], "spans.ts", 6);
const LOADED = new EventCallsite("loaded", "plugin", Level.INFO, ["message", "items"], "spans.ts", 7);

export function run(n: i32): i32 {
  for (let i = 0; i < n; i++) {
    const span = HANDLE.span().str("/orders").i64(i % 7).open();
    span.enter();
    LOADED.event().str("loaded").i64(i % 10).emit();
    span.exit();
    span.close();
  }
  return n;
}
