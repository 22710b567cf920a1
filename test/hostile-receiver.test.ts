import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { CallsiteRegistry } from '../host/receiver/callsite-registry.js';
import { ReceiveError } from '../host/receiver/receive-error.js';
import { TracingEventReceiver } from '../host/receiver/receiver.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { carriedSpan, hostileStates } from './hostile/persisted-state.js';
import { drop, exit } from './helpers/events.js';

const registry = new CallsiteRegistry();

describe('hostile persisted state is refused up front, whole, with MALFORMED naming the problem', () => {
  for (const { name, state, problem } of hostileStates) {
    test(`receiver: ${name}`, () => {
      const started = performance.now();
      assert.throws(
        () => new TracingEventReceiver({ collector: new CaptureCollector(), registry, metadata: state.metadata, spans: state.spans }),
        (e: unknown) => e instanceof ReceiveError && e.code === 'MALFORMED' && /^persisted state refused: /.test(e.message) && problem.test(e.message),
      );
      assert.ok(performance.now() - started < 1_000, 'refused quickly');
    });
  }

  for (const { name, state, problem } of hostileStates) {
    test(`runQuickJS: ${name}`, async () => {
      const started = performance.now();
      const collector = new CaptureCollector();
      await assert.rejects(
        runQuickJS(`tracing.info('never')`, { collector, registry, state, persist: true }),
        (e: unknown) => e instanceof ReceiveError && e.code === 'MALFORMED' && problem.test(e.message),
      );
      assert.ok(performance.now() - started < 2_000, 'rejected quickly');
      assert.equal(collector.find('sandtrace.execution')?.closed, true, 'the execution span is closed');
    });
  }

  test('valid state with a carried enter still applies: exit and drop of the carried span', () => {
    const collector = new CaptureCollector();
    const r = new TracingEventReceiver({ collector, registry, clockOrigin: 0n, spans: { version: 1, spans: [carriedSpan(1, { entered: 2, parent: null })], stack: [1, 1] } });
    r.tryReceive(exit(1, 5n));
    r.tryReceive(drop(1, 6n));
    assert.equal(r.openSpans, 0);
    assert.equal(collector.find('work')!.closed, true);
  });
});
