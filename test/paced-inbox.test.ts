import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PacedInbox } from '../host/sandbox/paced-inbox.js';

const busy = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

describe('PacedInbox', () => {
  test('applies messages in order, a slice at a time, letting timers run between slices', async () => {
    const applied: number[] = [];
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const inbox = new PacedInbox<number>((m) => {
      busy(0.5);
      applied.push(m);
      if (m === 399) done();
    }, 2);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      for (let i = 0; i < 400; i++) inbox.push(i); // 200 ms of work, pushed in one go as a port hands them over
      assert.ok(applied.length <= 6, `${applied.length} applied as they were pushed: at most one slice (2 ms) in this turn`);
      await finished;
    } finally {
      clearInterval(timer);
    }
    assert.deepEqual(applied, Array.from({ length: 400 }, (_, i) => i));
    assert.equal(inbox.length, 0);
    // Held in one go, the loop would have ticked once at the end; in 2 ms slices, at each slice.
    assert.ok(ticks >= 20, `${ticks} timer ticks over 200 ms of applying`);
  });

  test('a message that finds nothing waiting is applied at once (a host call is not kept a turn)', async () => {
    const applied: string[] = [];
    const inbox = new PacedInbox<string>((m) => applied.push(m));
    await new Promise((r) => setImmediate(r)); // a fresh turn of the loop
    inbox.push('call');
    assert.deepEqual(applied, ['call']);
  });

  test('flush applies everything waiting at once, and nothing is applied twice', async () => {
    const applied: string[] = [];
    const inbox = new PacedInbox<string>((m) => applied.push(m), 0); // no slice: every message waits
    inbox.push('a');
    inbox.push('b');
    assert.deepEqual(applied, []);
    inbox.flush();
    assert.deepEqual(applied, ['a', 'b']);
    inbox.push('c');
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(applied, ['a', 'b', 'c']);
    inbox.flush();
    assert.deepEqual(applied, ['a', 'b', 'c']);
  });

  test('a message pushed while another is applied waits behind those already pushed', async () => {
    const applied: number[] = [];
    let inbox!: PacedInbox<number>;
    const finished = new Promise<void>((resolve) => {
      inbox = new PacedInbox<number>((m) => {
        applied.push(m);
        if (m < 5) inbox.push(m + 100); // arrives while m is being applied
        if (applied.length === 10) resolve();
      });
    });
    for (let i = 0; i < 5; i++) inbox.push(i);
    await finished;
    // 0 is applied as it arrives; 100 arrives during it, before 1–4 are pushed: the order of arrival.
    assert.deepEqual(applied, [0, 100, 1, 2, 3, 4, 101, 102, 103, 104]);
  });
});
