/**
 * Declared span sites (`tracing.spanSite`) and the fused span records (`newSpanEntered`, tag 12;
 * the drop of an entered span as exit-and-close), through real QuickJS guests: the host sees what
 * the name-and-fields API gives it, hostile uses are refused or ignored as that API does, and a
 * carried span closed by the fused record is still closed only when the step commits.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CaptureCollector, type NormalizedSpan } from '../host/collectors/capture-collector.js';
import { CallsiteRegistry } from '../host/receiver/callsite-registry.js';
import { TracingEventReceiver } from '../host/receiver/receiver.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import type { SpanRecord } from '../host/pipeline/telemetry-records.js';
import type { PersistedExecution, RunResult } from '../host/sandbox/execution.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { EventEncoder } from '../shared/event-codec.js';
import type { TracingEvent } from '../shared/records.js';
import { drop, enter, eventSite, exit, newEvent, spanSite } from './helpers/events.js';

/** The guest's spans (under the execution span), without the execution's own fields. */
function guestTree(c: CaptureCollector): NormalizedSpan[] {
  return c.normalize().spans[0]!.children;
}

async function run(source: string, level: 'trace' | 'info' = 'trace'): Promise<{ result: RunResult; tree: NormalizedSpan[]; collector: CaptureCollector }> {
  const collector = new CaptureCollector();
  const result = await runQuickJS(source, { collector, level, executionId: 'x' });
  return { result, tree: guestTree(collector), collector };
}

