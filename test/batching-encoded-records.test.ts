/**
 * Spans and log records queued as their encoded bytes (an exporter with a `spanEncoder` and a
 * `logEncoder`, such as OtlpHttpExporter with protobuf): what reaches the collector, what the
 * memory bound charges, and what is lost.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { BatchingManager, chunkBytesFor } from '../host/batching/batching-manager.js';
import { RecordChunks } from '../host/batching/record-chunks.js';
import type { EncodedRecord, ExportResult, Exporter, RecordEncoder } from '../host/export/exporter.js';
import { encodeLogEntry, encodeLogs, encodeSpanEntry, encodeTraces, ProtoWriter } from '../host/export/otlp-encoder.js';
import { OtlpHttpExporter } from '../host/export/otlp-http-exporter.js';
import type { LogRecord, SpanRecord } from '../host/pipeline/telemetry-records.js';
import type { Values } from '../shared/records.js';
import { eventually } from './helpers/eventually.js';
import { OtlpTestServer } from './helpers/otlp-test-server.js';

const server = new OtlpTestServer();
before(() => server.start());
after(() => server.close());
beforeEach(() => {
  server.requests.length = 0;
  server.script.length = 0;
});

let n = 0;
/** A span with a bit of everything the encoder writes, in one of two scopes. */
function richSpan(i: number, attributes: Values = []): SpanRecord {
  const id = (len: number, seed: number) => Uint8Array.from({ length: len }, (_, k) => (seed * 31 + k * 7 + 1) & 0xff);
  return {
    traceId: id(16, i >> 3),
    spanId: id(8, i + 1000),
    parentSpanId: i % 3 === 0 ? undefined : id(8, i + 2000),
    traceFlags: 1,
    parentRemote: i % 5 === 0,
    name: `op ${++n} é`,
    scope: i % 4 === 0 ? 'billing' : 'orders',
    start: 1_700_000_000_000_000_000n + BigInt(i),
    end: 1_700_000_000_000_500_000n + BigInt(i),
    attributes: [['i', i], ['big', 2n ** 62n + BigInt(i)], ['ratio', i / 3], ['ok', i % 2 === 0], ['text', 'x'.repeat(i % 200)], ['raw', new Uint8Array([i & 0xff, 1, 2])], ['dbg', { debug: `{"i":${i}}` }], ...attributes],
    events: i % 2 === 0 ? [{ time: 1_700_000_000_000_100_000n + BigInt(i), name: 'loaded', attributes: [['items', i % 10]] }] : [],
    links: i % 7 === 0 ? [{ traceId: id(16, 9), spanId: id(8, 9), traceFlags: 1, remote: true }] : [],
    status: i % 6 === 0 ? { code: 'error', message: 'it broke' } : { code: 'unset' },
    executionId: 'exec',
    forced: undefined,
    droppedEvents: i % 11 === 0 ? 2 : 0,
  };
}

/** A log record with the fields the encoder writes, in one of two scopes, some inside a span. */
function richLog(i: number): LogRecord {
  const levels = ['trace', 'debug', 'info', 'warn', 'error'] as const;
  const level = levels[i % 5]!;
  return {
    time: 1_700_000_000_000_000_000n + BigInt(i),
    level,
    severityNumber: [1, 5, 9, 13, 17][i % 5]!,
    body: `log ${i} ${'y'.repeat(i % 50)}`,
    attributes: [['i', i], ['ok', i % 2 === 0]],
    scope: i % 3 === 0 ? 'billing' : 'orders',
    traceId: i % 2 === 0 ? new Uint8Array(16).fill(i & 0xff) : undefined,
    spanId: i % 2 === 0 ? new Uint8Array(8).fill((i + 1) & 0xff) : undefined,
    traceFlags: 1,
    executionId: i % 4 === 0 ? undefined : 'exec',
  };
}

const encodedLength = (s: SpanRecord) => encodeSpanEntry(s, new ProtoWriter(256)).length;
/** What batching charges a span queued as bytes, besides its chunk (QUEUED_SPAN_BYTES + twice its bytes). */
const charge = (s: SpanRecord) => 96 + 2 * encodedLength(s);

function exporter(options: ConstructorParameters<typeof OtlpHttpExporter>[0] = {}) {
  return new OtlpHttpExporter({ endpoint: server.url, compression: 'none', serviceName: 'enc', initialBackoffMs: 20, maxBackoffMs: 50, ...options }, {});
}

