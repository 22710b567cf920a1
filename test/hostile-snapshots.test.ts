import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { TeeCollector } from '../host/collectors/tee-collector.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import type { LogRecord, SpanRecord } from '../host/pipeline/telemetry-records.js';
import { ReceiveError } from '../host/receiver/receive-error.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';

type State = NonNullable<Awaited<ReturnType<typeof runQuickJS>>['state']>;
type Snap = Record<string, unknown> & { events: Array<Record<string, unknown>>; links: unknown[] };

function pipeline() {
  const spans: SpanRecord[] = [];
  const logs: LogRecord[] = [];
  const collector = new PipelineCollector({ handlers: { onSpan: (s) => spans.push(s), onLog: (l) => logs.push(l) } });
  return { collector, spans, logs };
}

/** A real run: opens `wf`, enters it, records an event in it (a span event in the snapshot), persists. */
async function persistedState(collector: PipelineCollector | TeeCollector): Promise<State> {
  const first = await runQuickJS(`const wf = tracing.span('wf', { n: 1 }); wf.enter(); tracing.info('inside'); 1`, { collector, persist: true });
  assert.ok(first.state !== undefined);
  return JSON.parse(JSON.stringify(first.state)) as State; // as storage hands it back
}

const RESUME = `tracing.info('guest ran'); const wf = tracing.resume('wf'); wf.exit(); wf.close(); 'resumed'`;

const corruptions: Array<{ name: string; corrupt: (s: Snap) => unknown; problem: RegExp }> = [
  { name: 'traceId not 32 hex characters', corrupt: (s) => ({ ...s, traceId: 'not-a-trace-id' }), problem: /traceId must be 32 hex characters/ },
  { name: 'traceId one character short', corrupt: (s) => ({ ...s, traceId: (s.traceId as string).slice(1) }), problem: /traceId must be 32 hex characters/ },
  { name: 'spanId not 16 hex characters', corrupt: (s) => ({ ...s, spanId: 'zzzzzzzzzzzzzzzz' }), problem: /spanId must be 16 hex characters/ },
  { name: 'event time not a decimal string', corrupt: (s) => ({ ...s, events: [{ ...s.events[0], time: 'yesterday' }] }), problem: /events\[0\]\.time must be unix ns as a decimal string/ },
  { name: 'event time a number', corrupt: (s) => ({ ...s, events: [{ ...s.events[0], time: 12 }] }), problem: /events\[0\]\.time must be unix ns/ },
  { name: 'links missing', corrupt: ({ links: _, ...rest }) => rest, problem: /links must be an array/ },
  { name: 'events missing', corrupt: ({ events: _, ...rest }) => rest, problem: /events must be an array/ },
  { name: 'traceFlags out of range', corrupt: (s) => ({ ...s, traceFlags: 256 }), problem: /traceFlags must be an integer from 0 to 255/ },
  { name: 'snapshot a string', corrupt: () => 'snapshot', problem: /must be an object/ },
];

async function assertRefused(collector: PipelineCollector | TeeCollector, state: State, problem: RegExp, guest: { logs: LogRecord[] }) {
  await assert.rejects(
    runQuickJS(RESUME, { collector, state, persist: true }),
    (e: unknown) =>
      e instanceof ReceiveError && e.code === 'MALFORMED' && /^persisted state refused: /.test(e.message) && /spans\.spans\[0\]\.collector: snapshot: /.test(e.message) && problem.test(e.message),
  );
  assert.ok(!guest.logs.some((l) => l.body === 'guest ran'), 'the guest never ran');
}

describe('collector snapshots are validated up front by their collector', () => {
  test('the uncorrupted state from a real run resumes, with the span ids it had', async () => {
    const { collector, spans } = pipeline();
    const state = await persistedState(collector);
    const snap = state.spans.spans[0]!.collector as Snap;
    const second = await runQuickJS(RESUME, { collector, state });
    assert.equal(second.value, 'resumed');
    const wf = spans.find((s) => s.name === 'wf')!;
    assert.equal(Buffer.from(wf.traceId).toString('hex'), snap.traceId);
    assert.equal(Buffer.from(wf.spanId).toString('hex'), snap.spanId);
    assert.deepEqual(wf.events.map((e) => e.name), ['inside', 'guest ran'], 'the persisted span event, then the one from the resumed run (inside the carried enter)');
  });

  for (const { name, corrupt, problem } of corruptions) {
    test(`PipelineCollector: ${name} is refused with MALFORMED before the guest runs`, async () => {
      const { collector, logs } = pipeline();
      const state = await persistedState(collector);
      const span = state.spans.spans[0]!;
      span.collector = corrupt(span.collector as Snap);
      await assertRefused(collector, state, problem, { logs });
      // A fresh host process (another collector) refuses it the same way.
      const other = pipeline();
      await assertRefused(other.collector, state, problem, other);
      assert.ok(other.spans.every((s) => s.name !== 'wf'), 'the carried span was never restored');
    });
  }

  test('TeeCollector names the member whose snapshot is wrong, and accepts null where a member kept none', async () => {
    const p = pipeline();
    const tee = new TeeCollector([new CaptureCollector(), p.collector]);
    const state = await persistedState(tee);
    const entries = state.spans.spans[0]!.collector as [unknown, Snap];
    assert.equal(entries.length, 2);

    const badPipeline = structuredClone(state);
    (badPipeline.spans.spans[0]!.collector as unknown[])[1] = { ...entries[1], spanId: '12' };
    await assertRefused(tee, badPipeline, /collector 1 \(PipelineCollector\): spanId must be 16 hex characters/, p);

    const badCapture = structuredClone(state);
    (badCapture.spans.spans[0]!.collector as unknown[])[0] = { ...(entries[0] as object), eventCount: -1 };
    await assertRefused(tee, badCapture, /collector 0 \(CaptureCollector\): eventCount must be the number of events/, p);

    const short = structuredClone(state);
    short.spans.spans[0]!.collector = [entries[0]];
    await assertRefused(tee, short, /has 1 entries; the tee has 2 collectors/, p);

    // null is what JSON makes of a member's `undefined` (no snapshot): restored as a new span, no throw.
    const nulled = structuredClone(state);
    (nulled.spans.spans[0]!.collector as unknown[])[0] = null;
    const second = await runQuickJS(RESUME, { collector: tee, state: nulled });
    assert.equal(second.value, 'resumed');
    assert.deepEqual(p.spans.find((s) => s.name === 'wf')!.events.map((e) => e.name), ['inside', 'guest ran']);
  });
});
