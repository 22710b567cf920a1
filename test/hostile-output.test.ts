import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BatchingManager } from '../host/batching/batching-manager.js';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { FmtCollector } from '../host/collectors/fmt-collector.js';
import { escapeControls } from '../host/collectors/format-value.js';
import { FileExporter } from '../host/export/otlp-json.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import type { TraceSummary, ViewLog, ViewSpan } from '../host/viewer/trace-store.js';
import { startViewer } from '../host/viewer/view-server.js';

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
  const collector = new PipelineCollector({ handlers: batching.handlers() });
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
