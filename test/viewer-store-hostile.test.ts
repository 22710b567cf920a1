/**
 * The viewer's store and index against hostile or unlucky input, over HTTP: huge, deeply nested
 * and attribute-heavy lines, a forged or odd index file, odd trace ids and query parameters, store
 * files replaced, deleted or appended to while read, eviction of spread traces and during appends,
 * traces known only from logs. Each must leave the viewer answering (a 4xx, a typed error or a
 * counted skip), never hanging, and never serving another trace's data.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, open, readFile, rm, stat, statfs, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { INDEX_FOLDER, type IndexStats } from '../host/viewer/store-index.js';
import type { ViewSpan } from '../host/viewer/store-reader.js';
import type { TraceSummary } from '../host/viewer/trace-digest.js';
import { MATCHED_HEADER, SKIPPED_LINES_HEADER, startViewer, type Viewer, type ViewerOptions } from '../host/viewer/view-server.js';

const folders: string[] = [];
const viewers: Viewer[] = [];
after(async () => {
  for (const v of viewers) await v.close();
  for (const f of folders) await rm(f, { recursive: true, force: true });
});

async function newFolder(): Promise<string> {
  const f = await mkdtemp(join(tmpdir(), 'sandtrace-hostile-'));
  folders.push(f);
  return f;
}
async function viewerOn(folder: string, options: Partial<ViewerOptions> = {}): Promise<Viewer> {
  const v = await startViewer({ folder, port: 0, ...options });
  viewers.push(v);
  return v;
}
/** Waits for a compaction under way (requests do not wait for it) to finish. */
async function settled(v: Viewer): Promise<void> {
  while (v.eviction.compacting) await new Promise((r) => setTimeout(r, 5));
}
async function close(v: Viewer): Promise<void> {
  viewers.splice(viewers.indexOf(v), 1);
  await v.close();
}

const tid = (n: number) => n.toString(16).padStart(32, '0');
const sid = (n: number) => n.toString(16).padStart(16, '0');
const T0 = 1_700_000_000_000_000_000n;
const ns = (ms: number) => String(T0 + BigInt(ms) * 1_000_000n);

/** A traces.jsonl line (as the exporter writes it) holding these spans. */
function spanLine(spans: Array<{ trace: number; id: number; name?: string; startMs?: number; attributes?: string }>, service = 'svc'): string {
  const items = spans.map(
    (s) =>
      `{"traceId":"${tid(s.trace)}","spanId":"${sid(s.id)}","name":"${s.name ?? `span-${s.id}`}","startTimeUnixNano":"${ns(s.startMs ?? s.trace)}","endTimeUnixNano":"${ns((s.startMs ?? s.trace) + 5)}","attributes":[${s.attributes ?? ''}],"status":{}}`,
  );
  return `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"${service}"}}]},"scopeSpans":[{"scope":{"name":"t"},"spans":[${items.join(',')}]}]}]}\n`;
}
function logLine(trace: number, body: string, atMs = trace): string {
  return `{"resourceLogs":[{"resource":{"attributes":[]},"scopeLogs":[{"scope":{"name":"t"},"logRecords":[{"timeUnixNano":"${ns(atMs)}","severityText":"INFO","body":{"stringValue":"${body}"},"traceId":"${tid(trace)}","spanId":"${sid(1)}","attributes":[]}]}]}]}\n`;
}

async function get<T>(v: Viewer, path: string): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await fetch(`${v.url}${path}`, { signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
  }
  return { status: res.status, body: body as T, headers: res.headers };
}
const stats = async (v: Viewer) => (await get<{ index: IndexStats }>(v, 'api/store')).body.index;
const ids = async (v: Viewer, query = '') => (await get<TraceSummary[]>(v, `api/traces${query}`)).body.map((t) => t.traceId);
const spansOf = async (v: Viewer, trace: number) => (await get<{ spans: ViewSpan[] }>(v, `api/traces/${tid(trace)}`)).body.spans;

