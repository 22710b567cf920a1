import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { BatchingManager } from '../host/batching/batching-manager.js';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { FmtCollector } from '../host/collectors/fmt-collector.js';
import { escapeControls } from '../host/collectors/format-value.js';
import { FileExporter } from '../host/export/otlp-json.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import type { TraceSummary, ViewLog, ViewSpan } from '../host/viewer/trace-store.js';
import { startViewer } from '../host/viewer/view-server.js';

const CHROMIUM = '/usr/bin/chromium';
const CLI = fileURLToPath(new URL('../host/cli/main.js', import.meta.url));
const hostile = (name: string) => fileURLToPath(new URL(`../../test/hostile/${name}`, import.meta.url));

/** Anything a terminal would act on rather than show (a line's own newline aside). */
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sandtrace-hostile-'));
});
after(() => rm(dir, { recursive: true }));

function sandtrace(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : ((error as { code?: number }).code ?? -1), stdout, stderr });
    });
  });
}

describe('guest text printed on a terminal', () => {
  test('escape_controls_makes_every_control_and_bidi_character_visible', () => {
    assert.equal(escapeControls('plain ✔ text → ünïcode'), 'plain ✔ text → ünïcode');
    assert.equal(escapeControls('\r\x1b[2K✔'), '\\r\\x1b[2K✔');
    assert.equal(escapeControls('a\nb\tc\x07\b\x00\x7f\x9b\u202e\u2066\u2028'), 'a\\nb\\tc\\x07\\x08\\x00\\x7f\\x9b\\u202e\\u2066\\u2028');
  });

  test('sandtrace_run_prints_no_raw_escape_from_a_hostile_guest_and_its_failure_line_stays_a_failure', async () => {
    const r = await sandtrace(['run', hostile('terminal-escapes.js'), '--out', join(dir, 'store-cli'), '--level', 'trace']);
    assert.equal(r.code, 1, r.stdout);
    const lines = r.stdout.split('\n');
    for (const line of lines) assert.doesNotMatch(line, RAW_CONTROL, `raw control in ${JSON.stringify(line)}`);
    assert.doesNotMatch(r.stderr, RAW_CONTROL);
    assert.ok(!lines.some((l) => l.startsWith('✔')), 'no line claims completion');
    const failure = lines.find((l) => l.startsWith('✖ '));
    assert.equal(failure, '✖ uncaught exception: Error: \\r\\x1b[1A\\x1b[2K✔ completed → 3\\x1b[8m');
    // The tree shows the escaped names, field names and values, messages and metric.
    assert.ok(lines.some((l) => l.includes('┌ load\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07')), r.stdout);
    assert.ok(lines.some((l) => l.includes('user\\x1b[31m=')), r.stdout);
    assert.ok(lines.some((l) => l.includes('note\\u202e="\\u202etxt.exe"')), r.stdout);
    assert.ok(lines.some((l) => l.includes('\\r\\x1b[2K✔ completed\\x1b]8;;http://evil.example/\\x1b\\')), r.stdout);
    assert.ok(lines.some((l) => l.includes('◆ counter hits\\x1b[31m')), r.stdout);
  });

  test('the_fmt_collector_escapes_names_fields_messages_metrics_and_causes_of_a_real_guest', async () => {
    const lines: string[] = [];
    const source = await readFile(hostile('terminal-escapes.js'), 'utf8');
    const result = await runQuickJS(source, { collector: new FmtCollector({ write: (l) => lines.push(l), color: false }) });
    assert.equal(result.ok, false);
    assert.ok(lines.length >= 6, lines.join('\n'));
    for (const line of lines) {
      assert.doesNotMatch(line, RAW_CONTROL, `raw control in ${JSON.stringify(line)}`);
      assert.doesNotMatch(line, /\n/);
    }
    assert.ok(lines.some((l) => l.includes('nl="one\\ntwo"')), lines.join('\n'));
    assert.ok(lines.some((l) => l.includes('del="a\\x7fb"')), lines.join('\n'));
    assert.ok(lines.some((l) => l.includes('"b\\u2028c"')), lines.join('\n'));
    assert.ok(lines.some((l) => l.includes('✖ force-closed: uncaught exception: Error: \\r\\x1b[1A')), lines.join('\n'));
  });
});

