/**
 * Head sampling, decided once per execution: the host's traceparent, the active OpenTelemetry
 * span, the samplers the specification names, and what an unsampled execution still reports.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { context, ROOT_CONTEXT, trace, TraceFlags } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OpenTelemetryCollector } from '../host/bridge/opentelemetry-collector.js';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { ConfigError } from '../host/export/exporter-config.js';
import { alwaysOff, alwaysOn, parentBased, samplerFromEnv, traceIdRatio } from '../host/sampling/sampler.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';

const GUEST = `tracing.inSpan('work', { n: 1 }, () => tracing.info('inside')); tracing.counter('jobs', 1); tracing.enabled('error')`;
const SAMPLED = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const NOT_SAMPLED = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';

describe('head sampling: one decision per execution', () => {
  test('under an unsampled traceparent (the default sampler is parent-based): no spans or events, the guest sees tracing disabled, metrics still flow', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(GUEST, { collector, traceparent: NOT_SAMPLED });
    assert.equal(r.value, false, 'tracing.enabled is false in the guest');
    assert.equal(r.summary.sampled, false);
    assert.equal(collector.spans.size, 0, 'no execution span either');
    assert.equal(collector.events.length, 0);
    assert.deepEqual(collector.metrics.map((m) => [m.name, m.value]), [['jobs', 1]]);
  });

  test('under a sampled traceparent everything is traced', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(GUEST, { collector, traceparent: SAMPLED });
    assert.equal(r.value, true);
    assert.equal(r.summary.sampled, true);
    assert.deepEqual([...collector.spans.values()].map((s) => s.meta.name).sort(), ['sandtrace.execution', 'work']);
  });

  test('samplers: always_off for roots, parent-based follows the parent whatever the root sampler says', async () => {
    const off = new CaptureCollector();
    assert.equal((await runQuickJS(GUEST, { collector: off, sampler: alwaysOff })).summary.sampled, false);
    assert.equal(off.spans.size, 0);
    const follows = new CaptureCollector();
    assert.equal((await runQuickJS(GUEST, { collector: follows, sampler: parentBased(alwaysOff), traceparent: SAMPLED })).summary.sampled, true);
    assert.equal((await runQuickJS(GUEST, { collector: new CaptureCollector(), sampler: alwaysOn, traceparent: NOT_SAMPLED })).summary.sampled, true, 'always_on ignores the parent');
  });

  test('traceidratio decides by trace id, as every OpenTelemetry SDK does: the same trace is kept or dropped everywhere', () => {
    const half = traceIdRatio(0.5);
    const id = (low: number) => Uint8Array.from([...new Array(8).fill(0xab), low, ...new Array(7).fill(0)]);
    assert.equal(half.shouldSample({ parentSampled: undefined, traceId: id(0x10) }), true, 'low 8 bytes below ratio × 2^64');
    assert.equal(half.shouldSample({ parentSampled: undefined, traceId: id(0xf0) }), false);
    assert.equal(traceIdRatio(0).shouldSample({ parentSampled: undefined, traceId: id(0) }), false);
    assert.equal(traceIdRatio(1).shouldSample({ parentSampled: undefined, traceId: id(0xff) }), true);
    assert.throws(() => traceIdRatio(1.5), RangeError);
  });

  test('OTEL_SDK_DISABLED=true: nothing reaches the collector, not even metrics, and the guest sees tracing off', async () => {
    const collector = new CaptureCollector();
    process.env.OTEL_SDK_DISABLED = 'true';
    try {
      const r = await runQuickJS(GUEST, { collector, traceparent: SAMPLED });
      assert.equal(r.value, false);
      assert.equal(r.summary.sampled, false);
      assert.deepEqual([collector.spans.size, collector.events.length, collector.metrics.length], [0, 0, 0]);
    } finally {
      delete process.env.OTEL_SDK_DISABLED;
    }
    assert.equal((await runQuickJS(GUEST, { collector })).summary.sampled, true, 'read at each run');
  });

  test('OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG name the sampler; anything else is a ConfigError', () => {
    assert.equal(samplerFromEnv({}).description, 'ParentBased{root=AlwaysOnSampler}');
    assert.equal(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }).description, 'ParentBased{root=TraceIdRatioBased{0.25}}');
    assert.equal(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'always_off' }).description, 'AlwaysOffSampler');
    assert.throws(() => samplerFromEnv({ OTEL_TRACES_SAMPLER: 'jaeger_remote' }), ConfigError);
    assert.throws(() => samplerFromEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: 'half' }), /OTEL_TRACES_SAMPLER_ARG='half'/);
  });

  test('the OpenTelemetry bridge: an execution under an unsampled active span is not traced', async () => {
    const manager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(manager);
    try {
      const exporter = new InMemorySpanExporter();
      const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
      const collector = new OpenTelemetryCollector({ tracer: provider.getTracer('t') });
      const unsampled = trace.setSpanContext(ROOT_CONTEXT, { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.NONE });
      const r = await context.with(unsampled, () => runQuickJS(GUEST, { collector }));
      assert.equal(r.summary.sampled, false);
      assert.equal(exporter.getFinishedSpans().length, 0);
      const sampled = trace.setSpanContext(ROOT_CONTEXT, { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED });
      const s = await context.with(sampled, () => runQuickJS(GUEST, { collector }));
      assert.equal(s.summary.sampled, true);
      assert.ok(exporter.getFinishedSpans().some((x) => x.name === 'work'));
      await provider.shutdown();
    } finally {
      context.disable();
    }
  });
});
