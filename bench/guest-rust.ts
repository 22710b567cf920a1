/**
 * bench/guest-rust: a Rust guest instrumented with `tracing` (test/guests-rust, built with Debian's
 * toolchain like the tests), through the sandtrace-guest subscriber:
 *  - an enabled event (message + 3 fields) and a disabled one, in the guest, ns/event, including
 *    the host copying frames out of guest memory;
 *  - end to end, the same events decoded and applied by the receiver (into a NullCollector),
 *    against the per-call design of tracing-tunnel: one host call per event carrying the event
 *    serialised as JSON, which the host decodes (TextDecoder + JSON.parse), in the same run;
 *  - through runWasm (a worker, as sandtrace runs guests): sandtrace's events against one host
 *    function call per event (the crossing alone, no JSON: a host function cannot read guest
 *    memory, so this is a lower bound for the per-call design in the sandbox).
 * Skipped (one row saying why) when the toolchain is not installed.
 *
 *   npm run build && node dist/bench/guest-rust.js
 */
import { NullCollector } from '../host/collectors/null-collector.js';
import { compileWasm } from '../host/sandbox/wasm-module-cache.js';
import { runWasm } from '../host/sandbox/wasm-runner.js';
import { TracingEventReceiver } from '../host/receiver/receiver.js';
import type { PersistedMetadata } from '../host/receiver/persisted-state.js';
import { rustGuest, rustToolchainMissing } from '../test/helpers/rust-guest.js';
import { median, printTable, type BenchRow } from './harness.js';

const N = 200_000;
const ROUNDS = 7;

async function instance() {
  const module = new WebAssembly.Module(await rustGuest());
  let memory!: WebAssembly.Memory;
  let state = 0;
  let buffer = 0;
  let level = 2; // info
  /** Where frames go: a receiver (end to end), or nowhere after a copy (guest cost). */
  let sink: ((frame: Uint8Array) => void) | undefined;
  const take = (ptr: number, len: number) => {
    const frame = new Uint8Array(memory.buffer, ptr, len).slice();
    sink?.(frame);
  };
  const started = performance.now();
  const decoder = new TextDecoder();
  let parsed = 0;
  const instance = new WebAssembly.Instance(module, {
    sandtrace: {
      attach: (s: number, b: number) => {
        state = s;
        buffer = b;
        new DataView(memory.buffer).setInt32(s + 4, level, true);
      },
      flush: take,
      now: () => Math.round((performance.now() - started) * 1e6),
      resume_utf8: () => 0,
      panic: () => {
        throw new Error('panic');
      },
    },
    bench: {
      // tracing-tunnel's host side: decode the event's JSON, once per event.
      event_json: (ptr: number, len: number) => {
        const event = JSON.parse(decoder.decode(new Uint8Array(memory.buffer, ptr, len))) as { event: { values: Record<string, unknown> } };
        parsed += event.event.values.i === undefined ? 0 : 1;
      },
    },
  });
  memory = instance.exports.memory as WebAssembly.Memory;
  const call = (name: string) => {
    const t = process.hrtime.bigint();
    (instance.exports[name] as (n: number) => void)(N);
    // Drain at the return, as runWasm does.
    if (state !== 0) {
      const v = new DataView(memory.buffer);
      take(buffer, v.getUint32(state, true));
      v.setUint32(state, 0, true);
      v.setFloat64(state + 8, 0, true);
    }
    return Number(process.hrtime.bigint() - t) / N;
  };
  return {
    call,
    setSink: (s: typeof sink) => (sink = s),
    parsed: () => parsed,
    setLevel: (l: number) => (level = l),
    coarse: (on: boolean) => (instance.exports.coarse_clock as (b: number) => void)(on ? 1 : 0),
  };
}

