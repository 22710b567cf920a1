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
import { drop, enter, eventSite, exit, follows, newEvent, newSpan, prng, spanSite } from './helpers/events.js';

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
  // The shared empties are frozen: a handler that pushes into one gets an error, not every later span changed.
  assert.throws(() => (a!.events as unknown[]).push(1), TypeError);
});
