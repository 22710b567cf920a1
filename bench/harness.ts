/** Tiny benchmark harness: alternating rounds of subject and baseline, median of per-round rates. */

export interface BenchRow {
  bench: string;
  metric: string;
  value: string;
  target: string;
  ok: boolean | undefined;
}

/** Runs `fn` (which processes `units` items) for ~`ms`, returns ns per unit. */
export function nsPerUnit(fn: () => void, units: number, ms = 200): number {
  fn(); // warm-up
  const start = process.hrtime.bigint();
  let runs = 0;
  let elapsed = 0n;
  const budget = BigInt(ms) * 1_000_000n;
  do {
    fn();
    runs++;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < budget);
  return Number(elapsed) / (runs * units);
}

/** Measures subject and baseline in alternating rounds (the machine is shared and noisy). */
export function compare(subject: () => void, baseline: () => void, units: number, rounds = 7, ms = 150): { subject: number; baseline: number; ratio: number } {
  const s: number[] = [];
  const b: number[] = [];
  const r: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const bs = nsPerUnit(baseline, units, ms);
    const ss = nsPerUnit(subject, units, ms);
    b.push(bs);
    s.push(ss);
    r.push(ss / bs);
  }
  return { subject: median(s), baseline: median(b), ratio: median(r) };
}

export function median(xs: number[]): number {
  const a = xs.slice().sort((x, y) => x - y);
  return a[a.length >> 1]!;
}

export function printTable(rows: BenchRow[]): void {
  const head = ['bench', 'metric', 'value', 'target', 'ok'];
  const cells = rows.map((r) => [r.bench, r.metric, r.value, r.target, r.ok === undefined ? '' : r.ok ? 'yes' : 'NO']);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const c of cells) console.log(line(c));
}
