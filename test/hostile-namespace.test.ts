/**
 * Issue 10, "Forgery and injection": the `sandtrace.*` attribute namespace belongs to the host.
 * A real QuickJS guest (test/hostile/reserved-namespace-forgery.js) declares fields named like the
 * host's keys; through PipelineCollector and the OTLP protobuf encoder, every reserved key appears
 * once (the host's), and the guest's values are kept under `guest.sandtrace.*`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { encodeLogs, encodeTraces } from '../host/export/otlp-encoder.js';
import { otlpType } from '../host/export/otlp-proto.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import type { LogRecord, MetricPoint, SpanRecord } from '../host/pipeline/telemetry-records.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';

const HOSTILE = new URL('../../test/hostile/', import.meta.url);
const GUEST = readFileSync(new URL('reserved-namespace-forgery.js', HOSTILE), 'utf8');
const RESOURCE: Array<[string, string]> = [['service.name', 'namespace-test']];

function decode(type: string, bytes: Uint8Array): Record<string, any> {
  return otlpType(type).toObject(otlpType(type).decode(bytes), { longs: String, bytes: String, defaults: false }) as Record<string, any>;
}

/** Keys in order, and values by key (asserting first that no key repeats). */
function uniqueAttributes(attributes: Array<{ key: string; value: unknown }>): Record<string, unknown> {
  const keys = attributes.map((a) => a.key);
  assert.deepEqual(keys.filter((k, i) => keys.indexOf(k) !== i), [], `duplicate keys in ${keys.join(', ')}`);
  return Object.fromEntries(attributes.map((a) => [a.key, a.value]));
}

describe('hostile guest: the sandtrace.* namespace is reserved for the host', () => {
  test('forged reserved fields on a span that ends normally: one host key each, no forced close, guest values renamed', async () => {
    const spans: SpanRecord[] = [];
    const logs: LogRecord[] = [];
    const points: MetricPoint[] = [];
    const collector = new PipelineCollector({ eventsAs: 'both', handlers: { onSpan: (s) => spans.push(s), onLog: (l) => logs.push(l), onMetric: (m) => points.push(m) } });
    const result = await runQuickJS(GUEST, { collector, executionId: 'ns-1' });
    assert.equal(result.ok, true);
    assert.equal(result.summary.rejected, 0);
    // 3 span fields + 1 event field in the callsite announcements, 1 metric attribute.
    assert.equal(result.summary.reservedRenamed, 5);

    const req = decode('ExportTraceServiceRequest', encodeTraces(spans, RESOURCE));
    const all = req.resourceSpans.flatMap((rs: any) => rs.scopeSpans.flatMap((ss: any) => ss.spans));
    const forged = all.find((s: any) => s.name === 'forged');
    assert.ok(forged, 'the guest span is exported');
    const attrs = uniqueAttributes(forged.attributes);
    assert.deepEqual(attrs['sandtrace.execution.id'], { stringValue: 'ns-1' }, "the host's execution id");
    assert.equal(attrs['sandtrace.force_closed'], undefined, 'the span ended normally: no forced-close marking');
    assert.equal(attrs['sandtrace.termination.cause'], undefined);
    assert.deepEqual(attrs['guest.sandtrace.force_closed'], { boolValue: true });
    assert.deepEqual(attrs['guest.sandtrace.termination.cause'], { stringValue: 'trap' }, 'the recorded value, under the renamed key');
    assert.deepEqual(attrs['guest.sandtrace.execution.id'], { stringValue: 'someone-else' });
    assert.notEqual(forged.status?.code, 2, 'not an error');
    for (const s of all) uniqueAttributes(s.attributes);

    const logReq = decode('ExportLogsServiceRequest', encodeLogs(logs, RESOURCE));
    const records = logReq.resourceLogs.flatMap((rl: any) => rl.scopeLogs.flatMap((sl: any) => sl.logRecords));
    const log = records.find((r: any) => r.body?.stringValue === 'forged log');
    assert.ok(log, 'the guest log is exported');
    const logAttrs = uniqueAttributes(log.attributes);
    assert.deepEqual(logAttrs['sandtrace.execution.id'], { stringValue: 'ns-1' });
    assert.deepEqual(logAttrs['guest.sandtrace.execution.id'], { stringValue: 'mine' }, 'a guest name already outside the namespace is kept');
    assert.deepEqual(logAttrs['guest.guest.sandtrace.execution.id'], { stringValue: 'someone-else' }, 'the renamed one never collides with it');

    const metric = points.find((p) => p.name === 'forged.requests');
    assert.ok(metric);
    assert.deepEqual(Object.fromEntries(metric.attributes), { 'guest.sandtrace.execution.id': 'someone-else', route: '/a' });
  });

  test('collectors see the renamed names from the receiver (CaptureCollector)', async () => {
    const collector = new CaptureCollector();
    const result = await runQuickJS(GUEST, { collector, executionId: 'ns-2' });
    assert.equal(result.ok, true);
    const forged = collector.find('forged')!;
    assert.deepEqual(
      forged.meta.fields.filter((f) => f.includes('sandtrace.')),
      ['guest.sandtrace.force_closed', 'guest.sandtrace.termination.cause', 'guest.sandtrace.execution.id'],
    );
    assert.equal(forged.closed, true);
    assert.equal(forged.forced, undefined);
    const guestSpans = [...collector.spans.values()].filter((s) => s.meta.name !== 'sandtrace.execution');
    assert.ok(guestSpans.length > 0);
    for (const s of guestSpans) assert.ok(s.values.every(([k]) => !k.startsWith('sandtrace.')), `${s.meta.name}: ${s.values.map(([k]) => k)}`);
  });
});
