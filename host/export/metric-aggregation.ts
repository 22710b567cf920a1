/**
 * Aggregates metric points per series (name, instrument, attributes) between exports: sums for
 * counters, last value for gauges, explicit-bucket histograms. Delta temporality: each collect()
 * starts the next interval. Series are capped, and series not updated for a while are removed.
 */
import type { Values } from '../../shared/records.js';
import { formatValue } from '../collectors/format-value.js';
import type { MetricPoint } from '../pipeline/telemetry-records.js';

interface SeriesBase {
  name: string;
  attributes: Values;
  /** Start of the interval this point covers, and the time of its latest update (unix ns). */
  start: bigint;
  time: bigint;
}
/**
 * Sums and gauges of integers stay integers (bigint, exported as OTLP `as_int`, exact beyond
 * 2^53) until a point with a fraction arrives; from then on the series is a double. A counter that
 * is ever given a negative increment is exported as a non-monotonic sum (an up-down counter).
 */
export type MetricSeries =
  | (SeriesBase & { kind: 'sum'; sum: number | bigint; monotonic: boolean })
  | (SeriesBase & { kind: 'gauge'; last: number | bigint })
  | (SeriesBase & { kind: 'histogram'; count: number; sum: number; min: number; max: number; bounds: number[]; buckets: number[] });

/** OpenTelemetry's default explicit bucket boundaries. */
export const DEFAULT_BOUNDS = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];

export interface AggregatorOptions {
  /** Distinct series held at most; points of new series past it are dropped and counted (default 2,000). */
  maxSeries?: number;
  /** Series not updated for this long are removed at collect() (default 10 minutes). */
  staleAfterMs?: number;
  bounds?: number[];
}

interface Slot {
  series: MetricSeries;
  /** What this series was charged when it was made (see `add`). */
  bytes: number;
  /** Points since the last collect(): nothing to export when 0. */
  fresh: number;
  lastUpdate: number;
}

export class MetricAggregator {
  private readonly slots = new Map<string, Slot>();
  private readonly maxSeries: number;
  private readonly staleAfterMs: number;
  private readonly bounds: number[];
  /** Points refused because the series cap was reached. */
  dropped = 0;
  /** Series with points since the last collect(). */
  private fresh = 0;
  /** Sum of what the series held were charged (the `bytes` given to `add` for each). */
  private held = 0;
  /** What the series returned by the latest collect() were charged, together. */
  collectedBytes = 0;

  constructor(options: AggregatorOptions = {}) {
    this.maxSeries = options.maxSeries ?? 2000;
    this.staleAfterMs = options.staleAfterMs ?? 600_000;
    this.bounds = options.bounds ?? DEFAULT_BOUNDS;
  }

  get size(): number {
    return this.slots.size;
  }

  /** Bytes charged for the series held (each as `add` was told when the series was made). */
  get bytes(): number {
    return this.held;
  }

  /** Series with points waiting for the next export. */
  get pending(): number {
    return this.fresh;
  }

  /** Forgets the points of every pending series (they will not be exported); returns how many series that was. */
  discardPending(): number {
    const n = this.fresh;
    for (const slot of this.slots.values()) {
      if (slot.fresh === 0) continue;
      reset(slot.series);
      slot.fresh = 0;
    }
    this.fresh = 0;
    return n;
  }

  /**
   * Adds a point; false when it was dropped (series cap, or a new series while `allowNew` is
   * false). A new series is charged `bytes` (see {@link seriesBytes}) until it is removed.
   */
  add(p: MetricPoint, allowNew = true, bytes = 0): boolean {
    const key = seriesKey(p);
    let slot = this.slots.get(key);
    if (slot === undefined) {
      if (!allowNew || this.slots.size >= this.maxSeries) {
        this.dropped++;
        return false;
      }
      slot = { series: this.newSeries(p), bytes, fresh: 0, lastUpdate: 0 };
      this.slots.set(key, slot);
      this.held += bytes;
    }
    const s = slot.series;
    if (slot.fresh === 0) s.start = p.time;
    s.time = p.time;
    if (s.kind === 'sum') {
      s.sum = addValues(s.sum, p.value);
      if (p.value < 0) s.monotonic = false;
    } else if (s.kind === 'gauge') s.last = inInt64(integral(p.value) ?? Number(p.value));
    else {
      const v = Number(p.value);
      s.count++;
      s.sum += v;
      if (v < s.min) s.min = v;
      if (v > s.max) s.max = v;
      let i = 0;
      while (i < s.bounds.length && v > s.bounds[i]!) i++;
      s.buckets[i]!++;
    }
    if (slot.fresh++ === 0) this.fresh++;
    slot.lastUpdate = Date.now();
    return true;
  }

  /** The series updated since the last call (copies), and a fresh interval for each; stale series are removed. */
  collect(now = Date.now()): MetricSeries[] {
    const out: MetricSeries[] = [];
    let bytes = 0;
    this.fresh = 0;
    for (const [key, slot] of this.slots) {
      if (slot.fresh > 0) {
        out.push(structuredClone(slot.series));
        bytes += slot.bytes;
        reset(slot.series);
        slot.fresh = 0;
      } else if (now - slot.lastUpdate > this.staleAfterMs) {
        this.slots.delete(key);
        this.held -= slot.bytes;
      }
    }
    this.collectedBytes = bytes;
    return out;
  }

  /** Bucket boundaries of this aggregator's histograms. */
  get histogramBounds(): readonly number[] {
    return this.bounds;
  }

  private newSeries(p: MetricPoint): MetricSeries {
    const base = { name: p.name, attributes: p.attributes, start: p.time, time: p.time };
    if (p.instrument === 'counter') return { ...base, kind: 'sum', sum: 0n, monotonic: true };
    if (p.instrument === 'gauge') return { ...base, kind: 'gauge', last: 0n };
    return { ...base, kind: 'histogram', count: 0, sum: 0, min: Infinity, max: -Infinity, bounds: this.bounds, buckets: new Array(this.bounds.length + 1).fill(0) };
  }
}

/** An integral value as a bigint (a bigint, or a safe integer number), else undefined. */
function integral(v: number | bigint): bigint | undefined {
  if (typeof v === 'bigint') return v;
  return Number.isSafeInteger(v) ? BigInt(v) : undefined;
}

/** A sum plus a point: exact while both are integral and within int64, a double from then on. */
function addValues(sum: number | bigint, v: number | bigint): number | bigint {
  if (typeof sum === 'bigint') {
    const i = integral(v);
    if (i !== undefined) return inInt64(sum + i);
    return Number(sum) + Number(v);
  }
  return sum + Number(v);
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** OTLP's `as_int` is an int64: a value beyond it becomes a double rather than wrapping around. */
function inInt64(v: number | bigint): number | bigint {
  return typeof v === 'bigint' && (v < INT64_MIN || v > INT64_MAX) ? Number(v) : v;
}

function reset(s: MetricSeries): void {
  if (s.kind === 'sum') s.sum = typeof s.sum === 'bigint' ? 0n : 0;
  else if (s.kind === 'histogram') {
    s.count = 0;
    s.sum = 0;
    s.min = Infinity;
    s.max = -Infinity;
    s.buckets.fill(0);
  }
}

function seriesKey(p: MetricPoint): string {
  let key = `${p.instrument}\0${p.name}`;
  const attrs = p.attributes.slice().sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  // The type is part of the key: `200` and `"200"` are different series, as in OpenTelemetry.
  for (const [k, v] of attrs) key += `\0${k}=${typeof v}:${formatValue(v)}`;
  return key;
}
