/**
 * bench/startup: a cold `import 'sandtrace'` and of each subpath entry, by package name (so the
 * bundles under dist/pkg/ that package.json's exports name, as a user's host loads them, not tsc's
 * files under dist/host/), against a cold import of quickjs-emscripten-core, the engine a QuickJS
 * host loads anyway, in the same run. Every import runs in a fresh `node` process, with the same
 * child script for both sides; the order rotates from round to round, and the file cache is warm
 * (one round is thrown away first), as for a server that restarts.
 *
 * The child (startup-child.ts) records three times:
 * - import: `performance.now()` just before and just after `await import(spec)`. The ratio and
 *   the target use this one: it is what the package costs, without Node's own start.
 * - settled: `performance.now()` after the import, i.e. from process start to import settled.
 * - wall: the child process's whole life, measured by this process around the spawn.
 * and the heap in use after the import and a full collection.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { median, type BenchRow } from './harness.js';

const BASELINE = 'quickjs-emscripten-core';
const SUBJECTS = ['sandtrace', 'sandtrace/quickjs', 'sandtrace/wasm', 'sandtrace/compile'] as const;
const ROUNDS = 9;
/** Target for the host entry: import time ≤ 3× quickjs-emscripten-core's (issue 9). */
const TARGET = 3;

/** Lives in the package (dist/bench/), so `sandtrace` resolves by name from it. */
const CHILD = fileURLToPath(new URL('./startup-child.js', import.meta.url));

interface Sample {
  importMs: number;
  settledMs: number;
  wallMs: number;
  heapBytes: number;
}

function coldImport(spec: string): Sample {
  const start = performance.now();
  const child = spawnSync(process.execPath, [CHILD, spec], { encoding: 'utf8' });
  const wallMs = performance.now() - start;
  if (child.status !== 0) throw new Error(`cold import of ${spec} failed (${child.status ?? child.signal}): ${child.stderr}`);
  return { ...(JSON.parse(child.stdout) as Omit<Sample, 'wallMs'>), wallMs };
}

export function run(): BenchRow[] {
  const specs = [BASELINE, ...SUBJECTS];
  const samples = new Map<string, Sample[]>(specs.map((s) => [s, []]));
  for (let round = -1; round < ROUNDS; round++) {
    const shift = Math.max(round, 0) % specs.length;
    for (const spec of [...specs.slice(shift), ...specs.slice(0, shift)]) {
      const sample = coldImport(spec);
      if (round >= 0) samples.get(spec)!.push(sample);
    }
  }
  const base = samples.get(BASELINE)!;
  const med = (spec: string, key: keyof Sample) => median(samples.get(spec)!.map((s) => s[key]));
  /** Median of the per-round ratios against the baseline of the same round. */
  const ratio = (spec: string, key: keyof Sample) => median(samples.get(spec)!.map((s, i) => s[key] / base[i]![key]));
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  const mib = (x: number) => `${(x / 1048576).toFixed(1)} MiB`;

  const rows: BenchRow[] = [{ bench: 'startup', metric: `${BASELINE}: cold import, ms (baseline)`, value: med(BASELINE, 'importMs').toFixed(1), target: '', ok: undefined }];
  for (const spec of SUBJECTS) {
    const r = ratio(spec, 'importMs');
    const target = spec === 'sandtrace' ? `≤ ${TARGET}×` : '';
    rows.push({ bench: 'startup', metric: `${spec}: cold import, ms; / baseline (ratio on import time)`, value: `${med(spec, 'importMs').toFixed(1)}, ${r.toFixed(1)}×`, target, ok: target ? r <= TARGET : undefined });
  }
  const versus = (key: keyof Sample, unit: (x: number) => string, digits: number) => `${unit(med('sandtrace', key))} vs ${unit(med(BASELINE, key))}, ${ratio('sandtrace', key).toFixed(digits)}×`;
  rows.push(
    { bench: 'startup', metric: 'sandtrace vs baseline: process start → import settled', value: versus('settledMs', ms, 2), target: '', ok: undefined },
    { bench: 'startup', metric: 'sandtrace vs baseline: child process wall time', value: versus('wallMs', ms, 2), target: '', ok: undefined },
    { bench: 'startup', metric: 'sandtrace vs baseline: heap in use after import and a full GC', value: versus('heapBytes', mib, 2), target: '', ok: undefined },
  );
  return rows;
}
