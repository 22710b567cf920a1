/**
 * What the receiver's and pipeline collector's hot-path shortcuts must not change: the span map
 * that holds its newest entry outside a Map behaves as a Map, and a collector that does not want
 * enters and exits gets no calls (one in a tee that does still gets them).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import type { Collector } from '../host/collectors/collector.js';
import { NullCollector } from '../host/collectors/null-collector.js';
import { TeeCollector } from '../host/collectors/tee-collector.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import type { SpanRecord } from '../host/pipeline/telemetry-records.js';
import { CallsiteRegistry } from '../host/receiver/callsite-registry.js';
import { NewestOutsideMap } from '../host/receiver/newest-outside-map.js';
import { TracingEventReceiver } from '../host/receiver/receiver.js';
import { drop, enter, eventSite, exit, follows, newEvent, newSpan, prng, record, spanSite } from './helpers/events.js';

test('newest_outside_map_matches_a_map_over_random_operations', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const rnd = prng(seed);
    const ours = new NewestOutsideMap<string>();
    const map = new Map<number, string>();
    for (let i = 0; i < 2000; i++) {
      const key = Math.floor(rnd() * 12);
      const op = rnd();
      if (op < 0.45) {
        ours.set(key, `v${i}`);
        map.set(key, `v${i}`);
      } else if (op < 0.8) assert.equal(ours.delete(key), map.delete(key), `seed ${seed} op ${i}`);
      else if (op < 0.99) {
        assert.equal(ours.get(key), map.get(key), `seed ${seed} op ${i}`);
        assert.equal(ours.has(key), map.has(key), `seed ${seed} op ${i}`);
      } else {
        ours.clear();
        map.clear();
      }
      assert.equal(ours.size, map.size, `seed ${seed} op ${i}`);
    }
    assert.deepEqual(ours.values(), [...map.values()], `seed ${seed}: insertion order`);
  }
});

test('receiver_skips_enter_and_exit_for_a_collector_that_does_not_want_them', () => {
  const calls: string[] = [];
  const pipeline = new PipelineCollector({ handlers: { onSpan: () => calls.push('span') } });
  pipeline.enter = () => void calls.push('enter');
  pipeline.exit = () => void calls.push('exit');
  const receiver = new TracingEventReceiver({ collector: pipeline, registry: new CallsiteRegistry() });
  for (const e of [spanSite(1, 's'), newSpan(1, 1), enter(1), exit(1), enter(1), drop(1)]) receiver.tryReceive(e);
  assert.deepEqual(calls, ['span']);
});

test('a_tee_with_one_child_that_wants_enters_passes_every_enter_and_exit_on', () => {
  const capture = new CaptureCollector();
  const spans: SpanRecord[] = [];
  const tee = new TeeCollector([new PipelineCollector({ handlers: { onSpan: (s) => spans.push(s) } }), capture]);
  assert.equal(tee.wantsEnterExit, true);
  assert.equal(new TeeCollector([new PipelineCollector({ handlers: {} })]).wantsEnterExit, false);
  const receiver = new TracingEventReceiver({ collector: tee, registry: new CallsiteRegistry(), clockOrigin: 1000n });
  for (const e of [spanSite(1, 's'), newSpan(1, 1, [], undefined, 1n), enter(1, 2n), exit(1, 3n), enter(1, 4n), drop(1, 5n)]) receiver.tryReceive(e);
  const [span] = capture.normalize().spans;
  assert.equal(span?.name, 's');
  assert.equal(spans.length, 1);
  const c: Collector = new NullCollector();
  assert.equal(c.wantsEnterExit, undefined); // absent: the receiver calls enter and exit as before
});

test('pipeline_spans_share_no_links_events_or_status_with_each_other', () => {
  const spans: SpanRecord[] = [];
  const receiver = new TracingEventReceiver({ collector: new PipelineCollector({ handlers: { onSpan: (s) => spans.push(s) } }), registry: new CallsiteRegistry() });
  const script = [spanSite(1, 'a'), spanSite(2, 'b'), eventSite(3, 'e', ['message', 'n']), newSpan(1, 1), newSpan(2, 2), newSpan(3, 2), follows(2, 1), newEvent(3, [['n', 1]], 3), drop(3), drop(2), drop(1)];
  for (const e of script) receiver.tryReceive(e);
  const byName = (n: string) => spans.filter((s) => s.name === n);
  const [b2, b1] = byName('b'); // in close order: span 3 (b2) first
  const [a] = byName('a');
  assert.equal(b2!.events.length, 1);
  assert.equal(b1!.events.length, 0);
  assert.equal(a!.events.length, 0);
  assert.equal(b1!.links.length, 1);
  assert.equal(b2!.links.length, 0);
  assert.equal(a!.links.length, 0);
  assert.deepEqual(a!.status, { code: 'unset' });
  // A span handed over has arrays of its own (review: a handler that pushed into the shared frozen
  // empties threw, see an_onSpan_handler_may_enrich_a_span_without_touching_other_spans).
  (a!.events as unknown[]).push(1);
  assert.equal(b1!.events.length, 0);
});

test('contextual_parents_and_the_resume_target_come_from_the_receiver_not_the_collectors_enters', () => {
  // The pipeline collector opts out of enter/exit: the receiver's own enter stack still decides a
  // contextual parent, and persist's innermost entered span (the next step's resume target).
  const spans: SpanRecord[] = [];
  const registry = new CallsiteRegistry();
  const receiver = new TracingEventReceiver({ collector: new PipelineCollector({ handlers: { onSpan: (s) => spans.push(s) } }), registry });
  for (const e of [spanSite(1, 'outer'), spanSite(2, 'inner', ['k']), newSpan(1, 1), enter(1), newSpan(2, 2, [['k', 1]]), enter(2), record(2, [['k', 2]])]) receiver.tryReceive(e);
  const metadata = receiver.persistMetadata();
  const state = receiver.persist();
  assert.deepEqual(state.stack, [1, 2]);
  // The receiver's values are its own: the collector's record on span 2 did not change what it persists.
  assert.deepEqual(state.spans.find((s) => s.id === 2)?.values, [['k', 2]]);
  const next: SpanRecord[] = [];
  const resumed = new PipelineCollector({ handlers: { onSpan: (s) => next.push(s) } });
  const r2 = new TracingEventReceiver({ collector: resumed, registry, metadata, spans: state });
  const target = r2.resumeTarget();
  assert.ok(target !== undefined);
  for (const e of [newSpan(3, 1), drop(3), drop(2), drop(1)]) r2.tryReceive(e); // 3: contextual, under the innermost carried span (2)
  r2.persist();
  const inner = next.find((s) => s.name === 'inner');
  const outer = next.find((s) => s.name === 'outer' && s.parentSpanId === undefined);
  const three = next.find((s) => s.name === 'outer' && s.parentSpanId !== undefined);
  assert.ok(inner && outer && three, next.map((s) => s.name).join());
  assert.deepEqual(three.parentSpanId, inner.spanId, 'span 3 hangs under the innermost entered span');
  assert.deepEqual(inner.parentSpanId, outer.spanId);
  assert.deepEqual(inner.attributes.find(([k]) => k === 'k'), ['k', 2]);
});

test('an_onSpan_handler_may_enrich_a_span_without_touching_other_spans', () => {
  // The handlers are the API for a pipeline of one's own (README): a span handed over is the
  // handler's to change. A span without events, links or a status of its own must not hand out
  // the collector's shared, frozen empties (a push threw, inside the guest's close).
  const out: SpanRecord[] = [];
  const collector = new PipelineCollector({
    handlers: {
      onSpan: (s) => {
        s.events.push({ time: s.end, name: 'enriched', attributes: [] });
        s.links.push({ traceId: s.traceId, spanId: s.spanId, traceFlags: 1 });
        s.status.code = 'ok';
        out.push(s);
      },
    },
  });
  const receiver = new TracingEventReceiver({ collector, registry: new CallsiteRegistry() });
  for (const e of [spanSite(1, 'a'), newSpan(1, 1), drop(1), newSpan(2, 1), drop(2)]) receiver.tryReceive(e);
  assert.equal(receiver.stats.rejected, 0, JSON.stringify(receiver.stats.rejectedByCode));
  assert.equal(out.length, 2);
  for (const s of out) {
    assert.deepEqual(s.events.map((e) => e.name), ['enriched']);
    assert.equal(s.links.length, 1);
    assert.equal(s.status.code, 'ok');
  }
  const plain: SpanRecord[] = [];
  const other = new TracingEventReceiver({ collector: new PipelineCollector({ handlers: { onSpan: (s) => plain.push(s) } }), registry: new CallsiteRegistry() });
  for (const e of [spanSite(1, 'a'), newSpan(1, 1), drop(1)]) other.tryReceive(e);
  assert.deepEqual([plain[0]?.events.length, plain[0]?.links.length, plain[0]?.status.code], [0, 0, 'unset'], 'the next span starts empty and unset');
});