export async function run(): Promise<BenchRow[]> {
  const missing = rustToolchainMissing();
  if (missing !== undefined) return [{ bench: 'guest-rust', metric: 'skipped', value: missing, target: '', ok: undefined }];
  const g = await instance();
  // The first call registers the callsites (announced once): a receiver that saw them gives the
  // others the metadata, as a persisted execution would.
  const collector = new NullCollector();
  const first = new TracingEventReceiver({ collector });
  g.setSink((f) => first.receiveBatch(f));
  g.call('bench_events');
  g.call('bench_disabled');
  const metadata: PersistedMetadata = first.persistMetadata();
  g.setSink(undefined);
  g.call('bench_json');

  const enabled: number[] = [];
  const enabledCoarse: number[] = [];
  const disabled: number[] = [];
  const endToEnd: number[] = [];
  const perCall: number[] = [];
  let applied = 0;
  for (let i = 0; i < ROUNDS; i++) {
    g.setSink(undefined);
    enabled.push(g.call('bench_events'));
    disabled.push(g.call('bench_disabled'));
    g.coarse(true);
    enabledCoarse.push(g.call('bench_events'));
    g.coarse(false);
    const r = new TracingEventReceiver({ collector, metadata });
    g.setSink((f) => (applied += r.receiveBatch(f).applied));
    endToEnd.push(g.call('bench_events'));
    g.setSink(undefined);
    perCall.push(g.call('bench_json'));
  }
  if (applied !== ROUNDS * N) throw new Error(`the receiver applied ${applied} records, not ${ROUNDS * N}`);
  const on = median(enabled);
  const off = median(disabled);
  const e2e = median(endToEnd);
  const json = median(perCall);
  const ratio = json / e2e;
  const sandbox = await inSandbox();
  return [
    { bench: 'guest-rust', metric: 'enabled tracing event, message + 3 fields, ns (incl. copy out)', value: on.toFixed(1), target: '', ok: undefined },
    { bench: 'guest-rust', metric: 'the same, coarse event clock, ns (incl. copy out)', value: median(enabledCoarse).toFixed(1), target: '', ok: undefined },
    { bench: 'guest-rust', metric: 'disabled tracing event (below the host level), ns', value: off.toFixed(2), target: '', ok: undefined },
    { bench: 'guest-rust', metric: 'end to end (guest + receiver decode/apply), ns/event', value: e2e.toFixed(1), target: '', ok: undefined },
    { bench: 'guest-rust', metric: 'per-call JSON (tracing-tunnel design), ns/event', value: json.toFixed(1), target: '', ok: undefined },
    { bench: 'guest-rust', metric: 'per-call JSON / sandtrace, end to end', value: `${ratio.toFixed(1)}×`, target: '≥ 10×', ok: ratio >= 10 },
    { bench: 'guest-rust', metric: 'runWasm: sandtrace events, end to end, ns/event', value: sandbox.sandtrace.toFixed(1), target: '', ok: undefined },
    { bench: 'guest-rust', metric: 'runWasm: one host call per event (crossing only), ns/event', value: sandbox.perCall.toFixed(1), target: '', ok: undefined },
    { bench: 'guest-rust', metric: 'runWasm: per-call / sandtrace', value: `${(sandbox.perCall / sandbox.sandtrace).toFixed(1)}×`, target: '≥ 10×', ok: sandbox.perCall / sandbox.sandtrace >= 10 },
  ];
}

/** Both designs as sandtrace runs guests: runWasm on a worker, the receiver on this thread. */
async function inSandbox(): Promise<{ sandtrace: number; perCall: number }> {
  const module = await compileWasm(await rustGuest());
  const time = async (entry: string, n: number, eventJson: (...a: unknown[]) => unknown) => {
    const t = process.hrtime.bigint();
    const r = await runWasm(module, { entry, args: [n], collector: new NullCollector(), deadlineMs: 60_000, imports: { bench: { event_json: eventJson } } });
    if (!r.ok) throw new Error(`${entry}: ${r.summary.cause}`);
    return Number(process.hrtime.bigint() - t) / n;
  };
  const s: number[] = [];
  const p: number[] = [];
  await time('bench_events', 1000, () => {});
  await time('bench_json', 1000, () => {});
  for (let i = 0; i < 5; i++) {
    s.push(await time('bench_events', 200_000, () => {}));
    let calls = 0;
    p.push(await time('bench_json', 20_000, () => calls++));
  }
  return { sandtrace: median(s), perCall: median(p) };
}

// Run directly (node dist/bench/guest-rust.js): print the table.
if (import.meta.url === `file://${process.argv[1]}`) printTable(await run());