describe('records queued as encoded bytes', () => {
  test('each request is byte for byte what encodeTraces writes for the same spans', async () => {
    // Two scopes in large chunks; then one scope in 4 KiB chunks, so batches cross chunks.
    for (const { max, oneScope } of [{ max: 16 << 20, oneScope: false }, { max: 256 << 10, oneScope: true }]) {
      server.requests.length = 0;
      const e = exporter();
      assert.notEqual(e.spanEncoder(), undefined);
      const b = new BatchingManager(e, { maxBatchSize: 50, maxConcurrentExports: 1, maxMemoryBytes: max });
      const spans = Array.from({ length: 120 }, (_, i) => (oneScope ? { ...richSpan(i), scope: 'orders' } : richSpan(i)));
      for (const s of spans) assert.equal(b.addSpan(s), true);
      await b.shutdown();
      assert.equal(server.requests.length, 3);
      for (let k = 0; k < 3; k++) {
        const expected = encodeTraces(spans.slice(k * 50, k * 50 + 50), e.config.resource);
        assert.ok(Buffer.from(expected).equals(server.requests[k]!.body), `request ${k} differs from encodeTraces (bound ${max})`);
      }
      const s = b.getStats();
      assert.equal(s.exported.spans, 120);
      assert.equal(s.memoryBytes, 0, 'every chunk let go once its spans were exported');
    }
  });

  test('log records: each request is byte for byte what encodeLogs writes, and every chunk is let go', async () => {
    const e = exporter();
    assert.notEqual(e.logEncoder(), undefined);
    const b = new BatchingManager(e, { maxBatchSize: 40, maxConcurrentExports: 1, maxMemoryBytes: 128 << 10 });
    const logs = Array.from({ length: 100 }, (_, i) => richLog(i));
    for (const l of logs) assert.equal(b.addLog(l), true);
    const queued = b.getStats();
    const entries = logs.reduce((n, l) => n + 96 + 2 * encodeLogEntry(l, new ProtoWriter(256)).length, 0);
    assert.ok(queued.memoryBytes > entries && queued.memoryBytes <= entries + 8 * 2048, `${queued.memoryBytes} charged for ${entries} of entries and their 2 KiB chunks`);
    await b.shutdown();
    assert.equal(server.requests.length, 3);
    for (let k = 0; k < 3; k++) {
      assert.equal(server.requests[k]!.path, '/v1/logs');
      const expected = encodeLogs(logs.slice(k * 40, k * 40 + 40), e.config.resource);
      assert.ok(Buffer.from(expected).equals(server.requests[k]!.body), `request ${k} differs from encodeLogs`);
    }
    assert.equal(b.getStats().exported.logs, 100);
    assert.equal(b.getStats().memoryBytes, 0);
  });

  test('gzipped and split exports carry the same spans', async () => {
    const e = exporter({ compression: 'gzip', maxRequestBytes: 8 * 1024 });
    const b = new BatchingManager(e, { maxBatchSize: 100 });
    const spans = Array.from({ length: 100 }, (_, i) => richSpan(i));
    for (const s of spans) b.addSpan(s);
    await b.shutdown();
    assert.ok(server.requests.length > 1, 'the 100-span batch was split under an 8 KiB cap');
    const names: string[] = [];
    for (let k = 0; k < server.requests.length; k++) {
      assert.equal(server.requests[k]!.headers['content-encoding'], 'gzip');
      for (const rs of server.decoded(k).resourceSpans) for (const ss of rs.scopeSpans) for (const sp of ss.spans) names.push(sp.name);
    }
    assert.deepEqual(names.sort(), spans.map((s) => s.name).sort());
    assert.equal(b.getStats().exported.spans, 100);
    assert.equal(b.getStats().memoryBytes, 0);
  });

  test('the bound charges each span its bytes and each chunk whole, until its last span is let go', async () => {
    server.script.push({ status: 200, hang: true });
    const max = 1 << 20;
    const chunk = chunkBytesFor(max);
    assert.equal(chunk, 16 * 1024);
    const b = new BatchingManager(exporter({ timeoutMs: 60_000 }), { maxBatchSize: 10, maxMemoryBytes: max, maxConcurrentExports: 1 });
    const spans = Array.from({ length: 14 }, (_, i) => richSpan(i));
    let expected = 0;
    let used = 0; // bytes in the current chunk
    let chunks = 0;
    for (const s of spans) {
      const len = encodedLength(s);
      assert.ok(len <= chunk / 4, 'these spans share chunks');
      if (chunks === 0 || used + len > chunk) {
        chunks++;
        used = 0;
      }
      used += len;
      expected += charge(s);
      b.addSpan(s);
    }
    // Ten spans are in the hung export, four queued: all charged, with every chunk they touch.
    await eventually('the first export reached the collector', () => server.open === 1);
    const s = b.getStats();
    assert.equal(s.inFlightItems.spans, 10);
    assert.equal(s.queued.spans, 4);
    assert.equal(s.memoryBytes, expected + chunks * chunk);
    await b.shutdown(200);
    const end = b.getStats();
    assert.equal(end.memoryBytes, 0, 'what shutdown abandoned was let go, chunks included');
    assert.equal(end.dropped.spans.shutdown, 14);
  });

  test('under a small bound, logs and ordinary spans are evicted for error spans, chunks are let go, and every record is accounted for', async () => {
    server.script.push({ status: 200, delayMs: 1_000 }); // the flood finds the first export under way
    const max = 64 * 1024;
    const b = new BatchingManager(exporter(), { maxBatchSize: 20, maxMemoryBytes: max, maxConcurrentExports: 1 });
    const produced = 600;
    let logs = 0;
    for (let i = 0; i < produced; i++) {
      if (i % 3 === 2) {
        b.addLog(richLog(i * 5 + 2)); // info
        logs++;
      }
      const error = i % 4 === 0;
      const s = richSpan(error ? 6 * i : 6 * i + 1); // multiples of 6 end in error
      assert.equal(s.status.code === 'error', error);
      b.addSpan(s);
      const st = b.getStats();
      assert.ok(st.memoryBytes <= max, `${st.memoryBytes} charged under a ${max}-byte bound`);
      for (const kind of ['spans', 'logs'] as const) {
        const d = st.dropped[kind];
        assert.equal(st.produced[kind], st.exported[kind] + st.queued[kind] + st.inFlightItems[kind] + d.overflow + d.tooLarge + d.failed, kind);
      }
    }
    assert.ok(b.getStats().dropped.spans.overflow > 0, 'the bound was reached');
    await b.shutdown();
    const end = b.getStats();
    assert.equal(end.exported.spans + end.dropped.spans.overflow, produced, JSON.stringify(end));
    assert.equal(end.exported.logs + end.dropped.logs.overflow, logs, JSON.stringify(end));
    assert.ok(end.dropped.logs.overflow > 0, 'info logs were evicted first');
    assert.equal(end.memoryBytes, 0);
    let delivered = 0;
    let errors = 0;
    for (let k = 0; k < server.requests.length; k++) {
      if (server.requests[k]!.path !== '/v1/traces') continue;
      for (const rs of server.decoded(k).resourceSpans)
        for (const ss of rs.scopeSpans)
          for (const sp of ss.spans) {
            delivered++;
            if (sp.status?.code === 2) errors++;
          }
    }
    assert.equal(delivered, end.exported.spans);
    // A quarter of what was produced ended in error; what was kept was mostly those.
    assert.ok(errors / delivered > 0.5, `${errors} of ${delivered} delivered spans ended in error`);
  });

  test("whenFull 'block' with records queued as bytes: nothing queued is evicted, and room comes back with the export", async () => {
    server.script.push({ status: 200, delayMs: 150 });
    const b = new BatchingManager(exporter(), { maxMemoryBytes: 16 * 1024, whenFull: 'block', maxBatchSize: 1000, flushIntervalMs: 60_000 });
    let taken = 0;
    while (b.addLog(richLog(taken * 5))) taken++; // trace logs: the least important
    assert.ok(taken > 5, `${taken} taken`);
    assert.equal(b.addSpan({ ...richSpan(0), status: { code: 'error', message: 'x' } }), false, 'refused, not making room by evicting');
    const s = b.getStats();
    assert.deepEqual([s.queued.logs, s.dropped.logs.overflow, s.dropped.spans.overflow], [taken, 1, 1]);
    void b.flushAll();
    assert.equal(await b.whenRoom(4096, 5_000), true, 'room once the export completed');
    assert.equal(b.addSpan(richSpan(1)), true);
    await b.shutdown();
    const end = b.getStats();
    assert.deepEqual([end.exported.logs, end.exported.spans, end.memoryBytes], [taken, 1, 0]);
  });

  test('a span over a quarter of a chunk gets a chunk of its own; one over the whole bound is refused alone', async () => {
    const max = 64 * 1024;
    assert.equal(chunkBytesFor(max), 1024);
    const b = new BatchingManager(exporter(), { maxBatchSize: 1000, maxMemoryBytes: max, flushIntervalMs: 60_000 });
    const small = richSpan(1);
    const large = richSpan(3, [['pad', 'p'.repeat(900)]]); // more than the 1 KiB chunk has left
    b.addSpan(small);
    assert.equal(b.getStats().memoryBytes, charge(small) + 1024);
    b.addSpan(large);
    assert.equal(b.getStats().memoryBytes, charge(small) + 1024 + charge(large) + encodedLength(large), 'the large span has a chunk of exactly its size');
    const huge = richSpan(5, [['pad', 'h'.repeat(max)]]);
    const before = b.getStats();
    assert.equal(b.addSpan(huge), false);
    const after = b.getStats();
    assert.equal(after.dropped.spans.tooLarge, 1);
    assert.equal(after.queued.spans, before.queued.spans, 'nobody was evicted for it');
    assert.equal(after.memoryBytes, before.memoryBytes);
    await b.shutdown();
    assert.equal(b.getStats().exported.spans, 2);
    assert.equal(b.getStats().memoryBytes, 0);
  });

  test('a bound of a few KiB still takes small spans: a chunk is a 64th of the bound, at least 256 B', async () => {
    const max = 3000;
    assert.equal(chunkBytesFor(max), 256);
    const b = new BatchingManager(exporter(), { maxBatchSize: 1000, maxMemoryBytes: max, flushIntervalMs: 60_000 });
    const small: SpanRecord = { ...richSpan(1), attributes: [], events: [], links: [] };
    let taken = 0;
    while (b.addSpan({ ...small })) taken++;
    const s = b.getStats();
    assert.ok(taken >= 5, `${taken} spans taken under a ${max}-byte bound`);
    assert.ok(s.memoryBytes <= max);
    assert.equal(s.dropped.spans.overflow, 1);
    assert.equal(s.dropped.spans.tooLarge, 0);
    await b.shutdown();
    assert.equal(b.getStats().exported.spans, taken);
  });

  test('evicting the last spans of the chunk a new span was to join charges the chunk it gets instead: the bound holds and memory returns to 0', async () => {
    // Chunks of 256 B. Ordinary spans fill the bound; an error span that fits what the current
    // chunk has left evicts them newest first. Across these bounds, the last ordinary span taken
    // is sometimes alone in its chunk: evicting it frees that chunk, and the error span gets a
    // new one, which must be charged.
    const small = (error: boolean): SpanRecord => ({ ...richSpan(1), name: 'n', parentSpanId: undefined, attributes: [], events: [], links: [], status: error ? { code: 'error', message: '' } : { code: 'unset' } });
    for (let max = 2000; max <= 3200; max += 20) {
      assert.equal(chunkBytesFor(max), 256);
      const b = new BatchingManager(exporter(), { maxBatchSize: 1000, maxMemoryBytes: max, flushIntervalMs: 60_000 });
      while (b.addSpan(small(false)));
      let errors = 0;
      for (let i = 0; i < 30; i++) {
        if (b.addSpan(small(true))) errors++;
        const s = b.getStats();
        assert.ok(s.memoryBytes >= 0 && s.memoryBytes <= max, `${s.memoryBytes} charged under a ${max}-byte bound after error span ${i}`);
      }
      assert.ok(errors >= 5 && b.getStats().queued.spans === errors, `bound ${max}: ${errors} error spans taken, every ordinary one evicted`);
      await b.shutdown();
      const end = b.getStats();
      assert.equal(end.exported.spans, errors);
      assert.equal(end.memoryBytes, 0, `bound ${max}: every chunk charged once and let go once`);
    }
  });

  test('an encoder that throws or returns no bytes loses that span alone, counted as failed with why', async () => {
    const sent: EncodedRecord[][] = [];
    const w = new ProtoWriter(256);
    const encoder: RecordEncoder<SpanRecord> = {
      encode: (s) => {
        if (s.name.includes('bad')) throw new RangeError('no encoding for this one');
        if (s.name.includes('odd')) return 'not bytes' as unknown as Uint8Array;
        return encodeSpanEntry(s, w);
      },
      exportEncoded: async (spans) => {
        sent.push([...spans]);
        return { code: 'success', items: spans.length, attempts: 1, rejected: 0 } satisfies ExportResult;
      },
    };
    const fake: Exporter = {
      exportSpans: () => Promise.reject(new Error('records were not expected')),
      exportLogs: async (l) => ({ code: 'success', items: l.length, attempts: 1, rejected: 0 }),
      exportMetrics: async (m) => ({ code: 'success', items: m.length, attempts: 1, rejected: 0 }),
      spanEncoder: () => encoder,
      shutdown: async () => {},
    };
    const b = new BatchingManager(fake, { maxBatchSize: 10 });
    const one = richSpan(1);
    const bad = richSpan(2);
    bad.name = 'bad span';
    const three = richSpan(3);
    const odd = { ...richSpan(4), name: 'odd span' };
    b.addSpan(one);
    assert.equal(b.addSpan(odd), false);
    assert.match(b.getStats().lastFailure?.message ?? '', /encoding a span failed: the encoder returned string, not bytes/);
    assert.equal(b.addSpan(bad), false);
    b.addSpan(three);
    await b.shutdown();
    const s = b.getStats();
    assert.equal(s.dropped.spans.failed, 2);
    assert.equal(s.exported.spans, 2);
    assert.equal(s.memoryBytes, 0);
    assert.match(s.lastFailure?.message ?? '', /encoding a span failed: no encoding for this one/);
    // The exporter got each span's own bytes, copied out of the encoder's buffer before its next call.
    const got = sent.flat().map((e) => Buffer.from(e.buf.subarray(e.start, e.end)));
    assert.equal(got.length, 2);
    assert.ok(got[0]!.equals(encodeSpanEntry(one, new ProtoWriter(256))));
    assert.ok(got[1]!.equals(encodeSpanEntry(three, new ProtoWriter(256))));
  });

  test('an OTLP JSON exporter has no span encoder: batching queues records', async () => {
    const e = exporter({ protocol: 'http/json' });
    assert.equal(e.spanEncoder(), undefined);
    const b = new BatchingManager(e, { maxBatchSize: 10 });
    for (let i = 0; i < 5; i++) b.addSpan(richSpan(i));
    await b.shutdown();
    assert.equal(b.getStats().exported.spans, 5);
    assert.equal(server.requests[0]!.headers['content-type'], 'application/json');
  });
});

