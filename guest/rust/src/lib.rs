//! sandtrace for Rust guests: a [`tracing_core::Subscriber`] that writes sandtrace protocol v1
//! records (shared/PROTOCOL.md) into a static buffer in the guest's linear memory and hands them
//! to the host once per full buffer, through the WebAssembly ABI of PROTOCOL.md §5b.
//!
//! ```ignore
//! #[no_mangle]
//! pub extern "C" fn run(n: i32) -> i32 {
//!     sandtrace_guest::install();                 // once per execution, before any tracing
//!     let span = tracing::info_span!("handle", n).entered();
//!     tracing::info!(items = 3, "loaded");
//!     n * 2
//! }
//! ```
//!
//! Single-threaded by design (wasm32-unknown-unknown has no threads): the subscriber keeps its
//! state in statics without locks.

use std::cell::UnsafeCell;
use std::fmt::{self, Write as _};
use std::ptr;

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Interest, Level, LevelFilter, Metadata, Subscriber};

// ---- the host's imports (PROTOCOL.md §5b) ------------------------------------------------------

#[cfg(target_arch = "wasm32")]
mod host {
    #[link(wasm_import_module = "sandtrace")]
    extern "C" {
        pub fn attach(state: *mut u8, buffer: *mut u8, capacity: u32, state_bytes: u32);
        pub fn flush(buffer: *const u8, length: u32);
        pub fn now() -> f64;
        pub fn resume_utf8(name: *const u8, name_bytes: u32, target: *const u8, target_bytes: u32) -> u32;
        pub fn panic(message: *const u8, message_bytes: u32, file: *const u8, file_bytes: u32, line: u32, column: u32);
    }
}

/// Stand-ins off WebAssembly, so the crate builds (and its users' unit tests run) natively.
#[cfg(not(target_arch = "wasm32"))]
mod host {
    pub unsafe fn attach(_: *mut u8, _: *mut u8, _: u32, _: u32) {}
    pub unsafe fn flush(_: *const u8, _: u32) {}
    pub unsafe fn now() -> f64 {
        0.0
    }
    pub unsafe fn resume_utf8(_: *const u8, _: u32, _: *const u8, _: u32) -> u32 {
        0
    }
    pub unsafe fn panic(_: *const u8, _: u32, _: *const u8, _: u32, _: u32, _: u32) {}
}

// ---- buffer and state block ---------------------------------------------------------------------

/// Bytes of the record buffer.
pub const CAPACITY: usize = 65536;
/// Size of the state block; the host writes the first span id (+24) only to a block of 28 or more.
const STATE_BYTES: u32 = 32;

#[repr(C, align(16))]
struct Buf([u8; CAPACITY]);
/// The state block, shared with the host (little-endian):
///   +0 u32 committed bytes  +4 i32 minimum level (host)  +8 f64 frame time base (host zeroes)
///   +16 u32 records dropped  +20 u32 attached  +24 u32 first span id (host)  +28 reserved
#[repr(C, align(8))]
struct StateBlock([u8; STATE_BYTES as usize]);

static mut BUF: Buf = Buf([0; CAPACITY]);
static mut STATE: StateBlock = StateBlock([0; STATE_BYTES as usize]);

#[inline]
fn state_ptr(offset: usize) -> *mut u8 {
    unsafe { (ptr::addr_of_mut!(STATE) as *mut u8).add(offset) }
}
#[inline]
fn buf_ptr() -> *mut u8 {
    unsafe { ptr::addr_of_mut!(BUF) as *mut u8 }
}
// Volatile: the host writes the block during import calls.
#[inline]
fn load_u32(offset: usize) -> u32 {
    unsafe { u32::from_le(ptr::read_volatile(state_ptr(offset) as *const u32)) }
}
#[inline]
fn store_u32(offset: usize, v: u32) {
    unsafe { ptr::write_volatile(state_ptr(offset) as *mut u32, v.to_le()) }
}
#[inline]
fn load_f64(offset: usize) -> f64 {
    unsafe { f64::from_bits(u64::from_le(ptr::read_volatile(state_ptr(offset) as *const u64))) }
}
#[inline]
fn store_f64(offset: usize, v: f64) {
    unsafe { ptr::write_volatile(state_ptr(offset) as *mut u64, v.to_bits().to_le()) }
}

