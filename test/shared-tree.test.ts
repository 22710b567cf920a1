/**
 * One plugin, three guest languages, one expected tree (issue 14): the QuickJS version (the source
 * string below, run by runQuickJS), the AssemblyScript version (test/guests-as/shared-plugin.ts)
 * and the Rust version (`shared_plugin` in test/guests-rust, ordinary `tracing` instrumentation)
 * each run with a CaptureCollector, and each guest's tree, normalized, is compared with SHARED.
 *
 * The plugin: a root span `handle` (target `plugin`, info) with fields `user` (a string) and
 * `items` (an integer recorded later); inside it an info event `loaded` (count = 3); a child span
 * `query` (target `plugin::db`, debug, field `table`) with a debug event `query started` and an
 * info event `rows read` (rows = 2), on which an error `query failed` (caused by `connection
 * reset`) is recorded in its `error` field; a span `retry` (debug, attempt = 2) that follows from
 * `query`; a warn event `slow query` (elapsed_ms = 120). Run at the host level `debug`.
 *
 * What the normalizer (`tree`, built on CaptureCollector.normalize(), which already drops ids,
 * times, file, line and module path) changes, and why:
 * - An event is named by its `message` field. Event names are not the same thing in the three
 *   guests: `tracing` 0.1.37 names an event `event src/lib.rs:N` (source-location dependent),
 *   QuickJS's `tracing.info` names every event `event`, an AssemblyScript callsite is named by
 *   whoever declares it.
 * - Event targets are left out. QuickJS's level functions (`tracing.info`…) take no target (it is
 *   always `guest`); Rust's default target is the module path (`sandtrace_test_guest`). Span
 *   targets are compared: all three set them. Each language's event target is checked on its own.
 * - Integers are numbers: a bigint within the safe range becomes a number (a Rust `u64`/`i64`
 *   and a JS number are the same small integer; today all three already send them as numbers).
 * - An error value becomes `{ error: <its message> }` and is compared by "contains" (`containing`
 *   below): its text differs by language (QuickJS writes `Error: query failed`, the name first;
 *   Rust and AssemblyScript `query failed`). The source chain is dropped from the shared tree,
 *   because the AssemblyScript library's error values carry a message only (`recordErr(field,
 *   message)`), and checked on its own for QuickJS (`cause`) and Rust (`source()`).
 * - The host's `sandtrace.execution` span is dropped: the tree starts at the guest's root span
 *   (checked to be the execution span's only child).
 *
 * Left out of the shared tree because one of the languages cannot express it: the error's source
 * chain (AssemblyScript, above) and event targets (QuickJS's level functions, above). Everything
 * else in the plugin (levels, span targets, fields recorded later, follows_from, closes) is in it.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CaptureCollector, type NormalizedEvent, type NormalizedSpan } from '../host/collectors/capture-collector.js';
import { compileAssemblyScript } from '../host/sandbox/compile-assemblyscript.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { runWasm } from '../host/sandbox/wasm-runner.js';
import type { Value } from '../shared/records.js';
import { rustGuest, rustToolchainMissing } from './helpers/rust-guest.js';

const QUICKJS_PLUGIN = `
const handle = tracing.span('handle', { user: 'alice', items: undefined }, { target: 'plugin' });
handle.enter();
tracing.info('loaded', { count: 3 });
const query = tracing.span('query', { table: 'users' }, { level: 'debug', target: 'plugin::db' });
query.enter();
tracing.debug('query started');
tracing.info('rows read', { rows: 2 });
query.exit();
query.record('error', new Error('query failed', { cause: new Error('connection reset') }));
const retry = tracing.span('retry', { attempt: 2 }, { level: 'debug', target: 'plugin::db' });
retry.followsFrom(query); // while the query span is still open
query.close();
retry.close();
tracing.warn('slow query', { elapsed_ms: 120 });
handle.record('items', 2);
handle.exit();
handle.close();
`;
const AS_PLUGIN = fileURLToPath(new URL('../../test/guests-as/shared-plugin.ts', import.meta.url));

/** An error value whose message contains `text` (see the header: the text differs by language). */
class Containing {
  constructor(readonly text: string) {}
}
const containing = (text: string) => new Containing(text);

interface SharedEvent {
  name: string;
  level: string;
  fields: Record<string, unknown>;
}
interface SharedSpan {
  id: string;
  name: string;
  target: string;
  level: string;
  fields: Record<string, unknown>;
  events: SharedEvent[];
  follows: string[];
  closed: boolean;
  children: SharedSpan[];
}

/** The one expected tree. Ids are CaptureCollector's stable ones (s1 is the execution span). */
const SHARED: SharedSpan = {
  id: 's2', name: 'handle', target: 'plugin', level: 'info', fields: { user: 'alice', items: 2 }, follows: [], closed: true,
  events: [
    { name: 'loaded', level: 'info', fields: { message: 'loaded', count: 3 } },
    { name: 'slow query', level: 'warn', fields: { message: 'slow query', elapsed_ms: 120 } },
  ],
  children: [
    {
      id: 's3', name: 'query', target: 'plugin::db', level: 'debug', fields: { table: 'users', error: containing('query failed') }, follows: [], closed: true,
      events: [
        { name: 'query started', level: 'debug', fields: { message: 'query started' } },
        { name: 'rows read', level: 'info', fields: { message: 'rows read', rows: 2 } },
      ],
      children: [],
    },
    { id: 's4', name: 'retry', target: 'plugin::db', level: 'debug', fields: { attempt: 2 }, follows: ['s3'], closed: true, events: [], children: [] },
  ],
};

