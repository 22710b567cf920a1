/**
 * Host cost per record, measured in a fresh process: the frames a real guest run handed to its
 * receiver (captured by bench/end-to-end) are replayed into a `TracingEventReceiver` feeding a
 * `PipelineCollector` (events as span events) with no-op handlers. A process of its own, so the
 * figure is not shaped by what the benchmarks before it ran in the same process (the
 * OpenTelemetry SDK, other collectors); in the bench process after the end-to-end rounds the same
 * replay measured about twice as slow. As in a real run, the guest's spans hang under an
 * execution span the collector opened first (the receiver's `rootParent`), so they share its
 * trace id and each pays one random span id.
 *
 * `replayInChild(frames, runs)` forks this file, sends the frames and returns ns per record of
 * each replay (after 3 warm-up replays).
 */
import { fork } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import { CallsiteRegistry } from '../host/receiver/callsite-registry.js';
import { TracingEventReceiver } from '../host/receiver/receiver.js';
import { hostNowNs } from '../host/clock.js';
import type { Values } from '../shared/records.js';

export interface ReplayResult {
  ns: number[];
  records: number;
}

/** The newest execution span info, kept alive between replays as the runner keeps its own. */
const kept: { info?: unknown } = {};

export function replay(frames: Uint8Array[], runs: number, registry = new CallsiteRegistry()): ReplayResult {
  const noop = () => {};
  const gc = (globalThis as { gc?: () => void }).gc;
  const ns: number[] = [];
  let records = 0;
  for (let r = 0; r < runs + 3; r++) {
    gc?.(); // each replay starts from a collected heap
    const collector = new PipelineCollector({ eventsAs: 'span-events', handlers: { onSpan: noop, onLog: noop, onMetric: noop } });
    const executionId = `replay-${r}`;
    // What the runner does before the guest starts: its execution span, parent of the guest's root spans.
    const meta = registry.intern({ kind: 'span', name: 'sandtrace.execution', target: 'sandtrace', level: 'info', fields: ['execution.id', 'guest.kind', 'guest.source'] });
    const info = { meta, parent: undefined, values: [['execution.id', executionId], ['guest.kind', 'wasm'], ['guest.source', 'replay']] as Values, time: hostNowNs(), executionId, guestSpanId: undefined };
    kept.info = info; // as the runner keeps its execution span's info between runs (KEEP_EXECUTION_INFO in execution.ts)
    const root = collector.newSpan(info);
    const receiver = new TracingEventReceiver({ collector, registry, executionId, rootParent: root });
    const t = process.hrtime.bigint();
    for (const f of frames) receiver.receiveBatch(f);
    const elapsed = Number(process.hrtime.bigint() - t);
    if (receiver.stats.rejected > 0) throw new Error(`replay: ${receiver.stats.rejected} records rejected: ${JSON.stringify(receiver.stats.rejectedByCode)}`);
    records = receiver.stats.applied;
    collector.tryClose(root, hostNowNs());
    if (r >= 3) ns.push(elapsed / records);
  }
  return { ns, records };
}

export function replayInChild(frames: Uint8Array[], runs: number): Promise<ReplayResult> {
  const child = fork(fileURLToPath(import.meta.url), [], { execArgv: ['--expose-gc'], serialization: 'advanced' });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`replay child exited (${code})`)));
    child.once('message', (m) => {
      child.removeAllListeners('exit');
      child.kill();
      const r = m as ReplayResult | { error: string };
      if ('error' in r) reject(new Error(r.error));
      else resolve(r);
    });
    child.send({ frames, runs });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.once('message', (m) => {
    const { frames, runs } = m as { frames: Uint8Array[]; runs: number };
    try {
      process.send!(replay(frames, runs));
    } catch (e) {
      process.send!({ error: String(e) });
    }
  });
}