/// The host's minimum level: 0 trace … 4 error (5 or more: nothing).
#[inline]
fn min_level() -> i32 {
    load_u32(4) as i32
}

fn level_number(level: &Level) -> i32 {
    match *level {
        Level::TRACE => 0,
        Level::DEBUG => 1,
        Level::INFO => 2,
        Level::WARN => 3,
        _ => 4,
    }
}

#[inline]
fn level_on(level: &Level) -> bool {
    level_number(level) >= min_level()
}

fn attach() {
    if load_u32(20) != 0 {
        return;
    }
    store_u32(20, 1);
    unsafe { host::attach(state_ptr(0), buf_ptr(), CAPACITY as u32, STATE_BYTES) };
}

/// Hands every complete record to the host now (the host also takes them when the export returns,
/// traps or aborts).
pub fn flush() {
    let committed = load_u32(0);
    if committed == 0 {
        return;
    }
    unsafe { host::flush(buf_ptr(), committed) };
    store_u32(0, 0);
    store_f64(8, 0.0);
}

// ---- record writer ------------------------------------------------------------------------------

const NO_TIME: usize = usize::MAX;

/// Builds one record in `scratch`, then copies it into the buffer at `commit`, where its time
/// delta is computed against the frame it lands in (a flush in between starts a new frame).
struct Writer {
    scratch: Vec<u8>,
    time_at: usize,
    time: f64,
    busy: bool,
}

struct SpanCallsites(UnsafeCell<Option<std::collections::HashMap<tracing_core::callsite::Identifier, &'static Metadata<'static>>>>);
unsafe impl Sync for SpanCallsites {}
/// Span callsites by identifier, for `record` (which names fields, not their callsite's metadata).
static SPAN_CALLSITES: SpanCallsites = SpanCallsites(UnsafeCell::new(None));

struct Global(UnsafeCell<Writer>);
// wasm32-unknown-unknown runs one thread; the writer is never shared across threads.
unsafe impl Sync for Global {}

static WRITER: Global = Global(UnsafeCell::new(Writer { scratch: Vec::new(), time_at: NO_TIME, time: 0.0, busy: false }));

/// Runs `f` with the writer, unless it is in use already (a `Debug` impl that emits an event
/// while its value is being written): that nested record is dropped and counted.
#[inline]
fn with_writer<R>(f: impl FnOnce(&mut Writer) -> R) -> Option<R> {
    let w = unsafe { &mut *WRITER.0.get() };
    if w.busy {
        store_u32(16, load_u32(16).wrapping_add(1));
        return None;
    }
    w.busy = true;
    if unsafe { !(*UNANNOUNCED.0.get()).is_empty() } {
        announce_pending(w);
    }
    let r = f(w);
    w.busy = false;
    Some(r)
}

struct Unannounced(UnsafeCell<Vec<&'static Metadata<'static>>>);
unsafe impl Sync for Unannounced {}
/// Callsites registered while a record was being written (a `Debug` impl that uses a callsite for
/// the first time): announced before the next record.
static UNANNOUNCED: Unannounced = Unannounced(UnsafeCell::new(Vec::new()));

#[cold]
fn announce_pending(w: &mut Writer) {
    let pending = std::mem::take(unsafe { &mut *UNANNOUNCED.0.get() });
    for meta in pending {
        w.announce(meta);
    }
}

/// The next span id this guest allocates (kept apart from the writer: a span may be made while
/// a record is being written).
static mut NEXT_SPAN: u32 = 1;

fn alloc_span_id() -> u32 {
    unsafe {
        let first = load_u32(24);
        if first > NEXT_SPAN {
            NEXT_SPAN = first;
        }
        let id = NEXT_SPAN;
        NEXT_SPAN = NEXT_SPAN.wrapping_add(1).max(1);
        id
    }
}