function value(v: Value): unknown {
  if (typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  if (typeof v === 'object' && v !== null && 'error' in v) return { error: v.error.message };
  return v;
}
function fields(f: Record<string, Value>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(f).map(([k, v]) => [k, value(v)]));
}
function event(e: NormalizedEvent): SharedEvent {
  return { name: String(e.fields.message), level: e.level, fields: fields(e.fields) };
}
function span(s: NormalizedSpan): SharedSpan {
  const out: SharedSpan = { id: s.id, name: s.name, target: s.target, level: s.level, fields: fields(s.fields), events: s.events.map(event), follows: s.follows, closed: s.closed, children: s.children.map(span) };
  if (s.forced !== undefined) (out as SharedSpan & { forced: string }).forced = s.forced;
  return out;
}

/** The guest's tree, normalized (see the header): the execution span's only child. */
function tree(collector: CaptureCollector): SharedSpan {
  const [exec, ...others] = collector.normalize().spans;
  assert.equal(exec?.name, 'sandtrace.execution');
  assert.deepEqual(others, [], 'one root: the execution span');
  assert.equal(exec.children.length, 1, 'the guest made one root span');
  return span(exec.children[0]!);
}

/** `expected` with each `containing(text)` replaced by the actual value when that is `{ error }` containing the text. */
function resolve(expected: unknown, actual: unknown): unknown {
  if (expected instanceof Containing) {
    const message = (actual as { error?: unknown } | undefined)?.error;
    return typeof message === 'string' && message.includes(expected.text) ? actual : { error: `(an error containing ${JSON.stringify(expected.text)})` };
  }
  if (Array.isArray(expected)) return expected.map((e, i) => resolve(e, Array.isArray(actual) ? actual[i] : undefined));
  if (typeof expected === 'object' && expected !== null) {
    const a = (typeof actual === 'object' && actual !== null ? actual : {}) as Record<string, unknown>;
    return Object.fromEntries(Object.entries(expected).map(([k, e]) => [k, resolve(e, a[k])]));
  }
  return expected;
}

function assertShared(collector: CaptureCollector, language: string): void {
  const actual = tree(collector);
  assert.deepStrictEqual(actual, resolve(SHARED, actual), `${language}: the shared tree`);
}

/** The raw error value recorded on `query` (for the source chain, outside the shared tree). */
function queryError(collector: CaptureCollector): Value | undefined {
  return collector.find('query')!.values.find(([k]) => k === 'error')?.[1];
}

/** Event targets, outside the shared tree (see the header). */
function eventTargets(collector: CaptureCollector): string[] {
  return collector.events.map((e) => e.meta.target);
}

const rustSkip = rustToolchainMissing();
if (rustSkip !== undefined) console.log(`# ${rustSkip}`);

describe('one plugin in QuickJS, AssemblyScript and Rust: one expected tree', () => {
  let asWasm: Uint8Array;
  before(async () => {
    asWasm = await compileAssemblyScript(AS_PLUGIN);
  });

  test('QuickJS', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(QUICKJS_PLUGIN, { collector, level: 'debug' });
    assert.deepEqual([r.ok, r.summary.rejected], [true, 0]);
    assertShared(collector, 'QuickJS');
    assert.deepEqual(queryError(collector), { error: { message: 'Error: query failed', source: { message: 'Error: connection reset' } } }, 'the cause chain');
    assert.deepEqual(eventTargets(collector), ['guest', 'guest', 'guest', 'guest']);
  });

  test('AssemblyScript', async () => {
    const collector = new CaptureCollector();
    const r = await runWasm(asWasm, { entry: 'sharedPlugin', collector, level: 'debug' });
    assert.deepEqual([r.ok, r.summary.rejected], [true, 0]);
    assertShared(collector, 'AssemblyScript');
    assert.deepEqual(queryError(collector), { error: { message: 'query failed' } }, 'a message, no source chain');
    assert.deepEqual(eventTargets(collector), ['plugin', 'plugin::db', 'plugin::db', 'plugin']);
  });

  test('Rust', { skip: rustSkip }, async () => {
    const collector = new CaptureCollector();
    // The test guest imports `bench.event_json` (its per-call bench export).
    const r = await runWasm(await rustGuest(), { entry: 'shared_plugin', collector, level: 'debug', imports: { bench: { event_json: () => {} } } });
    assert.deepEqual([r.ok, r.summary.rejected], [true, 0]);
    assertShared(collector, 'Rust');
    assert.deepEqual(queryError(collector), { error: { message: 'query failed', source: { message: 'connection reset' } } }, 'the source() chain');
    assert.deepEqual(eventTargets(collector), Array(4).fill('sandtrace_test_guest'));
    assert.match(collector.events[0]!.meta.name, /^event src\/lib\.rs:\d+$/, 'what the normalizer renames');
  });

  test('the comparison still sees a difference: another value, another error message', async () => {
    for (const [from, to] of [['{ rows: 2 }', '{ rows: 3 }'], ["'query failed'", "'query refused'"]] as const) {
      const collector = new CaptureCollector();
      await runQuickJS(QUICKJS_PLUGIN.replace(from, to), { collector, level: 'debug' });
      const actual = tree(collector);
      assert.throws(() => assert.deepStrictEqual(actual, resolve(SHARED, actual)), assert.AssertionError, `${to}: not the shared tree`);
    }
  });
});