describe('hostile lines', () => {
  test('a single line of 40 MB is indexed and opened; lines around it are unharmed', async () => {
    const folder = await newFolder();
    const big = 'x'.repeat(40 * 1024 * 1024);
    await writeFile(join(folder, 'traces.jsonl'), spanLine([{ trace: 1, id: 1 }]) + spanLine([{ trace: 2, id: 2, attributes: `{"key":"blob","value":{"stringValue":"${big}"}}` }]) + spanLine([{ trace: 3, id: 3 }]));
    const v = await viewerOn(folder, { persistIndex: false });
    assert.deepEqual(await ids(v), [tid(3), tid(2), tid(1)]);
    const [s] = await spansOf(v, 2);
    assert.equal((s!.attributes.blob as string).length, big.length);
    assert.equal((await spansOf(v, 3))[0]!.spanId, sid(3));
  });

  test('a multi-byte character straddling the 8 MiB read boundary is read whole', async () => {
    const folder = await newFolder();
    const first = spanLine([{ trace: 1, id: 1 }]);
    const marker = '@@BLOB@@';
    const template = spanLine([{ trace: 2, id: 2, attributes: `{"key":"blob","value":{"stringValue":"${marker}"}}` }]);
    const before = Buffer.byteLength(first) + Buffer.byteLength(template.slice(0, template.indexOf(marker)));
    // 'x' up to two bytes before the boundary, then a 4-byte character over it.
    const blob = `${'x'.repeat(8 * 1024 * 1024 - before - 2)}😀é`;
    await writeFile(join(folder, 'traces.jsonl'), first + template.replace(marker, blob));
    const v = await viewerOn(folder, { persistIndex: false });
    assert.equal((await get<unknown>(v, 'api/traces')).headers.get(SKIPPED_LINES_HEADER), '0');
    assert.equal(((await spansOf(v, 2))[0]!.attributes.blob as string).slice(-3), '😀é');
    assert.deepEqual(await ids(v, '?name=span-2'), [tid(2)]);
  });

  test('a line of 550 MB (past the longest string the engine makes, 2^29 − 24 characters) is skipped and counted, torn or whole; the lines after it are read', async (t) => {
    // The attack needs the real size (a smaller line would be a string the engine can make):
    // on a machine without room for it, say so rather than fail for want of disk.
    const fs = await statfs(tmpdir());
    if (fs.bavail * fs.bsize < 2 * 1024 ** 3) return t.skip('less than 2 GiB free in the temporary folder');
    const folder = await newFolder();
    t.after(() => rm(folder, { recursive: true, force: true }));
    const path = join(folder, 'traces.jsonl');
    const fd = await open(path, 'w');
    await fd.write(spanLine([{ trace: 1, id: 1 }]));
    const chunk = Buffer.alloc(8 * 1024 * 1024, 'x');
    await fd.write('{"resourceSpans":"');
    for (let i = 0; i < 66; i++) await fd.write(chunk);
    await fd.close();
    const v = await viewerOn(folder, { persistIndex: false });
    // Torn: not a line yet, so nothing is skipped, and what came before is served.
    let list = await get<TraceSummary[]>(v, 'api/traces');
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.map((t) => t.traceId), [tid(1)]);
    assert.equal(list.headers.get(SKIPPED_LINES_HEADER), '0');
    await appendFile(path, `"}\n${spanLine([{ trace: 3, id: 3 }])}`);
    list = await get<TraceSummary[]>(v, 'api/traces');
    assert.deepEqual(list.body.map((t) => t.traceId), [tid(3), tid(1)]);
    assert.equal(list.headers.get(SKIPPED_LINES_HEADER), '1');
    assert.equal((await spansOf(v, 3))[0]!.spanId, sid(3));
    assert.equal((await stats(v)).files['traces.jsonl'].indexedBytes, (await stat(path)).size);
  });

  test('an attribute value nested 100,000 levels deep is a counted bad line, not a broken viewer', async () => {
    const folder = await newFolder();
    const depth = 100_000;
    const deep = `{"kvlistValue":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`;
    await writeFile(join(folder, 'traces.jsonl'), spanLine([{ trace: 1, id: 1, attributes: `{"key":"deep","value":${deep}}` }]) + spanLine([{ trace: 2, id: 2 }]));
    await writeFile(join(folder, 'logs.jsonl'), logLine(2, 'fine') + logLine(2, 'x').replace('"attributes":[]', `"attributes":[{"key":"deep","value":${deep}}]`));
    const v = await viewerOn(folder, { persistIndex: false });
    const list = await get<TraceSummary[]>(v, 'api/traces');
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.map((t) => t.traceId), [tid(2)]);
    assert.equal(list.headers.get(SKIPPED_LINES_HEADER), '2');
    const trace = await get<{ logs: unknown[] }>(v, `api/traces/${tid(2)}`);
    assert.equal(trace.status, 200);
    assert.equal(trace.body.logs.length, 1);
  });

  test('attribute values of the wrong type are counted bad lines, not passed through as something else', async () => {
    const folder = await newFolder();
    const wrong = ['{"stringValue":{"intValue":"123"}}', '{"boolValue":"yes"}', '{"doubleValue":{"a":1}}', '{"bytesValue":7}'];
    await writeFile(join(folder, 'traces.jsonl'), wrong.map((value, i) => spanLine([{ trace: 10 + i, id: 10 + i, attributes: `{"key":"k","value":${value}}` }])).join('') + spanLine([{ trace: 1, id: 1, attributes: '{"key":"d","value":{"doubleValue":"NaN"}}' }]));
    const v = await viewerOn(folder, { persistIndex: false });
    const list = await get<TraceSummary[]>(v, 'api/traces');
    assert.deepEqual(list.body.map((t) => t.traceId), [tid(1)]);
    assert.equal(list.headers.get(SKIPPED_LINES_HEADER), String(wrong.length));
  });

  test('times written with leading zeros are read as the numbers they are: start, order and duration right', async () => {
    const folder = await newFolder();
    // Trace 1's root starts at 0005 ns, its child at 10 ns: as digit strings, "0005" would sort last.
    const line = `{"resourceSpans":[{"resource":{"attributes":[]},"scopeSpans":[{"scope":{"name":"t"},"spans":[{"traceId":"${tid(1)}","spanId":"${sid(1)}","name":"root","startTimeUnixNano":"0005","endTimeUnixNano":"00000000000000000100","status":{}},{"traceId":"${tid(1)}","spanId":"${sid(2)}","parentSpanId":"${sid(1)}","name":"child","startTimeUnixNano":"10","endTimeUnixNano":"20","status":{}}]}]}]}\n`;
    await writeFile(join(folder, 'traces.jsonl'), line);
    const v = await viewerOn(folder, { persistIndex: false });
    const [summary] = (await get<TraceSummary[]>(v, 'api/traces')).body;
    assert.equal(summary!.start, '5');
    assert.equal(summary!.durationMs, 95 / 1e6);
    const spans = await spansOf(v, 1);
    assert.deepEqual(spans.map((s) => [s.start, s.end]), [['5', '100'], ['10', '20']]);
  });

  test('a span with 100,000 attributes is listed, filtered on and opened', async () => {
    const folder = await newFolder();
    const many = Array.from({ length: 100_000 }, (_, i) => `{"key":"k${i}","value":{"intValue":"${i}"}}`).join(',');
    await writeFile(join(folder, 'traces.jsonl'), spanLine([{ trace: 1, id: 1, attributes: many }]) + spanLine([{ trace: 2, id: 2 }]));
    const v = await viewerOn(folder, { persistIndex: false });
    assert.deepEqual(await ids(v, '?attr=k99999=99999'), [tid(1)]);
    assert.deepEqual(await ids(v, '?attr=k99999=1'), []);
    assert.equal(Object.keys((await spansOf(v, 1))[0]!.attributes).length, 100_000);
  });
});