describe('guest names that are object keys', () => {
  /** An own, enumerable property, and a prototype left alone. */
  function assertOwnField(fields: Record<string, unknown>, key: string, value: unknown): void {
    assert.equal(Object.getPrototypeOf(fields), Object.prototype, `the prototype of ${JSON.stringify(Object.keys(fields))} was changed`);
    assert.deepEqual(Object.getOwnPropertyDescriptor(fields, key)?.value, value, `${key} is an own field`);
    assert.ok(Object.keys(fields).includes(key));
  }

  test('capture_collector_normalize_keeps___proto___a_field_and_changes_no_prototype', async () => {
    const collector = new CaptureCollector();
    const source = await readFile(hostile('proto-field-names.js'), 'utf8');
    const result = await runQuickJS(source, { collector });
    assert.equal(result.ok, true);
    const trace = collector.normalize();
    const execution = trace.spans[0]!;
    const span = execution.children.find((s) => s.name === 'proto span')!;
    assertOwnField(span.fields, '__proto__', { debug: '{"polluted":true}' });
    assert.equal(span.fields.constructor, 'c');
    assert.equal((span.fields as Record<string, unknown>).polluted, undefined);
    assertOwnField(span.events[0]!.fields, '__proto__', 'as text');
    const metric = trace.metrics.find((m) => m.name === 'proto metric')!;
    assertOwnField(metric.attributes, '__proto__', { debug: '{"polluted":true}' });
    const rootEvent = execution.events.find((e) => e.fields.message === 'proto root event')!;
    assertOwnField(rootEvent.fields, '__proto__', { debug: '{"polluted":true}' });
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');
  });
});

/** Runs guests into a fresh local store, as `sandtrace run` does, and serves it. */
async function storeOf(name: string, guests: string[]): Promise<string> {
  const folder = join(dir, name);
  const batching = new BatchingManager(new FileExporter(folder));
  const collector = new PipelineCollector({ eventsAs: 'both', handlers: batching.handlers() });
  for (const g of guests) await runQuickJS(await readFile(hostile(g), 'utf8'), { collector, executionId: g });
  await batching.shutdown();
  return folder;
}

describe('sandtrace view over a hostile store', () => {
  test('the_viewer_api_keeps___proto___an_attribute_of_its_span_event_and_log', async () => {
    const viewer = await startViewer({ folder: await storeOf('store-proto', ['proto-field-names.js']), port: 0 });
    try {
      const traces = (await (await fetch(`${viewer.url}api/traces`)).json()) as TraceSummary[];
      assert.equal(traces.length, 1);
      const detail = (await (await fetch(`${viewer.url}api/traces/${traces[0]!.traceId}`)).json()) as { spans: ViewSpan[]; logs: ViewLog[] };
      const span = detail.spans.find((s) => s.name === 'proto span')!;
      assert.equal(Object.getOwnPropertyDescriptor(span.attributes, '__proto__')?.value, '{"polluted":true}');
      assert.equal(span.attributes.constructor, 'c');
      const log = detail.logs.find((l) => l.body === 'proto event')!;
      assert.equal(Object.getOwnPropertyDescriptor(log.attributes, '__proto__')?.value, 'as text');
    } finally {
      await viewer.close();
    }
  });
});

