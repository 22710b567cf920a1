//! A Rust guest for the tests: ordinary `tracing` instrumentation, traced out through sandtrace.
use std::fmt;
use tracing::{debug, error, info, info_span, instrument, trace, warn, Level};

#[derive(Debug)]
struct Io {
    path: &'static str,
}
impl fmt::Display for Io {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read {}", self.path)
    }
}
impl std::error::Error for Io {}

#[derive(Debug)]
struct Config {
    cause: Io,
}
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bad config")
    }
}
impl std::error::Error for Config {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

#[derive(Debug)]
#[allow(dead_code)]
struct Point {
    x: i32,
    y: i32,
}

/// The plugin of the other guests' tests: a `handle` span with events, a `query` child span at
/// debug with a trace event inside, a warning with an error, and a field recorded later.
#[no_mangle]
pub extern "C" fn run(attempt: i32) -> i32 {
    sandtrace_guest::install();
    let span = tracing::span!(Level::INFO, "handle", user = "alice", attempt, result = tracing::field::Empty);
    let _g = span.enter();
    info!(items = 3, ratio = 0.5, ok = true, big = u64::MAX, "loaded");
    let q = tracing::span!(Level::DEBUG, "query", table = "users");
    q.in_scope(|| trace!(i = 1, "hidden unless trace"));
    drop(q);
    let e = Io { path: "/etc/x" };
    warn!(error = &e as &dyn std::error::Error, "slow");
    span.record("result", "ok");
    attempt * 2
}

#[instrument]
fn outer(n: u32) -> u32 {
    info!("outer starts");
    middle(n + 1) + 1
}

#[instrument(level = "debug")]
fn middle(n: u32) -> u32 {
    inner(n * 2, "x")
}

#[instrument(fields(extra = 7))]
fn inner(n: u32, label: &str) -> u32 {
    info!(n, "innermost");
    n
}

/// Nested `#[instrument]` functions: outer → middle (debug) → inner.
#[no_mangle]
pub extern "C" fn nested(n: u32) -> u32 {
    sandtrace_guest::install();
    outer(n)
}

/// One event at every level; the host's level filter keeps some.
#[no_mangle]
pub extern "C" fn levels() -> i32 {
    sandtrace_guest::install();
    let _s = info_span!("levels").entered();
    trace!("t");
    debug!("d");
    info!("i");
    warn!("w");
    error!("e");
    tracing::enabled!(Level::TRACE) as i32 | (tracing::enabled!(Level::INFO) as i32) << 1
}

/// Every value type, in one event.
#[no_mangle]
pub extern "C" fn values() {
    sandtrace_guest::install();
    let err = Config { cause: Io { path: "/etc/app.toml" } };
    info!(
        i = -5i64,
        small = 42u64,
        u = u64::MAX,
        imin = i64::MIN,
        wide = 1u128 << 70,
        wide_neg = -(1i128 << 70),
        wide_small = 12i128,
        nan = f64::NAN,
        neg_zero = -0.0f64,
        inf = f64::INFINITY,
        f = 1.25f64,
        yes = true,
        s = "text ✓",
        dbg = ?Point { x: 1, y: -2 },
        disp = %Io { path: "/d" },
        err = &err as &dyn std::error::Error,
        "all values"
    );
}

/// `follows_from` between two spans, and a clone dropped before the original.
#[no_mangle]
pub extern "C" fn follows() {
    sandtrace_guest::install();
    let a = info_span!("producer");
    a.in_scope(|| info!("produced"));
    let b = info_span!("consumer");
    b.follows_from(&a);
    let b2 = b.clone();
    drop(b);
    b2.in_scope(|| info!("consumed"));
}

/// A panic inside two open spans.
#[no_mangle]
pub extern "C" fn panic_mid_span(n: u32) -> u32 {
    sandtrace_guest::install();
    let _a = info_span!("handle", n).entered();
    let _b = info_span!("inner").entered();
    info!("about to fail");
    let v: Vec<u32> = Vec::new();
    if n > 0 {
        panic!("invariant broken: n = {}", n);
    }
    v[n as usize]
}

/// Never returns: an event per iteration (each crossing checks the deadline).
#[no_mangle]
pub extern "C" fn spin() {
    sandtrace_guest::install();
    let _s = info_span!("spinner").entered();
    let mut i: u64 = 0;
    loop {
        info!(i, "spin");
        i = i.wrapping_add(1);
    }
}

/// Workflow step 1: opens the workflow span, leaves it open for the next execution.
#[no_mangle]
pub extern "C" fn step_one() -> u32 {
    sandtrace_guest::install();
    let wf = workflow_span();
    wf.in_scope(|| info!("reserved stock"));
    let id = wf.id().map(|i| i.into_u64()).unwrap_or(0) as u32;
    sandtrace_guest::carry(wf);
    id
}

fn workflow_span() -> tracing::Span {
    info_span!("order-workflow", order = "A-1", status = tracing::field::Empty)
}

/// Workflow step 2: resumes the carried span (by its callsite), records, finishes it.
#[no_mangle]
pub extern "C" fn step_two() -> u32 {
    sandtrace_guest::install();
    match sandtrace_guest::resume_with(workflow_span) {
        Some(wf) => {
            wf.in_scope(|| info!("charged card"));
            wf.record("status", "paid");
            wf.id().map(|i| i.into_u64()).unwrap_or(0) as u32
        }
        None => 0,
    }
}

/// Workflow step 2, by name only: a child span and an event in the carried span, which it finishes.
#[no_mangle]
pub extern "C" fn step_two_by_name() -> u32 {
    sandtrace_guest::install();
    match sandtrace_guest::resume("order-workflow") {
        Some(wf) => {
            let _g = wf.enter();
            let charge = info_span!("charge", amount = 990);
            charge.in_scope(|| info!("charged card"));
            charge.id().map(|i| i.into_u64()).unwrap_or(0) as u32
        }
        None => 0,
    }
}

/// Whether spans are carried: 1 for the workflow callsite (resume_with), 2 by name, 4 for "nope".
#[no_mangle]
pub extern "C" fn resume_each() -> u32 {
    sandtrace_guest::install();
    let a = sandtrace_guest::resume_with(workflow_span).map(sandtrace_guest::carry).is_some() as u32;
    let b = sandtrace_guest::resume_id("order-workflow", None).is_some() as u32;
    let c = sandtrace_guest::resume("nope").is_some() as u32;
    a | b << 1 | c << 2
}

#[derive(Debug)]
struct Reset;
impl fmt::Display for Reset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection reset")
    }
}
impl std::error::Error for Reset {}

