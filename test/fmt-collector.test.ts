import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FmtCollector, formatDuration } from '../host/collectors/fmt-collector.js';
import { CallsiteRegistry } from '../host/receiver/callsite-registry.js';
import { TracingEventReceiver } from '../host/receiver/receiver.js';
import { enter, eventSite, newEvent, newSpan, spanSite } from './helpers/events.js';

test('the fmt collector prints an indented tree with fields, levels, durations and force-close causes', () => {
  const lines: string[] = [];
  const fmt = new FmtCollector({ write: (l) => lines.push(l), color: false, level: 'info' });
  const r = new TracingEventReceiver({ collector: fmt, registry: new CallsiteRegistry(), clockOrigin: 0n });
  for (const e of [
    spanSite(1, 'request', ['route']),
    spanSite(2, 'query', ['table']),
    eventSite(3, 'log', ['message', 'n'], 'warn'),
    eventSite(4, 'chatter', ['message'], 'debug'),
    newSpan(1, 1, [['route', '/users']], undefined, 0n),
    enter(1, 0n),
    newSpan(2, 2, [['table', 'users']], undefined, 1_000n),
    enter(2, 1_000n),
    newEvent(3, [['message', 'slow query'], ['n', 3]], undefined, 2_501_000n),
    newEvent(4, [['message', 'hidden']], undefined, 2_600_000n),
  ]) r.tryReceive(e);
  r.terminate({ kind: 'deadline', message: 'interrupted' });
  assert.deepEqual(lines, [
    '┌ request route=/users  test',
    '│ ┌ query table=users  test',
    '│ │  WARN "slow query" n=3',
    // The filtered-out debug event still shows the guest alive at 2.6 ms: that is the end time.
    '│ └ query 2.60ms ✖ force-closed: deadline exceeded: interrupted',
    '└ request 2.60ms ✖ force-closed: deadline exceeded: interrupted',
  ]);
});

test('durations are printed in the largest unit that keeps them readable', () => {
  assert.deepEqual([0n, 999n, 1_500n, 45_000n, 3_200_000n, 2_500_000_000n].map(formatDuration), ['0ns', '999ns', '1.50µs', '45µs', '3.20ms', '2.50s']);
});
