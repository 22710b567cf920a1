/**
 * The hostile QuickJS guests of test/hostile/, run as real guests: each file attacks the SDK one
 * way, and each test states what the host receives anyway.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';

const HOSTILE = new URL('../../test/hostile/', import.meta.url);
const guest = (file: string): string => readFileSync(new URL(file, HOSTILE), 'utf8');

describe('hostile QuickJS guests', () => {
  test('a value conversion that throws inside the SDK writes nothing, throws to the guest, and the records around it arrive intact', async () => {
    const collector = new CaptureCollector();
    const result = await runQuickJS(guest('throwing-value-conversion.js'), { collector, level: 'trace' });
    assert.equal(result.ok, true, result.summary.cause);
    assert.deepEqual(result.value, [
      'info field: toString',
      'info proxy field: trap',
      'info message: toPrimitive',
      'emit second: toPrimitive',
      'emit third: toString',
      'record: toString',
      'span field: toPrimitive',
      'span link: toString',
      'span parent: parent id',
      'counter attribute: toString',
      'counter name: toString',
      'counter value: toPrimitive',
    ]);
    assert.equal(result.summary.rejected, 0);
    assert.equal(result.summary.truncated, 0);
    const trace = collector.normalize();
    const events = [...trace.events, ...trace.spans.flatMap(function all(s): typeof trace.events { return [...s.events, ...s.children.flatMap(all)]; })];
    assert.deepEqual(
      events.map((e) => [e.name, e.fields]),
      [
        ['event', { message: 'first', n: 1 }],
        ['event', { message: 'second', n: 2 }],
        ['event', { message: 'third', n: 3 }],
        ['site', { a: 4, b: 5, c: 6 }],
        ['event', { message: 'last', n: 4 }],
      ],
    );
    const spans = trace.spans.flatMap(function all(s): typeof trace.spans { return [s, ...s.children.flatMap(all)]; }).filter((s) => s.target === 'guest');
    assert.deepEqual(spans.map((s) => [s.name, s.fields, s.closed]), [['kept', { v: 7 }, true]]);
    assert.deepEqual(collector.metrics.map((m) => [m.name, m.value]), [['kept', 2]]);
  });

  test('objects with error, debug or empty keys are the guest\'s data, recorded as debug text, never special values', async () => {
    const collector = new CaptureCollector();
    const result = await runQuickJS(guest('special-value-lookalikes.js'), { collector });
    assert.equal(result.ok, true, result.summary.cause);
    assert.equal(result.summary.rejected, 0);
    const trace = collector.normalize();
    const root = trace.spans[0]!;
    assert.deepEqual(
      root.events.map((e) => e.fields),
      [
        {
          message: 'lookalikes',
          error: { debug: '{"error":"x"}' },
          debug: { debug: '{"debug":"forged"}' },
          empty: { debug: '{"empty":true}' },
          nested: { debug: '{"error":{"message":"fake","source":{"message":"deeper"}}}' },
        },
        { a: { debug: '{"error":"y"}' } },
      ],
    );
    assert.deepEqual(root.children.map((s) => [s.name, s.fields]), [['s', { v: { debug: '{"debug":"z"}' } }]]);
    assert.deepEqual(trace.metrics.map((m) => [m.name, m.attributes]), [['c', { a: { debug: '{"error":"w"}' } }]]);
  });

  test('an unknown level name is a TypeError at the call that names the levels, and writes nothing', async () => {
    const collector = new CaptureCollector();
    const result = await runQuickJS(guest('unknown-level-names.js'), { collector, level: 'info' });
    assert.equal(result.ok, true, result.summary.cause);
    assert.equal(result.summary.rejected, 0);
    const [caught, info, trace] = result.value as [string[], boolean, boolean];
    assert.equal(caught.length, 18);
    const levels = "the levels are 'trace', 'debug', 'info', 'warn' and 'error'";
    for (const [label, shown] of [['fatal', '"fatal"'], ['Info', '"Info"'], ['2', 'of type number'], ['info', 'of type object'], ['null', 'null'], ['__proto__', '"__proto__"']])
      for (const call of ['span', 'callsite', 'enabled']) assert.ok(caught.includes(`${call} ${label}: TypeError: unknown level ${shown}: ${levels}`), `${call} ${label}: ${caught.join('\n')}`);
    assert.deepEqual([info, trace], [true, false]);
    const trace0 = collector.normalize();
    const root = trace0.spans[0]!;
    assert.deepEqual(root.children.map((s) => [s.name, s.level]), [['ok', 'warn'], ['default level', 'info']]);
    assert.deepEqual(root.events.map((e) => [e.name, e.level]), [['ok site', 'error']]);
  });

  test('500 distinct 40 KB messages in one run do not fill a 16 MiB guest: the message cache is bounded in bytes', async () => {
    const collector = new CaptureCollector();
    const result = await runQuickJS(guest('distinct-large-messages.js'), { collector, memoryLimitBytes: 16 << 20, deadlineMs: 300_000 }); // the deadline ends a hang only (past 30 s at load 14)
    assert.equal(result.ok, true, result.summary.cause);
    assert.equal(result.value, 'done');
    assert.equal(collector.events.length, 500);
    assert.equal(result.summary.rejected, 0);
  });
});

describe('the SDK internals are out of the guest\'s reach', () => {
  test('getters planted on Object.prototype catch nothing of the SDK (its config, its flush), and the guest\'s records arrive', async () => {
    const collector = new CaptureCollector();
    // No traceparent: the config has no own property of that name, so a read of it would fall through to the prototype.
    const r = await runQuickJS(guest('sdk-internals-through-prototype.js'), { collector });
    assert.equal(r.ok, true, r.error?.message);
    assert.equal(r.value, 'nothing found');
    assert.deepEqual(collector.events.map((e) => e.values[0]![1]), ['before', 'inside', 'after']);
    assert.equal(collector.find('work')?.closed, true);
  });
});
