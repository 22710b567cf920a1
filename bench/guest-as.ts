/**
 * bench/guest-as: cost per event of the AssemblyScript library, against the same loop without
 * tracing, in one run. "Including the host-side drain" means the host copies every frame out of
 * guest memory (a receiver would decode it later; bench/receiver measures that part).
 */
import { fileURLToPath } from 'node:url';
import * as loader from '@assemblyscript/loader';
import { compileAssemblyScript } from '../host/sandbox/compile-assemblyscript.js';
import { readMemoryDeclaration } from '../host/sandbox/wasm-memory-limits.js';
import { median, type BenchRow } from './harness.js';

const N = 2_000_000;

async function instance() {
  const wasm = await compileAssemblyScript(fileURLToPath(new URL('../../bench/guests-as/events.ts', import.meta.url)));
  const decl = readMemoryDeclaration(wasm);
  const memory = new WebAssembly.Memory({ initial: decl.initial, maximum: 1024 });
  let state = 0;
  let buffer = 0;
  let drained = 0;
  const started = performance.now();
  const frames: Uint8Array[] = [];
  const { exports } = await loader.instantiate(wasm, {
    env: { memory, abort: () => {}, seed: () => 0 },
    sandtrace: {
      attach: (s: number, b: number) => {
        state = s;
        buffer = b;
        new DataView(memory.buffer).setInt32(s + 4, 2, true); // level: info
      },
      flush: (ptr: number, len: number) => {
        frames.push(new Uint8Array(memory.buffer, ptr, len).slice());
        drained += len;
        if (frames.length > 64) frames.length = 0;
      },
      now: () => Math.round((performance.now() - started) * 1e6),
    },
  });
  const run = (name: string) => {
    const t = process.hrtime.bigint();
    (exports[name] as (n: number) => number)(N);
    // Drain at the return, as runWasm does.
    if (state !== 0) {
      const v = new DataView(memory.buffer);
      const committed = v.getUint32(state, true);
      frames.push(new Uint8Array(memory.buffer, buffer, committed).slice());
      drained += committed;
      v.setUint32(state, 0, true);
      v.setFloat64(state + 8, 0, true);
    }
    return Number(process.hrtime.bigint() - t) / N;
  };
  const coarse = (on: boolean) => (exports.useCoarseClock as (b: number) => void)(on ? 1 : 0);
  return { run, coarse, drainedBytes: () => drained };
}

export async function run(): Promise<BenchRow[]> {
  const g = await instance();
  const bare: number[] = [];
  const enabled: number[] = [];
  const enabledCoarse: number[] = [];
  const disabled: number[] = [];
  g.run('enabledEvents'); // warm up every path
  g.run('disabledEvents');
  g.run('bare');
  const before = g.drainedBytes();
  for (let i = 0; i < 7; i++) {
    bare.push(g.run('bare'));
    enabled.push(g.run('enabledEvents'));
    disabled.push(g.run('disabledEvents'));
  }
  const bytesPerEvent = (g.drainedBytes() - before) / (7 * N);
  g.coarse(true);
  for (let i = 0; i < 7; i++) enabledCoarse.push(g.run('enabledEvents'));
  g.coarse(false);
  const base = median(bare);
  const on = median(enabled) - base;
  const onCoarse = median(enabledCoarse) - base;
  const off = median(disabled) - base;
  const clock = clockCost();
  return [
    { bench: 'guest-as', metric: 'bare loop, ns/iteration (baseline)', value: base.toFixed(2), target: '', ok: undefined },
    { bench: 'guest-as', metric: 'host clock read (performance.now), ns', value: clock.toFixed(1), target: '', ok: undefined },
    { bench: 'guest-as', metric: 'enabled event, 2 fields, precise clock, ns (incl. drain)', value: on.toFixed(1), target: '', ok: undefined },
    { bench: 'guest-as', metric: 'enabled event, 2 fields, coarse clock, ns (incl. drain)', value: onCoarse.toFixed(1), target: '≤ 25', ok: onCoarse <= 25 },
    { bench: 'guest-as', metric: 'disabled event, ns', value: off.toFixed(2), target: '≤ 2', ok: off <= 2 },
    { bench: 'guest-as', metric: 'bytes per enabled event on the wire', value: bytesPerEvent.toFixed(1), target: '', ok: undefined },
  ];
}

/** What the precise clock costs by itself: the floor under a timestamped record. */
function clockCost(): number {
  const n = 1_000_000;
  let s = 0;
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) s += performance.now();
  const ns = Number(process.hrtime.bigint() - t) / n;
  return s < 0 ? 0 : ns;
}
