/**
 * bench/sandbox: issue 9's targets for guests on worker threads, each a figure or ratio measured
 * in this run. sandbox-limits.ts holds the hostile guests (deadline, cancel, host timer, memory),
 * sandbox-cost.ts the costs (per run against bare engines in this thread, and throughput).
 */
import { loadavg } from 'node:os';
import type { BenchRow } from './harness.js';
import { runCost } from './sandbox-cost.js';
import { runLimits } from './sandbox-limits.js';

export async function run(): Promise<BenchRow[]> {
  // The machine may be shared: the load before the section helps read the figures after it.
  const load = loadavg().map((x) => x.toFixed(2)).join(', ');
  const context: BenchRow = { bench: 'sandbox', metric: 'load average (1, 5, 15 min) when this section started', value: load, target: '', ok: undefined };
  return [context, ...(await runLimits()), ...(await runCost())];
}