fn int_bytes(v: i64, out: &mut [u8; 9]) -> usize {
    if v >= 0 {
        return uint_bytes(v as u64, out);
    }
    if v >= -32 {
        out[0] = v as u8;
        1
    } else if v >= -0x80 {
        out[0] = 0xd0;
        out[1] = v as u8;
        2
    } else if v >= -0x8000 {
        out[0] = 0xd1;
        out[1..3].copy_from_slice(&(v as i16).to_be_bytes());
        3
    } else if v >= -0x8000_0000 {
        out[0] = 0xd2;
        out[1..5].copy_from_slice(&(v as i32).to_be_bytes());
        5
    } else {
        out[0] = 0xd3;
        out[1..9].copy_from_slice(&v.to_be_bytes());
        9
    }
}

fn uint_bytes(v: u64, out: &mut [u8; 9]) -> usize {
    if v < 128 {
        out[0] = v as u8;
        1
    } else if v < 0x100 {
        out[0] = 0xcc;
        out[1] = v as u8;
        2
    } else if v < 0x1_0000 {
        out[0] = 0xcd;
        out[1..3].copy_from_slice(&(v as u16).to_be_bytes());
        3
    } else if v < 0x1_0000_0000 {
        out[0] = 0xce;
        out[1..5].copy_from_slice(&(v as u32).to_be_bytes());
        5
    } else {
        out[0] = 0xcf;
        out[1..9].copy_from_slice(&v.to_be_bytes());
        9
    }
}

