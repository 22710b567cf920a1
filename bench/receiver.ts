/**
 * bench/receiver: decode + apply of a realistic event mix into a no-op collector, against plain
 * msgpackr unpacking of the same bytes in the same run; plus what callsite interning saves.
 */
import { Unpackr } from 'msgpackr';
import { NullCollector } from '../host/collectors/null-collector.js';
import { CallsiteRegistry } from '../host/receiver/callsite-registry.js';
import { TracingEventReceiver } from '../host/receiver/receiver.js';
import { FrameWriter } from '../shared/frame-writer.js';
import { compare, type BenchRow } from './harness.js';

/**
 * A plugin-like session: request spans with two fields, nested child spans, enter/exit pairs,
 * log events with a message and a number, occasional late records and metrics. Times advance by
 * 0.2–50 µs per record, as a busy guest's would. Frames of ~1,000 records, as a guest would flush.
 */
export function realisticFrames(spans: number): { frames: Uint8Array[]; records: number; bytes: number } {
  const w = new FrameWriter(1 << 16);
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  let t = 0;
  const tick = () => (t += 200 + Math.floor(rand() * 50_000));
  const frames: Uint8Array[] = [];
  let records = 0;
  let inFrame = 0;
  const emit = () => {
    records++;
    if (++inFrame >= 1000) {
      frames.push(w.finish());
      inFrame = 0;
    }
  };
  // Callsites go in the first frame.
  w.hello(1, 'bench', '0.1.0', 1_700_000_000_000_000_000n);
  w.newCallSite(1, 'span', 'request', 'plugin', 'info', undefined, 'plugin.ts', 10, ['route', 'attempt']);
  w.newCallSite(2, 'span', 'query', 'plugin::db', 'debug', undefined, 'db.ts', 42, ['table', 'rows']);
  w.newCallSite(3, 'event', 'log', 'plugin', 'info', undefined, 'plugin.ts', 20, ['message', 'n']);
  records += 4;
  inFrame += 4;
  const routes = ['/a', '/b', '/users', '/items/7'];
  let id = 0;
  for (let i = 0; i < spans; i++) {
    const req = ++id;
    w.newSpan(req, undefined, 1, tick(), [routes[i & 3]!, i & 7]);
    emit();
    w.spanEntered(req, tick());
    emit();
    w.newEvent(3, undefined, tick(), ['start', i & 127]);
    emit();
    const q = ++id;
    w.newSpan(q, undefined, 2, tick(), ['users', { empty: true }]);
    emit();
    w.spanEntered(q, tick());
    emit();
    w.spanExited(q, tick());
    emit();
    if ((i & 3) === 0) {
      w.valuesRecorded(q, [1], [i & 63]);
      emit();
    }
    w.spanDropped(q, tick());
    emit();
    if ((i & 7) === 0) {
      w.metric('counter', 'requests', 1, tick());
      emit();
    }
    w.spanExited(req, tick());
    emit();
    w.spanDropped(req, tick());
    emit();
  }
  if (w.length > 0) frames.push(w.finish());
  const bytes = frames.reduce((n, f) => n + f.length, 0);
  return { frames, records, bytes };
}

function interningCost(executions: number): { sharedBytes: number; unsharedBytes: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  const w = new FrameWriter();
  for (let c = 1; c <= 20; c++) w.newCallSite(c, c % 2 ? 'span' : 'event', `callsite_number_${c}_with_a_long_name`, `plugin::module::${c}`, 'info', `plugin::module::${c}`, `src/plugins/module_${c}.ts`, c * 10, ['message', `field_${c}_a`, `field_${c}_b`]);
  const frame = w.finish();
  const measure = (shared: boolean) => {
    gc?.();
    const before = process.memoryUsage().heapUsed;
    const keep: unknown[] = [];
    const registry = new CallsiteRegistry();
    const collector = new NullCollector();
    for (let i = 0; i < executions; i++) {
      const r = new TracingEventReceiver({ collector, registry: shared ? registry : new CallsiteRegistry() });
      r.receiveBatch(frame);
      keep.push(r); // executions still alive (say, with spans open), holding their callsites
    }
    gc?.();
    const after = process.memoryUsage().heapUsed;
    keep.length = 0;
    return Math.max(0, after - before) / executions;
  };
  return { sharedBytes: measure(true), unsharedBytes: measure(false) };
}

export function run(): BenchRow[] {
  const { frames, records, bytes } = realisticFrames(20_000);
  const unpackr = new Unpackr({ useRecords: false });
  const collector = new NullCollector();
  const registry = new CallsiteRegistry();
  let sink = 0;
  const subject = () => {
    const r = new TracingEventReceiver({ collector, registry });
    for (const f of frames) sink += r.receiveBatch(f).applied;
  };
  const baseline = () => {
    for (const f of frames) sink += (unpackr.unpackMultiple(f) as unknown[]).length;
  };
  // Sanity: every record applies.
  const check = new TracingEventReceiver({ collector, registry });
  let applied = 0;
  for (const f of frames) applied += check.receiveBatch(f).applied;
  if (applied !== records) throw new Error(`bench stream is broken: ${applied} of ${records} applied`);

  const { subject: ns, baseline: base, ratio } = compare(subject, baseline, records);
  const perSec = 1e9 / ns;
  const bpr = bytes / records;
  const intern = interningCost(1000);
  if (sink < 0) console.log(sink);
  return [
    { bench: 'receiver', metric: 'decode+apply, ns/record', value: ns.toFixed(0), target: '', ok: undefined },
    { bench: 'receiver', metric: 'msgpackr unpack, ns/record (baseline)', value: base.toFixed(0), target: '', ok: undefined },
    { bench: 'receiver', metric: 'receiver / plain unpack', value: `${ratio.toFixed(2)}×`, target: '≤ 3×', ok: ratio <= 3 },
    { bench: 'receiver', metric: 'records per second, one core', value: `${(perSec / 1e6).toFixed(2)} M`, target: '≥ 2 M', ok: perSec >= 2e6 },
    { bench: 'receiver', metric: 'bytes per record (mix)', value: bpr.toFixed(2), target: '≤ 12', ok: bpr <= 12 },
    { bench: 'receiver', metric: 'heap per execution, shared registry', value: `${intern.sharedBytes.toFixed(0)} B`, target: '', ok: undefined },
    { bench: 'receiver', metric: 'heap per execution, registry per execution', value: `${intern.unsharedBytes.toFixed(0)} B`, target: '', ok: undefined },
  ];
}
