import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SpanStatusCode, context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { OpenTelemetryCollector } from '../host/opentelemetry.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const contextManager = new AsyncLocalStorageContextManager();

before(() => {
  context.setGlobalContextManager(contextManager.enable());
  trace.setGlobalTracerProvider(provider);
});
after(async () => {
  await provider.shutdown();
  context.disable();
  trace.disable();
});

const byName = (spans: ReadableSpan[], name: string) => spans.find((s) => s.name === name)!;
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
const nanos = (t: [number, number]) => BigInt(t[0]) * 1_000_000_000n + BigInt(t[1]);

test("guest spans become children of the host's active span, with their times, attributes, events and status", async () => {
  exporter.reset();
  const host = trace.getTracer('host-app');
  await host.startActiveSpan('GET /orders', async (request) => {
    await runQuickJS(
      `tracing.inSpan('plugin work', { user: 'alice', n: 3 }, (s) => {
         tracing.info('loaded', { items: 2 });
         try { s.inSpan(() => { throw new TypeError('bad') }); } catch {}
       });`,
      { collector: new OpenTelemetryCollector(), executionId: 'otel-1' },
    );
    request.end();
  });
  const spans = exporter.getFinishedSpans();
  const request = byName(spans, 'GET /orders');
  const exec = byName(spans, 'sandtrace.execution');
  const work = byName(spans, 'plugin work');
  assert.equal(exec.spanContext().traceId, request.spanContext().traceId, 'one trace');
  assert.equal(parentOf(exec), request.spanContext().spanId, 'the execution span is a child of the request');
  assert.equal(parentOf(work), exec.spanContext().spanId);
  assert.deepEqual({ user: work.attributes.user, n: work.attributes.n, exec: work.attributes['sandtrace.execution.id'] }, { user: 'alice', n: 3, exec: 'otel-1' });
  assert.equal(work.events[0]!.name, 'loaded');
  assert.equal(work.events[0]!.attributes!.items, 2);
  assert.deepEqual(work.status, { code: SpanStatusCode.ERROR, message: 'TypeError: bad' });
  assert.ok(nanos(work.startTime) < nanos(work.endTime), 'the guest times');
  assert.ok(nanos(work.events[0]!.time) >= nanos(work.startTime) && nanos(work.events[0]!.time) <= nanos(work.endTime));
});

test('a guest that dies leaves its spans ended with an error status naming the cause', async () => {
  exporter.reset();
  // Flushed before it spins, and 1 s rather than 50 ms: a worker starved of CPU on a loaded machine
  // may reach its first line late, or miss the grace and be terminated, losing what it had not handed over.
  await runQuickJS(`tracing.span('stuck').enter(); tracing.flush(); for (;;) {}`, { collector: new OpenTelemetryCollector(), deadlineMs: 1_000 });
  const stuck = byName(exporter.getFinishedSpans(), 'stuck');
  assert.equal(stuck.status.code, SpanStatusCode.ERROR);
  assert.match(stuck.status.message!, /^deadline exceeded/);
  assert.equal(stuck.attributes['sandtrace.force_closed'], true);
  assert.equal(stuck.attributes['sandtrace.termination.cause'], 'deadline');
});

test('a traceparent given to the runner wins over the active context, and guest links become links', async () => {
  exporter.reset();
  await runQuickJS(`tracing.span('consumer', {}, { link: '00-11111111111111111111111111111111-2222222222222222-01' }).close();`, {
    collector: new OpenTelemetryCollector(),
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  });
  const spans = exporter.getFinishedSpans();
  const exec = byName(spans, 'sandtrace.execution');
  assert.equal(exec.spanContext().traceId, '0af7651916cd43dd8448eb211c80319c');
  assert.equal(parentOf(exec), 'b7ad6b7169203331');
  assert.deepEqual(byName(spans, 'consumer').links.map((l) => l.context.spanId), ['2222222222222222']);
});