describe('hostile requests', () => {
  test('trace ids with traversal, odd characters or the wrong shape are 404, never a file read', async () => {
    const folder = await newFolder();
    await writeFile(join(folder, 'traces.jsonl'), spanLine([{ trace: 0xabc, id: 1 }]));
    const v = await viewerOn(folder, { persistIndex: false });
    for (const path of ['api/traces/..%2F..%2Fetc%2Fpasswd', 'api/traces/../../etc/passwd', `api/traces/${tid(0xabc).toUpperCase()}`, `api/traces/${tid(1)}%00`, `api/traces/${tid(1)}/x`, 'api/traces/%E2%80%AE', `api/traces/${'0'.repeat(31)}g`, `api/traces/${tid(2)}`, 'api/traces/' + 'f'.repeat(5000)]) {
      const res = await get<unknown>(v, path);
      assert.equal(res.status, 404, path);
    }
    assert.equal((await spansOf(v, 0xabc)).length, 1);
  });

  test('huge, repeated and regex-like query parameters: answered (or refused by size), each a plain text match', async () => {
    const folder = await newFolder();
    await writeFile(join(folder, 'traces.jsonl'), spanLine([{ trace: 1, id: 1, name: 'a.*b' }]) + spanLine([{ trace: 2, id: 2, name: 'axxb', attributes: '{"key":"k","value":{"stringValue":"(a+)+$"}}' }]));
    const v = await viewerOn(folder, { persistIndex: false });
    assert.deepEqual(await ids(v, '?name=.*'), [tid(1)]);
    assert.deepEqual(await ids(v, `?attr=${encodeURIComponent('k=(a+)+$')}`), [tid(2)]);
    assert.deepEqual(await ids(v, '?execution=%5B'), []);
    // 800 repeats fit Node's header limit: any of the services, all of the attributes.
    const services = Array.from({ length: 800 }, (_, i) => `service=s${i}`).join('&');
    const listed = await get<TraceSummary[]>(v, `api/traces?${services}&service=svc`);
    assert.equal(listed.status, 200);
    assert.equal(listed.headers.get(MATCHED_HEADER), '2');
    assert.deepEqual(await ids(v, `?${Array.from({ length: 800 }, () => 'attr=k=(a%2B)%2B$').join('&')}`), [tid(2)]);
    // 10,000 repeats (and a 1 MB value) are beyond it: refused by the server, which keeps serving.
    assert.equal((await fetch(`${v.url}api/traces?${Array.from({ length: 10_000 }, () => 'attr=x').join('&')}`)).status, 431);
    assert.equal((await fetch(`${v.url}api/traces?name=${'a'.repeat(1024 * 1024)}`)).status, 431);
    for (const q of ['limit=-1', 'limit=1e400', 'minMs=NaN', 'status=%00', 'limit=0.5', 'from=Infinity']) assert.equal((await get<unknown>(v, `api/traces?${q}`)).status, 400, q);
    assert.deepEqual(await ids(v, '?limit=1e9'), [tid(2), tid(1)]);
  });
});