impl Writer {
    #[inline]
    fn begin(&mut self) {
        self.scratch.clear();
        self.time_at = NO_TIME;
    }
    #[inline]
    fn byte(&mut self, b: u8) {
        self.scratch.push(b);
    }
    fn array(&mut self, n: usize) {
        if n < 16 {
            self.byte(0x90 | n as u8);
        } else {
            self.byte(0xdc);
            self.scratch.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    fn uint(&mut self, v: u64) {
        let mut b = [0u8; 9];
        let n = uint_bytes(v, &mut b);
        self.scratch.extend_from_slice(&b[..n]);
    }
    fn int(&mut self, v: i64) {
        let mut b = [0u8; 9];
        let n = int_bytes(v, &mut b);
        self.scratch.extend_from_slice(&b[..n]);
    }
    fn f64(&mut self, v: f64) {
        self.byte(0xcb);
        self.scratch.extend_from_slice(&v.to_bits().to_be_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.byte(if v { 0xc3 } else { 0xc2 });
    }
    fn nil(&mut self) {
        self.byte(0xc0);
    }
    fn str(&mut self, s: &str) {
        let len = s.len();
        if len < 32 {
            self.byte(0xa0 | len as u8);
        } else if len < 0x100 {
            self.byte(0xd9);
            self.byte(len as u8);
        } else if len < 0x1_0000 {
            self.byte(0xda);
            self.scratch.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.byte(0xdb);
            self.scratch.extend_from_slice(&(len as u32).to_be_bytes());
        }
        self.scratch.extend_from_slice(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.nil(),
        }
    }
    /// A string formatted in place: a str32 header patched with the length once written.
    fn display_str(&mut self, v: &dyn fmt::Display) {
        let at = self.scratch.len();
        self.scratch.extend_from_slice(&[0xdb, 0, 0, 0, 0]);
        let _ = write!(Scratch(&mut self.scratch), "{}", v);
        let len = (self.scratch.len() - at - 5) as u32;
        self.scratch[at + 1..at + 5].copy_from_slice(&len.to_be_bytes());
    }
    /// Starts an ext32 value of `kind`; `end_ext` patches its length.
    fn begin_ext(&mut self, kind: u8) -> usize {
        let at = self.scratch.len();
        self.scratch.extend_from_slice(&[0xc9, 0, 0, 0, 0, kind]);
        at
    }
    fn end_ext(&mut self, at: usize) {
        let len = (self.scratch.len() - at - 6) as u32;
        self.scratch[at + 1..at + 5].copy_from_slice(&len.to_be_bytes());
    }
    /// Debug-formatted text (ext type 1).
    fn debug(&mut self, v: &dyn fmt::Debug) {
        let at = self.begin_ext(1);
        let _ = write!(Scratch(&mut self.scratch), "{:?}", v);
        self.end_ext(at);
    }
    /// An error (ext type 2: `[message, source]`), its `source()` chain at most 16 deep.
    fn error(&mut self, e: &(dyn std::error::Error + 'static), depth: usize) {
        let at = self.begin_ext(2);
        self.byte(0x92);
        self.display_str(&e);
        match e.source() {
            Some(s) if depth < 15 => self.error(s, depth + 1),
            _ => self.nil(),
        }
        self.end_ext(at);
    }
    /// The record's timestamp: `now`, written as a delta when the record is committed.
    fn time(&mut self) {
        self.time = unsafe { host::now() };
        self.time_at = self.scratch.len();
    }
    fn callsite_id(meta: &'static Metadata<'static>) -> u64 {
        meta as *const Metadata<'static> as usize as u64
    }
    fn parent(&mut self, root: bool, parent: Option<&Id>) {
        if root {
            self.bool(false);
        } else if let Some(p) = parent {
            self.uint(p.into_u64());
        } else {
            self.nil();
        }
    }

    /// Copies the record into the buffer; from then on the host sees it, even if the guest traps.
    fn commit(&mut self) {
        let len = self.scratch.len() + if self.time_at == NO_TIME { 0 } else { 9 };
        if len > CAPACITY {
            store_u32(16, load_u32(16).wrapping_add(1));
            return;
        }
        let mut committed = load_u32(0) as usize;
        if committed + len > CAPACITY {
            flush();
            committed = 0;
        }
        unsafe {
            let dst = buf_ptr().add(committed);
            if self.time_at == NO_TIME {
                ptr::copy_nonoverlapping(self.scratch.as_ptr(), dst, self.scratch.len());
                store_u32(0, (committed + self.scratch.len()) as u32);
            } else {
                let head = self.time_at;
                ptr::copy_nonoverlapping(self.scratch.as_ptr(), dst, head);
                let mut t = [0u8; 9];
                let n = int_bytes((self.time - load_f64(8)) as i64, &mut t);
                ptr::copy_nonoverlapping(t.as_ptr(), dst.add(head), n);
                let tail = self.scratch.len() - head;
                ptr::copy_nonoverlapping(self.scratch.as_ptr().add(head), dst.add(head + n), tail);
                store_u32(0, (committed + head + n + tail) as u32);
                store_f64(8, self.time);
            }
        }
    }

    fn announce(&mut self, meta: &'static Metadata<'static>) {
        self.begin();
        self.array(10);
        self.byte(1);
        self.uint(Self::callsite_id(meta));
        self.byte(if meta.is_span() { 0 } else { 1 });
        self.str(meta.name());
        self.str(meta.target());
        self.byte(level_number(meta.level()) as u8);
        self.opt_str(meta.module_path());
        self.opt_str(meta.file());
        match meta.line() {
            Some(l) => self.uint(l as u64),
            None => self.nil(),
        }
        let fields = meta.fields();
        self.array(fields.len());
        for f in fields.iter() {
            self.str(f.name());
        }
        self.commit();
    }

    fn span_time_record(&mut self, tag: u8, id: &Id) {
        self.begin();
        self.array(3);
        self.byte(tag);
        self.uint(id.into_u64());
        self.time();
        self.commit();
    }
}

struct Scratch<'a>(&'a mut Vec<u8>);
impl fmt::Write for Scratch<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

// ---- values -------------------------------------------------------------------------------------

/// Writes field values: positionally (padding skipped fields with nil), or as index/value pairs.
struct Values<'a> {
    w: &'a mut Writer,
    /// Positional: the callsite's fields not written yet, in order.
    rest: Option<tracing_core::field::Iter>,
    /// Pairs: the callsite's fields (to find indices), and the pairs written.
    all: Option<&'static tracing_core::field::FieldSet>,
    pairs: usize,
}

impl<'a> Values<'a> {
    fn positional(w: &'a mut Writer, meta: &'static Metadata<'static>) -> Self {
        Values { w, rest: Some(meta.fields().iter()), all: None, pairs: 0 }
    }
    fn pairs(w: &'a mut Writer) -> Self {
        Values { w, rest: None, all: None, pairs: 0 }
    }
    /// Positions the writer for `field`'s value; false when it cannot be written.
    fn slot(&mut self, field: &Field) -> bool {
        if let Some(rest) = self.rest.as_mut() {
            // Values come in field order (tracing's value sets follow the field set).
            for f in rest.by_ref() {
                if f == *field {
                    return true;
                }
                self.w.nil();
            }
            return false;
        }
        if self.all.is_none() {
            // The span's field set, from its callsite (a record names no metadata of its own).
            self.all = unsafe { (*SPAN_CALLSITES.0.get()).as_ref() }.and_then(|m| m.get(&field.callsite())).map(|m| m.fields());
        }
        match self.all.and_then(|fs| fs.iter().position(|f| f == *field)) {
            Some(i) => {
                self.pairs += 1;
                self.w.uint(i as u64);
                true
            }
            None => false,
        }
    }
    fn finish(&mut self) {
        if let Some(rest) = self.rest.as_mut() {
            for _ in rest.by_ref() {
                self.w.nil();
            }
        }
    }
}

impl Visit for Values<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.slot(field) {
            return;
        }
        // `info!("text {}", x)` records `message` as format_args: it is the event's text.
        if field.name() == "message" {
            self.w.display_str(&DebugAsDisplay(value));
        } else {
            self.w.debug(value);
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.slot(field) {
            self.w.int(value);
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.slot(field) {
            self.w.uint(value);
        }
    }
    /// Exact integers where they fit 64 bits; beyond, their decimal text as a debug value.
    fn record_i128(&mut self, field: &Field, value: i128) {
        if !self.slot(field) {
            return;
        }
        if let Ok(v) = i64::try_from(value) {
            self.w.int(v);
        } else if let Ok(v) = u64::try_from(value) {
            self.w.uint(v);
        } else {
            self.w.debug(&value);
        }
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        if !self.slot(field) {
            return;
        }
        match u64::try_from(value) {
            Ok(v) => self.w.uint(v),
            Err(_) => self.w.debug(&value),
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.slot(field) {
            self.w.f64(value);
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.slot(field) {
            self.w.bool(value);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.slot(field) {
            self.w.str(value);
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.slot(field) {
            self.w.error(value, 0);
        }
    }
}

struct DebugAsDisplay<'a>(&'a dyn fmt::Debug);
impl fmt::Display for DebugAsDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

/// Reads the carried span id out of the internal resume callsite's single field.
struct CarriedId(u64);
impl Visit for CarriedId {
    fn record_u64(&mut self, _: &Field, value: u64) {
        self.0 = value;
    }
    fn record_i64(&mut self, _: &Field, value: i64) {
        self.0 = value as u64;
    }
    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
}

const RESUME_NAME: &str = "sandtrace.resume";

fn is_resume_callsite(meta: &Metadata<'_>) -> bool {
    meta.name() == RESUME_NAME && meta.target() == module_path!()
}

// ---- the subscriber -----------------------------------------------------------------------------

/// The sandtrace subscriber. Use [`install`]; it has no state of its own (the buffer is static).
pub struct SandtraceSubscriber {
    _private: (),
}

impl Subscriber for SandtraceSubscriber {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if is_resume_callsite(meta) {
            return Interest::always();
        }
        if !level_on(meta.level()) {
            return Interest::never();
        }
        // Announced once, when tracing registers it: before any record can use it.
        if meta.is_span() {
            unsafe { (*SPAN_CALLSITES.0.get()).get_or_insert_with(Default::default).insert(meta.callsite(), meta) };
        }
        if unsafe { (*WRITER.0.get()).busy } {
            unsafe { (*UNANNOUNCED.0.get()).push(meta) };
        } else {
            with_writer(|w| w.announce(meta));
        }
        Interest::always()
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(match min_level() {
            i32::MIN..=0 => LevelFilter::TRACE,
            1 => LevelFilter::DEBUG,
            2 => LevelFilter::INFO,
            3 => LevelFilter::WARN,
            4 => LevelFilter::ERROR,
            _ => LevelFilter::OFF,
        })
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        level_on(meta.level()) || is_resume_callsite(meta)
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let meta = attrs.metadata();
        if is_resume_callsite(meta) {
            let mut carried = CarriedId(0);
            attrs.record(&mut carried);
            return Id::from_u64(carried.0.max(1));
        }
        let pending = unsafe { &mut *PENDING_RESUME.0.get() };
        if let Some(found) = pending.as_mut() {
            // resume_with: this span is the carried one of its callsite (name and target), if any.
            if let Some(id) = resume_id(meta.name(), Some(meta.target())) {
                *found = true;
                return Id::from_u64(id);
            }
            // Not carried: an id nothing refers to; resume_with forgets the span unrecorded.
            return Id::from_u64(alloc_span_id() as u64);
        }
        let id = alloc_span_id();
        with_writer(|w| {
            w.begin();
            let n = meta.fields().len();
            w.array(5 + n);
            w.byte(2);
            w.uint(id as u64);
            w.parent(attrs.is_root(), attrs.parent());
            w.uint(Writer::callsite_id(meta));
            w.time();
            let mut v = Values::positional(w, meta);
            attrs.record(&mut v);
            v.finish();
            w.commit();
        });
        Id::from_u64(id as u64)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        if values.is_empty() {
            return;
        }
        with_writer(|w| {
            w.begin();
            // array16 whose count is patched once the pairs are written.
            w.scratch.extend_from_slice(&[0xdc, 0, 0, 8]);
            w.uint(span.into_u64());
            let mut v = Values::pairs(w);
            values.record(&mut v);
            let pairs = v.pairs;
            let n = (2 + 2 * pairs) as u16;
            w.scratch[1..3].copy_from_slice(&n.to_be_bytes());
            if pairs > 0 {
                w.commit();
            }
        });
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        with_writer(|w| {
            w.begin();
            w.array(3);
            w.byte(3);
            w.uint(span.into_u64());
            w.uint(follows.into_u64());
            w.commit();
        });
    }

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        with_writer(|w| {
            w.begin();
            let n = meta.fields().len();
            w.array(4 + n);
            w.byte(9);
            w.uint(Writer::callsite_id(meta));
            w.parent(event.is_root(), event.parent());
            if unsafe { COARSE_EVENTS } {
                w.nil();
            } else {
                w.time();
            }
            let mut v = Values::positional(w, meta);
            event.record(&mut v);
            v.finish();
            w.commit();
        });
    }

    fn enter(&self, span: &Id) {
        with_writer(|w| w.span_time_record(4, span));
    }

    fn exit(&self, span: &Id) {
        with_writer(|w| w.span_time_record(5, span));
    }

    fn clone_span(&self, id: &Id) -> Id {
        with_writer(|w| {
            w.begin();
            w.array(2);
            w.byte(6);
            w.uint(id.into_u64());
            w.commit();
        });
        id.clone()
    }

    fn try_close(&self, id: Id) -> bool {
        with_writer(|w| w.span_time_record(7, &id));
        // The host counts references; the guest keeps no per-span state.
        false
    }
}

static mut COARSE_EVENTS: bool = false;

/// Coarse event clock (default off): events carry no time of their own and take the latest time
/// the guest sent (span records always read the clock), which saves a host clock read (tens of
/// ns) per event in hot loops.
pub fn coarse_event_clock(on: bool) {
    unsafe { COARSE_EVENTS = on };
}

// ---- installing ---------------------------------------------------------------------------------

static mut INSTALLED: bool = false;

/// Attaches to the host and makes sandtrace the global default `tracing` subscriber, and installs
/// the panic hook ([`install_panic_hook`]). Call it once at the start of every export the host
/// calls (later calls do nothing).
pub fn install() {
    unsafe {
        if INSTALLED {
            return;
        }
        INSTALLED = true;
    }
    attach();
    install_panic_hook();
    let _ = tracing_core::dispatcher::set_global_default(tracing_core::Dispatch::new(SandtraceSubscriber { _private: () }));
}

/// The callsite id of the panic event (metadata addresses, the other callsite ids, are never 1).
const PANIC_CALLSITE: u64 = 1;

/// A panic hook that records the panic as an ERROR event (`panic`, with `message`, `panic.file`,
/// `panic.line`, `panic.column`) in the innermost entered span, then gives the host its message
/// and location (`sandtrace.panic`), which becomes the execution's cause; the trap follows.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message: &str = if let Some(s) = payload.downcast_ref::<&str>() {
            s
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.as_str()
        } else {
            "Box<dyn Any>"
        };
        let (file, line, column) = match info.location() {
            Some(l) => (l.file(), l.line(), l.column()),
            None => ("", 0, 0),
        };
        attach();
        // The writer may be in the middle of a record (a Debug impl that panicked): that record
        // is abandoned (never committed), and the panic event is written in its place.
        let w = unsafe { &mut *WRITER.0.get() };
        w.busy = true;
        if level_number(&Level::ERROR) >= min_level() {
            w.begin();
            w.array(10);
            w.byte(1);
            w.uint(PANIC_CALLSITE);
            w.byte(1);
            w.str("panic");
            w.str(module_path!());
            w.byte(4);
            w.nil();
            w.nil();
            w.nil();
            w.array(4);
            for f in ["message", "panic.file", "panic.line", "panic.column"] {
                w.str(f);
            }
            w.commit();
            w.begin();
            w.array(8);
            w.byte(9);
            w.uint(PANIC_CALLSITE);
            w.nil();
            w.time();
            w.str(message);
            w.str(file);
            w.uint(line as u64);
            w.uint(column as u64);
            w.commit();
        }
        unsafe { host::panic(message.as_ptr(), message.len() as u32, file.as_ptr(), file.len() as u32, line, column) };
    }));
}