/** A request on 127.0.0.1 with a Host header of our choosing (fetch does not let us set it). */
function getWithHost(url: string, host: string): Promise<{ status: number; body: string; skipped: string | undefined }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: u.port, path: u.pathname, headers: { Host: host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, skipped: res.headers['x-sandtrace-skipped-lines'] as string | undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A store from a real guest, with the hostile lines of test/hostile/viewer-store-*.jsonl appended. */
async function storeWithBadLines(name: string): Promise<{ folder: string; bad: number }> {
  const folder = await storeOf(name, ['proto-field-names.js']);
  let bad = 0;
  for (const file of ['traces', 'logs', 'metrics']) {
    const lines = await readFile(hostile(`viewer-store-${file}.jsonl`), 'utf8');
    bad += lines.trim().split('\n').length;
    await appendFile(join(folder, `${file}.jsonl`), lines);
  }
  return { folder, bad };
}

describe('sandtrace view against DNS rebinding and a damaged store', () => {
  test('the_viewer_answers_only_host_headers_naming_its_loopback_address', async () => {
    const viewer = await startViewer({ folder: await storeOf('store-hosts', ['proto-field-names.js']), port: 0 });
    try {
      const port = new URL(viewer.url).port;
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`]) {
        assert.equal((await getWithHost(`${viewer.url}api/traces`, host)).status, 200, host);
      }
      for (const host of [`evil.example:${port}`, `127.0.0.1.evil.example:${port}`, `attacker.localhost:${port}`, '127.0.0.1', `127.0.0.1:${Number(port) + 1}`, `localhost:${port}@evil.example`]) {
        const r = await getWithHost(`${viewer.url}api/traces`, host);
        assert.equal(r.status, 421, host);
        assert.doesNotMatch(r.body, /proto span|traceId/, `${host}: no trace data`);
        assert.equal((await getWithHost(viewer.url, host)).status, 421, `${host}: not even the page`);
      }
    } finally {
      await viewer.close();
    }
  });

  test('bad_store_lines_are_skipped_and_counted_never_a_500_and_hostile_ids_never_reach_the_page', async () => {
    const { folder, bad } = await storeWithBadLines('store-bad-lines');
    const viewer = await startViewer({ folder, port: 0 });
    try {
      const list = await fetch(`${viewer.url}api/traces`);
      assert.equal(list.status, 200);
      assert.equal(list.headers.get('x-sandtrace-skipped-lines'), String(bad));
      const traces = (await list.json()) as TraceSummary[];
      assert.equal(traces.length, 1, 'only the guest run: every span of a bad line is skipped');
      assert.match(traces[0]!.traceId, /^[0-9a-f]{32}$/);
      const detail = await fetch(`${viewer.url}api/traces/${traces[0]!.traceId}`);
      assert.equal(detail.status, 200);
      assert.equal(detail.headers.get('x-sandtrace-skipped-lines'), String(bad));
      const body = (await detail.json()) as { spans: ViewSpan[]; logs: ViewLog[]; metrics: unknown[] };
      assert.deepEqual(body.spans.map((s) => s.name).sort(), ['proto span', 'sandtrace.execution']);
      for (const s of body.spans) {
        assert.match(s.spanId, /^[0-9a-f]{16}$/);
        if (s.parentSpanId !== undefined) assert.match(s.parentSpanId, /^[0-9a-f]{16}$/);
      }
      assert.equal(body.logs.length, 2, "the guest's two logs, none of the bad ones");
      assert.equal(body.metrics.length, 1);
    } finally {
      await viewer.close();
    }
  });

  test('in_chromium_the_page_shows_the_skipped_count_and_nothing_from_the_store_becomes_markup', { skip: existsSync(CHROMIUM) ? false : `needs ${CHROMIUM}` }, async () => {
    const { folder, bad } = await storeWithBadLines('store-page');
    // A well-formed line whose names and causes are markup: shown as text, never parsed.
    const markup = '<img src=x onerror="window.injected=4">';
    const span = {
      traceId: 'fedcba9876543210fedcba9876543210',
      spanId: 'fedcba9876543210',
      name: markup,
      startTimeUnixNano: '1000',
      endTimeUnixNano: '2000',
      status: { code: 2, message: markup },
      attributes: [
        { key: 'sandtrace.force_closed', value: { boolValue: true } },
        { key: 'sandtrace.termination.cause', value: { stringValue: markup } },
        { key: 'sandtrace.execution.id', value: { stringValue: markup } },
      ],
    };
    await appendFile(join(folder, 'traces.jsonl'), `${JSON.stringify({ resourceSpans: [{ scopeSpans: [{ scope: { name: 'guest' }, spans: [span] }] }] })}\n`);
    const viewer = await startViewer({ folder, port: 0 });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
    try {
      const page = await browser.newPage();
      await page.goto(viewer.url);
      await page.waitForSelector('.trace');
      assert.equal(await page.locator('#skipped').innerText(), `${bad} bad lines skipped`);
      assert.equal(await page.locator('.trace').count(), 2);
      await page.locator('.trace', { hasText: markup }).click();
      await page.locator('.row', { hasText: markup }).waitFor();
      assert.equal(await page.locator('img, svg, script:not(:first-of-type)').count(), 0, 'no element from the store');
      assert.equal(await page.evaluate(() => (window as unknown as { injected?: number }).injected), undefined);
    } finally {
      await browser.close();
      await viewer.close();
    }
  });
});