#[derive(Debug)]
struct QueryFailed {
    cause: Reset,
}
impl fmt::Display for QueryFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("query failed")
    }
}
impl std::error::Error for QueryFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// The shared plugin (test/shared-tree.test.ts): the same trace as its QuickJS and
/// AssemblyScript versions (test/guests-as/shared-plugin.ts).
#[no_mangle]
pub extern "C" fn shared_plugin() {
    sandtrace_guest::install();
    let handle = tracing::span!(target: "plugin", Level::INFO, "handle", user = "alice", items = tracing::field::Empty);
    let _h = handle.enter();
    info!(count = 3, "loaded");
    let query = tracing::span!(target: "plugin::db", Level::DEBUG, "query", table = "users", error = tracing::field::Empty);
    query.in_scope(|| {
        debug!("query started");
        info!(rows = 2, "rows read");
    });
    let err = QueryFailed { cause: Reset };
    query.record("error", &err as &dyn std::error::Error);
    let retry = tracing::span!(target: "plugin::db", Level::DEBUG, "retry", attempt = 2);
    retry.follows_from(&query); // while the query span is still open
    drop(query);
    drop(retry);
    warn!(elapsed_ms = 120, "slow query");
    handle.record("items", 2);
}

/// Bench: `n` enabled events with three fields.
#[no_mangle]
pub extern "C" fn bench_events(n: u32) {
    sandtrace_guest::install();
    for i in 0..n {
        info!(i, ratio = 0.5, ok = true, "tick");
    }
}

/// The coarse event clock on (1) or off (0).
#[no_mangle]
pub extern "C" fn coarse_clock(on: u32) {
    sandtrace_guest::coarse_event_clock(on != 0);
}

/// Bench: `n` events below the host's level.
#[no_mangle]
pub extern "C" fn bench_disabled(n: u32) {
    sandtrace_guest::install();
    for i in 0..n {
        trace!(i, ratio = 0.5, ok = true, "tick");
    }
}

#[link(wasm_import_module = "bench")]
extern "C" {
    fn event_json(ptr: *const u8, len: u32);
}

/// Bench: the per-call design (tracing-tunnel's): one host call per event carrying JSON.
#[no_mangle]
pub extern "C" fn bench_json(n: u32) {
    let mut s = String::with_capacity(256);
    for i in 0..n {
        s.clear();
        use std::fmt::Write;
        let _ = write!(
            s,
            r#"{{"event":{{"metadata":{{"name":"tick","target":"bench","level":"INFO","file":"src/lib.rs","line":200}},"parent":null,"values":{{"message":"tick","i":{},"ratio":0.5,"ok":true}}}}}}"#,
            i
        );
        unsafe { event_json(s.as_ptr(), s.len() as u32) };
    }
}

fn noisy_warn() {
    warn!(inner = 1, "from debug");
}

struct Noisy;
impl fmt::Debug for Noisy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        noisy_warn(); // its first use: the callsite registers while the outer event is written
        f.write_str("noisy")
    }
}

/// A Debug impl that logs: the nested event is dropped (counted), its callsite announced later.
#[no_mangle]
pub extern "C" fn debug_logs() {
    sandtrace_guest::install();
    info!(v = ?Noisy, "outer");
    noisy_warn();
}
