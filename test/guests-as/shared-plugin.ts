// The shared plugin (test/shared-tree.test.ts), AssemblyScript version: the same trace as its
// QuickJS version (in the test) and its Rust version (test/guests-rust, `shared_plugin`).
import { SpanCallsite, EventCallsite, Level } from "sandtrace";

const HANDLE = new SpanCallsite("handle", "plugin", Level.INFO, ["user", "items"], "shared-plugin.ts", 5);
const QUERY = new SpanCallsite("query", "plugin::db", Level.DEBUG, ["table", "error"], "shared-plugin.ts", 6);
const RETRY = new SpanCallsite("retry", "plugin::db", Level.DEBUG, ["attempt"], "shared-plugin.ts", 7);
const LOADED = new EventCallsite("loaded", "plugin", Level.INFO, ["message", "count"]);
const STARTED = new EventCallsite("query started", "plugin::db", Level.DEBUG, ["message"]);
const ROWS = new EventCallsite("rows read", "plugin::db", Level.INFO, ["message", "rows"]);
const SLOW = new EventCallsite("slow query", "plugin", Level.WARN, ["message", "elapsed_ms"]);

export function sharedPlugin(): void {
  const handle = HANDLE.span().str("alice").empty().open();
  handle.enter();
  LOADED.event().str("loaded").i64(3).emit();
  const query = QUERY.span().str("users").empty().open();
  query.enter();
  STARTED.event().str("query started").emit();
  ROWS.event().str("rows read").i64(2).emit();
  query.exit();
  // A message only: the library's error values have no source chain.
  query.recordErr("error", "query failed");
  const retry = RETRY.span().i64(2).open();
  retry.followsFrom(query); // while the query span is still open
  query.close();
  retry.close();
  SLOW.event().str("slow query").i64(120).emit();
  handle.recordI64("items", 2);
  handle.exit();
  handle.close();
}