/** Rewrites the persisted index: `edit` changes its body, the body's length and hash are made right again. */
async function forgeIndex(folder: string, edit: (body: { traces: Array<[string, number[], number[], unknown]>; metrics: number[] }) => void): Promise<void> {
  const path = join(folder, INDEX_FOLDER, 'index.json');
  const [headerText, bodyText] = (await readFile(path, 'utf8')).split('\n');
  const header = JSON.parse(headerText!);
  const body = JSON.parse(bodyText!);
  edit(body);
  const newBody = JSON.stringify(body);
  header.bodyBytes = Buffer.byteLength(newBody);
  header.bodySha256 = createHash('sha256').update(newBody).digest('hex');
  await writeFile(path, `${JSON.stringify(header)}\n${newBody}\n`);
}

describe('a hostile index file', () => {
  /** Three traces, one line each, and a fourth sharing trace 3's line; indexed and persisted. */
  async function indexedStore(): Promise<string> {
    const folder = await newFolder();
    await writeFile(join(folder, 'traces.jsonl'), spanLine([{ trace: 1, id: 1 }]) + spanLine([{ trace: 2, id: 2 }]) + spanLine([{ trace: 3, id: 3 }, { trace: 4, id: 4 }]));
    const v = await viewerOn(folder);
    assert.equal((await ids(v)).length, 4);
    await close(v);
    return folder;
  }
  const entry = (body: { traces: Array<[string, number[], number[], unknown]> }, trace: number) => body.traces.find((t) => t[0] === tid(trace))!;

  test('ranges pointing at another trace, into a line, over two lines, or repeated: never served as this trace', async () => {
    const forgeries: Array<[string, (spans: number[], all: { traces: Array<[string, number[], number[], unknown]> }) => number[]]> = [
      ['another trace', (_, all) => entry(all, 2)[1]],
      ['into a line', (s) => [s[0]! + 5, s[1]! - 5]],
      ['over two lines', (_, all) => [entry(all, 1)[1][0]!, entry(all, 1)[1][1]! + entry(all, 2)[1][1]!]],
      ['the same line twice', (s) => [...s, ...s]],
      ['overlapping lines', (_, all) => [entry(all, 1)[1][0]!, entry(all, 1)[1][1]!, entry(all, 1)[1][0]! + 1, 3]],
    ];
    for (const [what, forge] of forgeries) {
      const folder = await indexedStore();
      await forgeIndex(folder, (body) => {
        const e = entry(body, 1);
        e[1] = forge(e[1], body);
      });
      const v = await viewerOn(folder);
      const spans = await spansOf(v, 1);
      assert.deepEqual(
        spans.map((s) => [s.traceId, s.spanId, s.duplicates]),
        [[tid(1), sid(1), undefined]],
        what,
      );
      assert.deepEqual(await ids(v), [tid(4), tid(3), tid(2), tid(1)], what);
      const s = await stats(v);
      assert.equal(s.rebuilds.corruptIndex + s.rebuilds.inconsistent, 1, what);
      await close(v);
    }
  });

  test('a trace listed by the index but not in the store: opening it is a 404 and it leaves the list', async () => {
    const folder = await indexedStore();
    await forgeIndex(folder, (body) => {
      body.traces.push([tid(9), [], [], entry(body, 1)[3]]);
    });
    const v = await viewerOn(folder);
    assert.equal((await get<unknown>(v, `api/traces/${tid(9)}`)).status, 404);
    assert.deepEqual(await ids(v), [tid(4), tid(3), tid(2), tid(1)]);
    assert.equal((await stats(v)).rebuilds.inconsistent, 1);
  });

  test('negative, fractional, huge and past-the-end offsets make the index corrupt, and it is rebuilt', async () => {
    for (const bad of [[-1, 10], [0.5, 10], [2 ** 60, 10], [0, 2 ** 53], [0, 0], [1e6, 10]]) {
      const folder = await indexedStore();
      await forgeIndex(folder, (body) => {
        entry(body, 2)[1] = bad;
      });
      const v = await viewerOn(folder);
      assert.deepEqual(await ids(v), [tid(4), tid(3), tid(2), tid(1)], String(bad));
      assert.equal((await spansOf(v, 2))[0]!.spanId, sid(2));
      assert.equal((await stats(v)).rebuilds.corruptIndex, 1, String(bad));
      await close(v);
    }
  });

  test('an index file that is a symlink to a FIFO, a device, a directory or a 3 GiB file is not followed into a hang', async () => {
    for (const target of ['fifo', '/dev/zero', 'dir', 'huge']) {
      const folder = await newFolder();
      await writeFile(join(folder, 'traces.jsonl'), spanLine([{ trace: 1, id: 1 }]));
      await mkdir(join(folder, INDEX_FOLDER));
      let to = target;
      if (target === 'fifo') execFileSync('mkfifo', [(to = join(folder, 'a-fifo'))]);
      if (target === 'dir') await mkdir((to = join(folder, 'a-dir')));
      // Sparse: 3 GiB of nothing, past what a file read returns.
      if (target === 'huge') {
        await writeFile((to = join(folder, 'huge')), '');
        await truncate(to, 3 * 2 ** 30);
      }
      await symlink(to, join(folder, INDEX_FOLDER, 'index.json'));
      const v = await viewerOn(folder);
      assert.deepEqual(await ids(v), [tid(1)], target);
      assert.equal((await stats(v)).rebuilds.corruptIndex, 1, target);
      await close(v);
    }
  });
});