// ---- workflows ----------------------------------------------------------------------------------

/// The span an earlier, persisted execution of this workflow left open whose callsite has this
/// name (any target), or `None`. Enter it, add events and child spans to it; dropping the last
/// handle closes it (in the step that finishes it); [`carry`] leaves it open for the next step.
/// Its fields cannot be recorded through this handle (its metadata is sandtrace's own).
pub fn resume(name: &str) -> Option<tracing::Span> {
    resume_id(name, None).map(resumed_span)
}

/// As [`resume`], for the span whose callsite has this name and target.
pub fn resume_in(name: &str, target: &str) -> Option<tracing::Span> {
    resume_id(name, Some(target)).map(resumed_span)
}

/// The guest span id of the carried span (name, and target unless `None`), or `None`.
pub fn resume_id(name: &str, target: Option<&str>) -> Option<u64> {
    attach();
    let (tp, tl) = match target {
        Some(t) => (t.as_ptr(), t.len() as u32),
        None => (ptr::null(), 0),
    };
    let id = unsafe { host::resume_utf8(name.as_ptr(), name.len() as u32, tp, tl) };
    if id == 0 {
        return None;
    }
    // Spans of this execution are numbered above it (the host's first span id is, already).
    unsafe {
        if id >= NEXT_SPAN {
            NEXT_SPAN = id + 1;
        }
    }
    Some(id as u64)
}

