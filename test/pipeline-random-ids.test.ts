/**
 * Random trace and span ids of the pipeline collector (spans of runs without stable ids): cut
 * from a pool the OS generator fills, each must still be random, valid (never all zero, as W3C
 * and OTLP require) and its own bytes, which no later id overwrites.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import type { SpanRecord } from '../host/pipeline/telemetry-records.js';
import { CallsiteRegistry } from '../host/receiver/callsite-registry.js';

const registry = new CallsiteRegistry();
const meta = registry.intern({ kind: 'span', name: 'work', target: 'test', level: 'info', fields: [] });

/** Opens and closes `n` spans: one without a parent in 50 (a new trace), the others children of the first. */
function spans(n: number, collector: PipelineCollector, out: SpanRecord[]): void {
  const before = out.length;
  const root = collector.newSpan({ meta, parent: undefined, values: [], time: 1n });
  for (let i = 1; i < n; i++) {
    const id = collector.newSpan({ meta, parent: i % 50 === 0 ? undefined : root, values: [], time: 2n });
    collector.tryClose(id, 3n);
  }
  collector.tryClose(root, 4n);
  assert.equal(out.length - before, n);
}

test('random_span_ids_are_distinct_8_byte_arrays_of_their_own_never_zero_and_never_overwritten', () => {
  const out: SpanRecord[] = [];
  const collector = new PipelineCollector({ handlers: { onSpan: (s) => out.push(s) } });
  spans(30_000, collector, out); // several pool refills (8,192 span ids per 64 KiB)
  const copies = out.map((s) => Uint8Array.from(s.spanId));
  spans(30_000, collector, out); // more ids after the first ones were handed over
  const seen = new Set<string>();
  for (let i = 0; i < out.length; i++) {
    const { spanId, traceId } = out[i]!;
    assert.equal(spanId.length, 8);
    assert.equal(spanId.byteOffset, 0, 'an id is not a view into a shared pool');
    assert.equal(spanId.buffer.byteLength, 8, 'an id is not a view into a shared pool');
    assert.ok(spanId.some((b) => b !== 0), 'never the all-zero span id');
    assert.equal(traceId.length, 16);
    assert.ok(traceId.some((b) => b !== 0), 'never the all-zero trace id');
    const hex = Buffer.from(spanId).toString('hex');
    assert.ok(!seen.has(hex), `span id ${hex} repeated`);
    seen.add(hex);
  }
  for (let i = 0; i < copies.length; i++) assert.deepEqual(out[i]!.spanId, copies[i], `span ${i}'s id changed after later ids were made`);
  // Random: every bit position takes both values across the ids (a constant or counter-like id would not).
  for (let bit = 0; bit < 64; bit++) {
    let ones = 0;
    for (const s of out) ones += (s.spanId[bit >> 3]! >> (bit & 7)) & 1;
    assert.ok(ones > out.length * 0.45 && ones < out.length * 0.55, `bit ${bit} set in ${ones} of ${out.length} ids`);
  }
});

test('zero_bytes_from_the_generator_never_make_an_all_zero_id', (t) => {
  // A generator that returns zeros for the first half of each fill: those ids must be skipped.
  const real = crypto.getRandomValues.bind(crypto);
  const halfZero = (array: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> => {
    real(array);
    array.fill(0, 0, array.length >> 1);
    return array;
  };
  t.mock.method(crypto, 'getRandomValues', halfZero as typeof crypto.getRandomValues);
  const out: SpanRecord[] = [];
  const collector = new PipelineCollector({ handlers: { onSpan: (s) => out.push(s) } });
  spans(10_000, collector, out);
  for (const s of out) {
    assert.ok(s.spanId.some((b) => b !== 0));
    assert.ok(s.traceId.some((b) => b !== 0));
  }
  assert.ok((crypto.getRandomValues as unknown as { mock: { callCount(): number } }).mock.callCount() >= 2, 'the pool was refilled past the zeros');
});