describe('store files changing under the viewer', () => {
  test('a store file replaced by a directory is a clear error; put back, the viewer serves again', async () => {
    const folder = await newFolder();
    const path = join(folder, 'traces.jsonl');
    await writeFile(path, spanLine([{ trace: 1, id: 1 }]));
    const v = await viewerOn(folder);
    assert.deepEqual(await ids(v), [tid(1)]);
    await unlink(path);
    await mkdir(path);
    const res = await get<string>(v, 'api/traces');
    assert.ok(res.status >= 500 && res.status < 600, String(res.status));
    assert.match(res.body, /traces\.jsonl is not a file/);
    await rm(path, { recursive: true });
    await writeFile(path, spanLine([{ trace: 2, id: 2 }]));
    assert.deepEqual(await ids(v), [tid(2)]);
  });

  test('a store file deleted while the viewer runs: its traces go, others stay', async () => {
    const folder = await newFolder();
    await writeFile(join(folder, 'traces.jsonl'), spanLine([{ trace: 1, id: 1 }]));
    await writeFile(join(folder, 'logs.jsonl'), logLine(1, 'hello'));
    const v = await viewerOn(folder);
    assert.equal((await get<{ logs: unknown[] }>(v, `api/traces/${tid(1)}`)).body.logs.length, 1);
    await unlink(join(folder, 'logs.jsonl'));
    assert.equal((await get<{ logs: unknown[] }>(v, `api/traces/${tid(1)}`)).body.logs.length, 0);
    await unlink(join(folder, 'traces.jsonl'));
    assert.equal((await get<unknown>(v, `api/traces/${tid(1)}`)).status, 404);
    assert.deepEqual(await ids(v), []);
  });

  test('appends while requests read: every answer is whole, every trace ends up listed once with its own span', async () => {
    const folder = await newFolder();
    const path = join(folder, 'traces.jsonl');
    await writeFile(path, spanLine([{ trace: 1, id: 1 }]));
    const v = await viewerOn(folder);
    const n = 300;
    const writer = (async () => {
      for (let i = 2; i <= n; i++) {
        const line = spanLine([{ trace: i, id: i, name: `é€😀-${i}` }]);
        // Torn in the middle of a multi-byte character, completed later.
        const cut = Buffer.from(line).indexOf(Buffer.from('😀')) + 2;
        await appendFile(path, Buffer.from(line).subarray(0, cut));
        await new Promise((r) => setImmediate(r));
        await appendFile(path, Buffer.from(line).subarray(cut));
      }
    })();
    let done = false;
    void writer.then(() => (done = true));
    while (!done) {
      const [list, one] = await Promise.all([get<TraceSummary[]>(v, 'api/traces'), spansOf(v, 1)]);
      assert.equal(list.status, 200);
      assert.equal(list.headers.get(SKIPPED_LINES_HEADER), '0');
      assert.deepEqual(one.map((s) => s.spanId), [sid(1)]);
    }
    await writer;
    const all = await ids(v, '?limit=1000');
    assert.equal(all.length, n);
    for (const i of [2, 150, n]) {
      const spans = await spansOf(v, i);
      assert.deepEqual(spans.map((s) => [s.traceId, s.name]), [[tid(i), `é€😀-${i}`]]);
    }
  });

  test('CRLF line ends are read as lines (the CR is JSON whitespace)', async () => {
    const folder = await newFolder();
    await writeFile(join(folder, 'traces.jsonl'), spanLine([{ trace: 1, id: 1 }]).replace('\n', '\r\n') + spanLine([{ trace: 2, id: 2 }]).replace('\n', '\r\n'));
    const v = await viewerOn(folder);
    assert.deepEqual(await ids(v), [tid(2), tid(1)]);
    assert.equal((await spansOf(v, 1))[0]!.spanId, sid(1));
    await close(v);
    const again = await viewerOn(folder);
    assert.equal((await spansOf(again, 2))[0]!.spanId, sid(2));
    assert.equal((await stats(again)).loadedFromDisk, true);
  });
});

