/**
 * OTLP/HTTP with the JSON encoding (`http/json`, OTEL_EXPORTER_OTLP_PROTOCOL): the same messages
 * as JSON, with the OTLP JSON mapping's conventions (hex ids, 64-bit integers as strings), and a
 * partial success read from a JSON response.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { OtlpHttpExporter } from '../host/export/otlp-http-exporter.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import type { SpanRecord } from '../host/pipeline/telemetry-records.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';

describe('OTLP over http/json', () => {
  const received: Array<{ path: string; type: string | undefined; body: any }> = [];
  let reply = '{}';
  let url = '';
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
      received.push({ path: req.url!, type: req.headers['content-type'], body: JSON.parse(text) });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(reply);
    });
  });
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise((resolve) => server.close(resolve)));

  async function guestSpans(): Promise<SpanRecord[]> {
    const spans: SpanRecord[] = [];
    const collector = new PipelineCollector({ handlers: { onSpan: (s) => spans.push(s) } });
    await runQuickJS(`tracing.inSpan('handle', { n: 2n ** 60n + 1n }, () => tracing.info('inside'))`, { collector, traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    return spans;
  }

  test('OTEL_EXPORTER_OTLP_PROTOCOL=http/json sends the OTLP JSON mapping with Content-Type application/json', async () => {
    const exporter = new OtlpHttpExporter({ endpoint: url }, { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' });
    const r = await exporter.exportSpans(await guestSpans());
    assert.equal(r.code, 'success');
    const req = received.at(-1)!;
    assert.equal(req.path, '/v1/traces');
    assert.equal(req.type, 'application/json');
    const spans = req.body.resourceSpans[0].scopeSpans.flatMap((s: any) => s.spans);
    const handle = spans.find((s: any) => s.name === 'handle');
    assert.equal(handle.traceId, '0af7651916cd43dd8448eb211c80319c', 'ids as hex, as the JSON mapping says');
    assert.equal(handle.attributes.find((a: any) => a.key === 'n').value.intValue, (2n ** 60n + 1n).toString(), '64-bit integers as decimal strings');
    assert.equal(handle.events[0].name, 'inside');
    const exec = spans.find((s: any) => s.name === 'sandtrace.execution');
    assert.equal(exec.flags, 0x301, 'the remote parent flag, as in protobuf');
    await exporter.shutdown();
  });

  test('a JSON partial success is counted as rejected, with the collector message', async () => {
    reply = JSON.stringify({ partialSuccess: { rejectedSpans: '1', errorMessage: 'span too old' } });
    const exporter = new OtlpHttpExporter({ endpoint: url, protocol: 'http/json' }, {});
    const r = await exporter.exportSpans(await guestSpans());
    assert.equal(r.code, 'success');
    assert.equal(r.rejected, 1);
    assert.equal(r.message, 'span too old');
    reply = 'not json';
    const again = await exporter.exportSpans(await guestSpans());
    assert.equal(again.code, 'success');
    assert.equal(exporter.stats.unreadableResponses, 1, 'an unreadable 2xx body is counted, the items still exported');
    reply = '{}';
    await exporter.shutdown();
  });
});