/** One workload written twice: with declared sites, and with the name-and-fields API. */
const WORKLOAD = (api: 'site' | 'fields') => {
  const s = api === 'site';
  return `
  const handle = tracing.spanSite('handle', ['user', 'items']);
  const query = tracing.spanSite('query', ['table', 'rows'], { level: 'debug', target: 'db' });
  const wide = tracing.spanSite('wide', ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']);
  const tick = tracing.callsite('tick', ['i', 'ok']);
  const out = [];
  for (let i = 0; i < 3; i++) {
    out.push(${s ? `handle.inSpan((span) => {` : `tracing.inSpan('handle', { user: 'alice', items: i }, (span) => {`}
      tick.emit(i, i === 1);
      tracing.info('loading', { big: 2n ** 64n - 1n, bytes: new Uint8Array([1, 2]), ratio: 0.5, neg: -7, obj: { k: 1 } });
      const q = ${s ? `query.open('orders', undefined)` : `tracing.span('query', { table: 'orders', rows: undefined }, { level: 'debug', target: 'db' }); q.enter()`};
      q.record('rows', i * 100);
      ${s ? `` : `q.exit(); `}q.close();
      span.record('items', i + 10);
      return i;
    }${s ? `, 'alice', i)` : `)`});
  }
  const c = ${s ? `handle.open('bob', 0)` : `tracing.span('handle', { user: 'bob', items: 0 }); c.enter()`};
  ${s ? `wide.inSpan(() => tick.emit(9, false), 1, 'two', 3.5, true, null, -1, 2n ** 70n, 8)` : `tracing.inSpan('wide', { a: 1, b: 'two', c: 3.5, d: true, e: null, f: -1, g: 2n ** 70n, h: 8 }, () => tick.emit(9, false))`};
  ${s ? `` : `c.exit(); `}c.close();
  try { ${s ? `handle.inSpan(() => { throw new TypeError('bad', { cause: new Error('root') }); }, 'carol')` : `tracing.inSpan('handle', { user: 'carol', items: undefined }, () => { throw new TypeError('bad', { cause: new Error('root') }); })`}; } catch (e) { out.push(e.message); }
  out`;
};

describe('declared span sites: tracing.spanSite', () => {
  test('the host gets the same spans, events and values as from tracing.inSpan / tracing.span with fields objects', async () => {
    const site = await run(WORKLOAD('site'));
    const fields = await run(WORKLOAD('fields'));
    assert.equal(site.result.ok, true, JSON.stringify(site.result.summary.cause));
    assert.equal(fields.result.ok, true);
    assert.deepEqual(site.result.value, [0, 1, 2, 'bad']);
    assert.deepEqual(site.result.value, fields.result.value);
    assert.equal(site.result.summary.rejected, 0);
    assert.equal(fields.result.summary.rejected, 0);
    assert.equal(site.tree.length, 5);
    assert.deepEqual(site.tree, fields.tree);
    // Spot checks on what both produced.
    assert.deepEqual(site.tree[0]!.fields, { user: 'alice', items: 10 });
    assert.deepEqual(site.tree[0]!.children[0]!.fields, { table: 'orders', rows: 0 });
    assert.equal(site.tree[0]!.children[0]!.target, 'db');
    assert.deepEqual(site.tree[3]!.children[0]!.fields, { a: 1, b: 'two', c: 3.5, d: true, e: { debug: 'null' }, f: -1, g: { debug: '1180591620717411303424' }, h: 8 });
    assert.deepEqual(site.tree[4]!.fields, { user: 'carol', error: { error: { message: 'TypeError: bad', source: { message: 'Error: root' } } } });
    // Every span closed, every enter matched: the collector holds no entered span.
    for (const s of site.collector.spans.values()) assert.deepEqual([s.closed, s.entered], [true, 0], s.meta.name);
    assert.ok(site.result.summary.records < fields.result.summary.records, `fewer records: ${site.result.summary.records} vs ${fields.result.summary.records}`);
  });

  test('below the host level a site writes nothing and its spans are inert; enabled says so', async () => {
    const { result, collector } = await run(
      `const q = tracing.spanSite('q', ['a'], { level: 'debug' });
       const s = q.open(1); s.record('a', 2); s.enter(); s.exit(); s.close();
       [q.enabled, q.inSpan((span) => span.id, 1), tracing.spanSite('i').enabled]`,
      'info',
    );
    assert.deepEqual(result.value, [false, 0, true]);
    assert.equal(collector.find('q'), undefined);
    assert.equal(result.summary.rejected, 0);
  });

  test('inSpan gives fn the span when fn declares a parameter; the SDK objects a site hands out are frozen', async () => {
    const { result, tree } = await run(`
      const site = tracing.spanSite('s', ['a']);
      const span = site.open(1);
      const frozen = [site, Object.getPrototypeOf(site), span.fields, Object.getPrototypeOf(span), site.fields].map(Object.isFrozen);
      span.close();
      [
        site.inSpan((s) => [typeof s, s.name, s.fields.join(), s.closed], 2),
        site.inSpan((...args) => args.length, 3),
        site.inSpan(function () { return arguments.length; }, 4),
        frozen.slice(1),
        Object.isFrozen(span),
      ]`);
    assert.equal(result.ok, true, JSON.stringify(result.summary.cause));
    assert.deepEqual(result.value, [['object', 's', 'a,error', false], 0, 0, [true, true, true, true], false]);
    assert.deepEqual(tree.map((s) => [s.fields, s.closed]), [[{ a: 1 }, true], [{ a: 2 }, true], [{ a: 3 }, true], [{ a: 4 }, true]]);
  });

  test('hostile declarations are refused at the call, like tracing.callsite and tracing.span', async () => {
    const { result, tree } = await run(`
      const refused = (f) => { try { f(); return 'accepted'; } catch (e) { return e.name; } };
      const SpanCallsite = Object.getPrototypeOf(tracing.spanSite('x')).constructor;
      [
        refused(() => tracing.spanSite('a', 'user')),
        refused(() => tracing.spanSite('a', { 0: 'user', length: 1 })),
        refused(() => tracing.spanSite('a', null)),
        refused(() => tracing.spanSite('a', ['x'], { level: 'fatal' })),
        refused(() => tracing.spanSite('a', ['x'], { level: { toString: () => 'info' } })),
        refused(() => tracing.spanSite('a', [{ toString() { throw new RangeError('no'); } }])),
        refused(() => new SpanCallsite('a', 5)),
        refused(() => tracing.spanSite('a').inSpan('not a function')),
        refused(() => tracing.spanSite('a').inSpan()),
        refused(() => tracing.spanSite('a', ['x']).openValues('xy')),
        tracing.spanSite(42, [7], { target: 9 }).name,
      ]`);
    assert.equal(result.ok, true, JSON.stringify(result.summary.cause));
    assert.deepEqual(result.value, ['TypeError', 'TypeError', 'TypeError', 'TypeError', 'TypeError', 'RangeError', 'TypeError', 'TypeError', 'TypeError', 'TypeError', '42']);
    assert.deepEqual(tree, [], 'nothing was written');
    assert.equal(result.summary.rejected, 0);
  });

  test('wrong arity, bogus values, throwing conversions, reused and twice-closed spans: refused or ignored, never a bad record', async () => {
    const { result, tree } = await run(`
      const site = tracing.spanSite('s', ['a', 'b']);
      const out = [];
      site.open().close();                                  // fewer values: not recorded
      site.open(1, 2, 3, 4, 5, 6, 7, 8).close();            // more: the rest ignored
      const bomb = { toJSON() { throw new SyntaxError('boom'); }, toString() { throw new SyntaxError('boom'); } };
      try { site.open(1, bomb); out.push('accepted'); } catch (e) { out.push(e.name); }   // failure-atomic: no span
      try { site.inSpan(() => out.push('ran'), bomb); } catch (e) { out.push(e.name); }   // fn never runs
      const p = new Proxy({}, { ownKeys() { throw new EvalError('trap'); } });
      site.open(p, Symbol('s')).close();                   // debug text, whatever the trap does
      const s = site.open('x', 1);
      s.close(); s.close();                                 // twice: one close
      s.enter(); s.exit(); s.record('a', 2); s.close();     // closed: ignored
      const t = site.open('y', 2);
      t.exit(); t.close();                                  // exited first, then the close (no second exit)
      out.push(site.inSpan((span) => { span.close(); return 'closed inside'; }, 'z'));
      out`);
    assert.equal(result.ok, true, JSON.stringify(result.summary.cause));
    assert.deepEqual(result.value, ['SyntaxError', 'SyntaxError', 'closed inside']);
    assert.equal(result.summary.rejected, 0, JSON.stringify(result.summary.rejectedByCode));
    assert.deepEqual(
      tree.map((s) => s.fields),
      [{}, { a: 1, b: 2 }, { a: { debug: '[object Object]' }, b: { debug: 'Symbol(s)' } }, { a: 'x', b: 1 }, { a: 'y', b: 2 }, { a: 'z' }],
    );
    assert.ok(tree.every((s) => s.closed));
  });
});

describe('the fused records at the receiver', () => {
  const registry = new CallsiteRegistry();
  const setup: TracingEvent[] = [spanSite(1, 'a', ['n']), eventSite(2, 'e', ['message'])];
  const opened = (id: number, time: bigint): TracingEvent => ({ type: 'newSpan', id, metadataId: 1, values: [['n', id]], time, entered: true });

  function apply(events: TracingEvent[], limits?: { maxEntered: number }) {
    const collector = new CaptureCollector();
    const receiver = new TracingEventReceiver({ collector, registry, clockOrigin: 0n, ...(limits && { limits }) });
    const result = receiver.receiveBatch(new EventEncoder().encode(events));
    return { collector, receiver, result };
  }

  test('newSpanEntered is newSpan then spanEntered at the same time; the drop of an entered span exits it', () => {
    const fused = apply([...setup, opened(1, 10n), newEvent(2, [['message', 'in']], undefined, 20n), drop(1, 30n)]);
    const plain = apply([...setup, { type: 'newSpan', id: 1, metadataId: 1, values: [['n', 1]], time: 10n }, enter(1, 10n), newEvent(2, [['message', 'in']], undefined, 20n), exit(1, 30n), drop(1, 30n)]);
    assert.deepEqual(fused.result.errors, []);
    assert.deepEqual(fused.collector.normalize(), plain.collector.normalize());
    const span = [...fused.collector.spans.values()][0]!;
    assert.deepEqual([span.start, span.end, span.closed, span.entered, span.events.length], [10n, 30n, true, 0, 1]);
  });

  test('past maxEntered a newSpanEntered is refused whole: no span is created', () => {
    const { collector, receiver, result } = apply([...setup, opened(1, 1n), opened(2, 2n), newEvent(2, [['message', 'in 1']], undefined, 3n)], { maxEntered: 1 });
    assert.equal(result.rejected, 1);
    assert.equal(result.errors[0]!.code, 'LIMIT_EXCEEDED');
    assert.equal(receiver.openSpans, 1, 'span 2 was not created');
    assert.deepEqual([...collector.spans.values()].map((s) => s.meta.name), ['a']);
    assert.equal(collector.events[0]!.parent, [...collector.spans.keys()][0], 'the event is under span 1');
  });
});

describe('workflows: a carried span with the fused records', () => {
  const stored = (r: RunResult): PersistedExecution => JSON.parse(JSON.stringify(r.state)) as PersistedExecution;
  function pipeline() {
    const spans: SpanRecord[] = [];
    const collector = new PipelineCollector({ handlers: { onSpan: (s) => spans.push(s) } });
    return { collector, spans };
  }
  // Step 1 opens the workflow span with the fused create-and-enter and leaves it open (and entered).
  const OPEN = `const wf = tracing.spanSite('wf', ['order', 'status']).open('A-1'); tracing.info('received'); 'opened'`;
  // Later steps resume it, work under it through a declared site, and close it while it is entered:
  // the fused exit-and-close.
  const CLOSE = (fail: boolean) => `
    const wf = tracing.resume('wf');
    wf.enter();
    tracing.spanSite('charge', ['amount']).inSpan(() => tracing.info('charged'), 12);
    wf.record('status', 'paid');
    wf.close();
    ${fail ? `throw new Error('card service down')` : `'closed'`}`;

  test('closing a resumed span while entered is deferred to the commit: a failed step exports nothing of it, the retry exports it once', async () => {
    const p = pipeline();
    const first = await runQuickJS(OPEN, { persist: true, collector: p.collector, executionId: 'wf/1' });
    assert.equal(first.ok, true);
    assert.equal(first.summary.rejected, 0);
    assert.equal(p.spans.filter((s) => s.name === 'wf').length, 0, 'still open after step 1');
    const state = stored(first);
    const failed = await runQuickJS(CLOSE(true), { persist: true, collector: p.collector, executionId: 'wf/2#1', state });
    assert.equal(failed.ok, false);
    assert.equal(failed.summary.rejected, 0);
    assert.equal(p.spans.filter((s) => s.name === 'wf').length, 0, 'the close was not applied: the step did not commit');
    const retry = await runQuickJS(CLOSE(false), { persist: true, collector: p.collector, executionId: 'wf/2#2', state });
    assert.equal(retry.ok, true);
    assert.equal(retry.summary.rejected, 0);
    const wf = p.spans.filter((s) => s.name === 'wf');
    assert.equal(wf.length, 1, 'exported exactly once, at the commit');
    assert.deepEqual(wf[0]!.events.map((e) => e.name), ['received'], 'step 1 event; the retry logged under its own span');
    assert.ok(wf[0]!.attributes.some(([k, v]) => k === 'order' && v === 'A-1'));
    assert.ok(wf[0]!.attributes.some(([k, v]) => k === 'status' && v === 'paid'));
    const charges = p.spans.filter((s) => s.name === 'charge');
    assert.equal(charges.length, 2, 'each attempt exported its own (uncarried) span');
    assert.equal(p.collector.openSpans, 0);
  });
});