describe('eviction under hostile shapes', () => {
  test('a trace whose spans are spread over many lines shared with others is evicted whole; the others keep their spans', async () => {
    const folder = await newFolder();
    let text = '';
    // Trace 1 (the oldest) has a span in each of 50 lines, each also holding a span of a newer trace.
    for (let i = 0; i < 50; i++) text += spanLine([{ trace: 1, id: 1000 + i, startMs: 1 }, { trace: 100 + i, id: 2000 + i, startMs: 100 + i }]);
    await writeFile(join(folder, 'traces.jsonl'), text);
    await writeFile(join(folder, 'logs.jsonl'), Array.from({ length: 20 }, (_, i) => logLine(1, `l${i}`, 1)).join('') + logLine(120, 'kept', 120));
    const size = (await stat(join(folder, 'traces.jsonl'))).size + (await stat(join(folder, 'logs.jsonl'))).size;
    const v = await viewerOn(folder, { maxStoreBytes: size - 1, evictEveryMs: 0 });
    await get<unknown>(v, 'api/traces');
    await settled(v);
    await get<unknown>(v, 'api/traces');
    assert.ok(v.eviction.runs >= 1);
    const left = await ids(v, '?limit=1000');
    assert.ok(!left.includes(tid(1)));
    for (const i of [100, 120, 149].filter((i) => left.includes(tid(i)))) assert.deepEqual((await spansOf(v, i)).map((s) => [s.traceId, s.spanId]), [[tid(i), sid(2000 + i - 100)]]);
    assert.equal((await get<unknown>(v, `api/traces/${tid(1)}`)).status, 404);
    const logs = await readFile(join(folder, 'logs.jsonl'), 'utf8');
    assert.ok(!logs.includes(tid(1)));
    assert.equal((await stats(v)).rebuilds.inconsistent, 0);
    assert.equal(v.eviction.failed, 0);
  });

  test('eviction while another process appends: no appended line is lost or torn, and no trace shows another trace\'s spans', async () => {
    const folder = await newFolder();
    const path = join(folder, 'traces.jsonl');
    let text = '';
    for (let i = 1; i <= 2000; i++) text += spanLine([{ trace: i, id: i, attributes: `{"key":"pad","value":{"stringValue":"${'p'.repeat(200)}"}}` }]);
    await writeFile(path, text);
    const v = await viewerOn(folder, { maxStoreBytes: Buffer.byteLength(text) / 2, evictEveryMs: 0 });
    // A separate process appends 400 lines, one open-append-close each, as the FileExporter does.
    const script = `const fs=require('fs');for(let i=10001;i<=10400;i++){const t=i.toString(16).padStart(32,'0'),s=i.toString(16).padStart(16,'0');fs.appendFileSync(${JSON.stringify(path)},${JSON.stringify(spanLine([{ trace: 0xabcdef, id: 0xabcdef }]))}.replaceAll(${JSON.stringify(tid(0xabcdef))},t).replaceAll(${JSON.stringify(sid(0xabcdef))},s).replaceAll(${JSON.stringify(ns(0xabcdef))},String(${T0}n+BigInt(i)*1000000n)).replaceAll(${JSON.stringify(ns(0xabcdef + 5))},String(${T0}n+BigInt(i+5)*1000000n)))}`;
    const child = (await import('node:child_process')).spawn(process.execPath, ['-e', script], { stdio: 'inherit' });
    const exited = new Promise((r) => child.once('exit', r));
    const busy = (async () => {
      for (let k = 0; k < 20; k++) await get<unknown>(v, 'api/traces?limit=1');
    })();
    assert.equal(await exited, 0);
    await busy;
    await settled(v);
    await get<unknown>(v, 'api/traces');
    const s = await stats(v);
    assert.equal(s.files['traces.jsonl'].skippedLines, 0);
    assert.ok(v.eviction.runs >= 1, 'compacted at least once');
    const listed = new Set(await ids(v, '?limit=100000'));
    for (let i = 10001; i <= 10400; i++) assert.ok(listed.has(tid(i)), `appended trace ${i} kept`);
    for (const i of [10001, 10200, 10400]) assert.deepEqual((await spansOf(v, i)).map((x) => [x.traceId, x.spanId]), [[tid(i), sid(i)]]);
    assert.equal(s.rebuilds.inconsistent, 0);
  });

  test('a compaction that cannot write its temporary file fails, is counted, and leaves the store and the index as they were', async () => {
    const folder = await newFolder();
    let text = '';
    for (let i = 1; i <= 50; i++) text += spanLine([{ trace: i, id: i }]);
    await writeFile(join(folder, 'traces.jsonl'), text);
    // A directory where the temporary file goes: its open fails, as in a read-only folder.
    await mkdir(join(folder, `.traces.jsonl.compact-${process.pid}.tmp`));
    const v = await viewerOn(folder, { maxStoreBytes: Buffer.byteLength(text) / 2, evictEveryMs: 0, persistIndex: false });
    await get<unknown>(v, 'api/traces');
    const parsed = (await stats(v)).parsedBytes;
    for (let k = 0; k < 3; k++) assert.equal((await ids(v, '?limit=100')).length, 50);
    await settled(v);
    assert.ok(v.eviction.failed >= 1);
    assert.match(v.eviction.lastError!, /^traces\.jsonl: /);
    const s = await stats(v);
    assert.equal(s.rebuilds.inconsistent, 0);
    // Each failed run left the index as it was: nothing read again.
    assert.equal(s.parsedBytes, parsed);
    assert.equal(await readFile(join(folder, 'traces.jsonl'), 'utf8'), text);
  });

  test('traces known only from logs are not listed, open as 404, and do not make the cap evict every trace', async () => {
    const folder = await newFolder();
    let logs = '';
    for (let i = 1; i <= 200; i++) logs += logLine(500 + i, `only logs ${i}`, i);
    await writeFile(join(folder, 'logs.jsonl'), logs);
    await writeFile(join(folder, 'traces.jsonl'), spanLine([{ trace: 1, id: 1, startMs: 1000 }]) + spanLine([{ trace: 2, id: 2, startMs: 2000 }]));
    const v = await viewerOn(folder, { maxStoreBytes: Buffer.byteLength(logs) / 2, evictEveryMs: 0 });
    await get<unknown>(v, 'api/traces');
    await settled(v);
    assert.equal((await get<unknown>(v, `api/traces/${tid(501)}`)).status, 404);
    const left = await ids(v);
    // The cap is met by evicting the log-only traces (oldest), not by deleting every listed trace.
    assert.deepEqual(left, [tid(2), tid(1)]);
    assert.ok((await stat(join(folder, 'logs.jsonl'))).size <= Buffer.byteLength(logs) / 2);
  });
});
