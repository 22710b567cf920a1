/** `console` in QuickJS guests: routed to log events at the matching level, never a ReferenceError. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';

test('console.log/info/debug/warn/error write log events at their level, arguments joined as Node does', async () => {
  const collector = new CaptureCollector();
  const r = await runQuickJS(
    `const cyclic = {}; cyclic.self = cyclic;
     console.log('hello', 42, true, null, undefined, { a: [1, 2] });
     console.debug('details', 1n);
     console.warn('careful');
     console.error(new TypeError('bad'));
     console.info(cyclic);
     tracing.inSpan('work', {}, () => console.log('inside'));
     'done'`,
    { collector, level: 'debug' },
  );
  assert.equal(r.ok, true, JSON.stringify(r.error));
  const events = collector.events.map((e) => [e.meta.level, e.values[0]![1]]);
  assert.deepEqual(events, [
    ['info', 'hello 42 true null undefined {"a":[1,2]}'],
    ['debug', 'details 1'],
    ['warn', 'careful'],
    ['error', 'TypeError: bad'],
    ['info', '[object Object]'],
    ['info', 'inside'],
  ]);
  assert.equal(collector.find('work')!.events.length, 1, 'inside a span, the event is the span’s');
});

test('a level the host filters out costs the guest one comparison: nothing is formatted', async () => {
  const collector = new CaptureCollector();
  const r = await runQuickJS(`let formatted = 0; console.debug({ toJSON() { formatted++; return 1; } }); formatted`, { collector, level: 'info' });
  assert.equal(r.value, 0);
  assert.equal(collector.events.length, 0);
});

test('console is the SDK realm’s and frozen: a guest cannot change it for the next guest', async () => {
  const first = await runQuickJS(`try { console.log = () => {}; } catch (e) {} try { Object.getPrototypeOf(console).x = 1; } catch (e) {} Object.isFrozen(console)`, {});
  assert.equal(first.value, true);
  const collector = new CaptureCollector();
  await runQuickJS(`console.log('still routed')`, { collector });
  assert.deepEqual(collector.events.map((e) => e.values[0]![1]), ['still routed']);
});