struct Pending(UnsafeCell<Option<bool>>);
unsafe impl Sync for Pending {}
/// Set while `resume_with` makes its span: `Some(found)`.
static PENDING_RESUME: Pending = Pending(UnsafeCell::new(None));

/// The span an earlier, persisted execution left open from the callsite of the span `make`
/// creates (same name and target), with that callsite's metadata, so `record` works on it as on
/// the span it was; or `None` when none is carried (then nothing is recorded).
///
/// ```ignore
/// let wf = sandtrace_guest::resume_with(|| info_span!("order workflow", order = Empty, status = Empty));
/// if let Some(wf) = wf { wf.record("status", "paid"); }
/// ```
pub fn resume_with(make: impl FnOnce() -> tracing::Span) -> Option<tracing::Span> {
    attach();
    let pending = PENDING_RESUME.0.get();
    unsafe { *pending = Some(false) };
    let span = make();
    let found = unsafe { (*pending).take() } == Some(true);
    if found {
        Some(span)
    } else {
        std::mem::forget(span); // its id was never announced: no close for it either
        None
    }
}

fn resumed_span(id: u64) -> tracing::Span {
    tracing::span!(target: "sandtrace_guest", Level::ERROR, "sandtrace.resume", id)
}

/// Leaves a span open past the end of this execution (a workflow step that does not finish it):
/// its handle is forgotten, so no close is recorded; the host carries it when the run persists.
pub fn carry(span: tracing::Span) {
    std::mem::forget(span);
}
