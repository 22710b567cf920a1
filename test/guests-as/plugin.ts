// A plugin guest for the WebAssembly tests: spans, events at every level, typed fields, metrics.
import { SpanCallsite, EventCallsite, Level, Span, counter, histogram, gauge, enabled, resumeSpan } from "sandtrace";

const HANDLE = new SpanCallsite("handle", "plugin", Level.INFO, ["user", "attempt", "result"], "plugin.ts", 4);
const QUERY = new SpanCallsite("query", "plugin::db", Level.DEBUG, ["table"]);
const LOG = new EventCallsite("log", "plugin", Level.INFO, ["message", "items", "ratio", "ok", "big"]);
const WARN = new EventCallsite("warn", "plugin", Level.WARN, ["message", "error"]);
const NOISE = new EventCallsite("noise", "plugin", Level.TRACE, ["message", "i"]);
const STEP = new SpanCallsite("step", "plugin", Level.INFO, ["label"]);
/** Same name as HANDLE, another target: never the carried span of HANDLE. */
const HANDLE_ELSEWHERE = new SpanCallsite("handle", "elsewhere", Level.INFO, ["user", "attempt", "result"]);

export function run(user: string, attempt: i32): i32 {
  const span = HANDLE.span().str(user).i64(attempt).empty().open();
  span.enter();
  LOG.event().str("loaded").i64(3).f64(0.5).bool(true).u64(0xffffffffffffffff).emit();
  LOG.event().str("fewer values than fields").i64(4).emit(); // the rest are not recorded
  WARN.event().str("more values than fields").err("kept").i64(9).emit(); // the extra one is ignored
  const q = QUERY.span().str("users").open();
  q.enter();
  NOISE.event().str("hidden unless trace").i64(1).emit();
  q.exit();
  q.close();
  WARN.event().str("slow").err("timeout after 3 tries").emit();
  counter("requests", 1).str("route", "/x").emit();
  histogram("latency_ms", 2.5).emit();
  gauge("queue", 7).emit();
  span.recordStr("result", "ok");
  span.exit();
  span.close();
  return attempt * 2;
}

export function levels(): i32 {
  return (enabled(Level.TRACE) ? 1 : 0) | (enabled(Level.INFO) ? 2 : 0) | (enabled(Level.ERROR) ? 4 : 0);
}

export function manyEvents(n: i32): void {
  for (let i = 0; i < n; i++) LOG.event().str("tick").i64(i).f64(1.5).bool(false).u64(7).emit();
}

/** `n` spans of STEP, each with one event inside (the backpressure test's load). */
export function manySpans(n: i32): void {
  for (let i = 0; i < n; i++) {
    const span = STEP.span().str("work").open();
    span.enter();
    LOG.event().str("step").i64(i).emit();
    span.exit();
    span.close();
  }
}

export function openAndTrap(): void {
  const span = HANDLE.span().str("doomed").i64(1).empty().open();
  span.enter();
  WARN.event().str("last words").err("none").emit();
  unreachable();
}

export function openAndAbort(): void {
  const span = HANDLE.span().str("doomed").i64(1).empty().open();
  span.enter();
  WARN.event().str("last words").err("none").emit();
  assert(false, "invariant broken");
}

export function openAndExhaustMemory(): void {
  const span = HANDLE.span().str("doomed").i64(1).empty().open();
  span.enter();
  WARN.event().str("last words").err("none").emit();
  const keep = new Array<ArrayBuffer>();
  while (true) keep.push(new ArrayBuffer(1 << 20));
}

export function spin(): void {
  const span = HANDLE.span().str("spinner").i64(1).empty().open();
  span.enter();
  while (true) NOISE.event().str("spin").i64(0).emit();
}

/** Workflow step 1: opens a span and leaves it open for the next execution. */
export function stepOne(): u32 {
  const span = HANDLE.span().str("workflow").i64(1).empty().open();
  span.enter();
  LOG.event().str("reserved stock").i64(1).f64(0).bool(true).u64(0).emit();
  span.exit();
  return span.id;
}

/** Workflow step 2: resumes the carried-over span by its callsite's name and finishes it. */
export function stepTwo(): void {
  const span = HANDLE.resume();
  if (span === null) return;
  span.enter();
  LOG.event().str("charged card").i64(2).f64(0).bool(true).u64(0).emit();
  span.recordStr("result", "paid");
  span.exit();
  span.close();
}

/**
 * A middle (or last, with `finish`) workflow step: resumes the workflow span, opens and closes a
 * span of its own inside it, and returns that span's id (0 when nothing was carried over).
 */
export function stepWithChild(label: string, finish: bool): u32 {
  const wf = HANDLE.resume();
  if (wf === null) return 0;
  wf.enter();
  const own = STEP.span().str(label).open();
  own.close();
  wf.exit();
  if (finish) wf.close();
  return own.id;
}

/** The old way: the host passes the carried span's id as an argument (resumeSpan is deprecated). */
export function stepTwoById(id: u32): void {
  const span = resumeSpan(id, ["user", "attempt", "result"]);
  span.enter();
  LOG.event().str("charged card").i64(2).f64(0).bool(true).u64(0).emit();
  span.recordStr("result", "paid");
  span.exit();
  span.close();
}

/** What resume gives for callsites that are not carried over: 1 for HANDLE's span, 2 for STEP's, 4 for HANDLE_ELSEWHERE's. */
export function resumeEach(): i32 {
  return (HANDLE.resume() !== null ? 1 : 0) | (STEP.resume() !== null ? 2 : 0) | (HANDLE_ELSEWHERE.resume() !== null ? 4 : 0);
}

/** Declares `n` callsites with file names of every length and large line numbers, one event each. */
export function manyCallsites(n: i32): void {
  for (let i = 0; i < n; i++) {
    const site = new EventCallsite("site" + i.toString(), "plugin", Level.INFO, ["i"], "f".repeat(i % 97), 65536 + i);
    site.event().i64(i).emit();
  }
}