describe('RecordChunks', () => {
  test('spans share a chunk until it is full; a chunk is freed with its last span', () => {
    const c = new RecordChunks(1024);
    const bytes = new Uint8Array(200).fill(7);
    assert.equal(c.costOf(200), 1024, 'the first span makes a chunk');
    const a = c.add(bytes, 's');
    const spans = [a];
    for (let i = 1; i < 5; i++) {
      assert.equal(c.costOf(200), 0);
      spans.push(c.add(bytes, 's'));
    }
    assert.equal(c.costOf(200), 1024, '5 × 200 bytes fill it');
    const f = c.add(bytes, 's');
    assert.notEqual(f.buf, a.buf);
    assert.deepEqual([...f.buf.subarray(f.start, f.end)], [...bytes]);
    for (let i = 0; i < 4; i++) assert.equal(c.release(spans[i]!), 0);
    assert.equal(c.release(spans[4]!), 1024, 'its last span frees the first chunk');
    assert.equal(c.release(f), 1024, 'the current chunk too, when emptied');
    assert.equal(c.costOf(200), 1024, 'and the next span makes a new one');
  });

  test('a span over a quarter chunk gets its own chunk and leaves the current one alone', () => {
    const c = new RecordChunks(1024);
    const small = c.add(new Uint8Array(100), 's');
    assert.equal(c.costOf(300), 0, 'it fits what the current chunk has left');
    assert.equal(c.costOf(950), 950);
    const big = c.add(new Uint8Array(950).fill(1), 's');
    assert.equal(big.buf.length, 950);
    assert.equal(c.costOf(100), 0, 'the shared chunk still takes small spans');
    assert.equal(c.release(big), 950);
    assert.equal(c.release(small), 1024);
  });
});
