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
    const snap = state.spans.spans[0]!.collector!.pipeline as Snap;
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
      span.collector = { ...span.collector, pipeline: corrupt(span.collector!.pipeline as Snap) };
      await assertRefused(collector, state, problem, { logs });
      // A fresh host process (another collector) refuses it the same way.
      const other = pipeline();
      await assertRefused(other.collector, state, problem, other);
      assert.ok(other.spans.every((s) => s.name !== 'wf'), 'the carried span was never restored');
    });
  }

  test('TeeCollector names the member whose snapshot entry is wrong, and accepts null where a member kept none', async () => {
    const p = pipeline();
    const tee = new TeeCollector([new CaptureCollector(), p.collector]);
    const state = await persistedState(tee);
    const entries = state.spans.spans[0]!.collector!;
    assert.deepEqual(Object.keys(entries).sort(), ['capture', 'pipeline'], 'one entry per collector kind, by key');

    const badPipeline = structuredClone(state);
    badPipeline.spans.spans[0]!.collector!.pipeline = { ...(entries.pipeline as Snap), spanId: '12' };
    await assertRefused(tee, badPipeline, /collector 1 \(PipelineCollector\): spanId must be 16 hex characters/, p);

    const badCapture = structuredClone(state);
    badCapture.spans.spans[0]!.collector!.capture = { ...(entries.capture as object), eventCount: -1 };
    await assertRefused(tee, badCapture, /collector 0 \(CaptureCollector\): eventCount must be the number of events/, p);

    // Format 2 keys entries by collector kind: a positional (format-1 style) array is refused.
    const positional = structuredClone(state);
    (positional.spans.spans[0] as { collector: unknown }).collector = [entries.capture, entries.pipeline];
    await assert.rejects(runQuickJS(RESUME, { collector: tee, state: positional }), /collector: must be an object keyed by collector kind/);

    // null is what JSON makes of a member's `undefined` (no snapshot): restored as a new span, no throw.
    const nulled = structuredClone(state);
    nulled.spans.spans[0]!.collector!.capture = null;
    const second = await runQuickJS(RESUME, { collector: tee, state: nulled });
    assert.equal(second.value, 'resumed');
    assert.deepEqual(p.spans.find((s) => s.name === 'wf')!.events.map((e) => e.name), ['inside', 'guest ran']);
  });

  test('format-1 state (positional tee snapshots) is read as format 2, whatever the collectors now', async () => {
    const p = pipeline();
    const tee = new TeeCollector([new CaptureCollector(), p.collector]);
    const state = await persistedState(tee);
    const entries = state.spans.spans[0]!.collector!;
    const v1 = structuredClone(state) as unknown as { spans: { version: number; nextSpanId?: number; spans: Array<{ collector: unknown }> } };
    v1.spans.version = 1;
    delete v1.spans.nextSpanId;
    v1.spans.spans[0]!.collector = [entries.capture, entries.pipeline];
    // The next step runs with the pipeline alone (a host that dropped its terminal output).
    const alone = pipeline();
    const second = await runQuickJS(RESUME, { collector: alone.collector, state: v1 as unknown as State });
    assert.equal(second.value, 'resumed');
    const wf = alone.spans.find((s) => s.name === 'wf')!;
    assert.equal(Buffer.from(wf.spanId).toString('hex'), (entries.pipeline as Snap).spanId, 'the span keeps the id format 1 recorded');
    assert.deepEqual(wf.events.map((e) => e.name), ['inside', 'guest ran']);
  });
});
