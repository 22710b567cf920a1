/**
 * `npm start`: an end-to-end run of the receiver on recorded guest output.
 *
 * A guest SDK would write these frames inside a sandbox; here FrameWriter plays the guest so the
 * demo needs nothing but the host. It shows three executions of a plugin:
 *   1. a workflow step that opens a span and commits it with persist();
 *   2. the next step, in a fresh receiver restored from that state, finishing the span;
 *   3. a step that crashes in the middle of a span, which the host force-closes.
 */
import { FmtCollector } from '../host/collectors/fmt-collector.js';
import { TracingEventReceiver } from '../host/receiver/receiver.js';
import { FrameWriter } from '../shared/frame-writer.js';

const fmt = new FmtCollector();
const origin = BigInt(Date.now()) * 1_000_000n;

function callsites(w: FrameWriter): void {
  w.hello(1, 'recorded', '0.1.0', origin);
  w.newCallSite(1, 'span', 'workflow', 'demo::orders', 'info', undefined, 'orders.ts', 12, ['order_id', 'status']);
  w.newCallSite(2, 'span', 'charge_card', 'demo::payments', 'info', undefined, 'payments.ts', 40, ['amount_cents']);
  w.newCallSite(3, 'event', 'log', 'demo::orders', 'info', undefined, 'orders.ts', 20, ['message', 'items']);
  w.newCallSite(4, 'event', 'warn', 'demo::payments', 'warn', undefined, 'payments.ts', 51, ['message', 'retry_in_ms']);
}

function section(title: string): void {
  process.stdout.write(`\n── ${title} ${'─'.repeat(Math.max(0, 60 - title.length))}\n`);
}

// Execution 1: the workflow span starts, work happens, the step commits.
section('execution 1: step "reserve" (commits with persist())');
const w = new FrameWriter();
callsites(w);
w.newSpan(1, undefined, 1, 1_000, ['ord-1001', { empty: true }]);
w.spanEntered(1, 1_200);
w.newEvent(3, undefined, 250_000, ['reserved stock', 3]);
w.metric('counter', 'orders.reserved', 1, 260_000, ['region', 'eu']);
const first = new TracingEventReceiver({ collector: fmt, executionId: 'order-1001/step-1' });
const r1 = first.receiveBatch(w.finish());
const metadata = first.persistMetadata();
const state = JSON.parse(JSON.stringify(first.persist())); // as a workflow engine would store it
console.log(`   applied ${r1.applied} records; persisted ${state.spans.length} open span(s) as ${JSON.stringify(state).length} bytes of JSON`);

// Execution 2: a new receiver, restored from the stored state, finishes the span.
section('execution 2: step "charge" (resumes the workflow span)');
callsites(w);
w.newSpan(2, undefined, 2, 2_000_000, [4_999]);
w.spanEntered(2, 2_000_100);
w.newEvent(4, undefined, 2_400_000, ['card issuer slow', 250]);
w.spanExited(2, 3_100_000);
w.spanDropped(2, 3_100_100);
w.valuesRecorded(1, [1], ['paid']);
w.spanExited(1, 3_200_000);
w.spanDropped(1, 3_200_100);
const second = new TracingEventReceiver({ collector: fmt, metadata, spans: state, executionId: 'order-1001/step-2' });
const r2 = second.receiveBatch(w.finish());
second.persist();
console.log(`   applied ${r2.applied} records; the workflow span closed once, with its start from execution 1`);

// Execution 3: the guest dies mid-span; the frame it was writing is cut short.
section('execution 3: a plugin that traps in the middle of a span');
callsites(w);
w.newSpan(1, undefined, 1, 5_000, ['ord-1002', { empty: true }]);
w.spanEntered(1, 5_100);
w.newSpan(2, undefined, 2, 6_000, [120_00]);
w.spanEntered(2, 6_100);
w.newEvent(3, undefined, 90_000, ['calling the card network', 1]);
const cut = w.finish();
const crashed = new TracingEventReceiver({ collector: fmt, executionId: 'order-1002/step-1' });
const partial = cut.subarray(0, cut.length - 5); // the trap hit while the last record was being written
const r3 = crashed.receiveBatch(partial);
crashed.terminate({ kind: 'trap', message: 'unreachable executed' });
console.log(`   applied ${r3.applied} records, ${r3.truncated} truncated record at the cut; open spans force-closed with the cause`);
