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
    for (let i = 0; i < 400; i++) inbox.push(i); // 200 ms of work
    assert.equal(applied.length, 0, 'nothing is applied inside push');
    await finished;
    clearInterval(timer);
    assert.deepEqual(applied, Array.from({ length: 400 }, (_, i) => i));
    assert.equal(inbox.length, 0);
    // Held in one go, the loop would have ticked once at the end; in 2 ms slices, at each slice.
    assert.ok(ticks >= 20, `${ticks} timer ticks over 200 ms of applying`);
  });

  test('flush applies everything waiting at once, and nothing is applied twice', async () => {
    const applied: string[] = [];
    const inbox = new PacedInbox<string>((m) => applied.push(m));
    inbox.push('a');
    inbox.push('b');
    inbox.flush();
    assert.deepEqual(applied, ['a', 'b']);
    inbox.push('c');
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(applied, ['a', 'b', 'c']);
    inbox.flush();
    assert.deepEqual(applied, ['a', 'b', 'c']);
  });

  test('messages pushed while a slice runs are applied after those before them', async () => {
    const applied: number[] = [];
    let inbox!: PacedInbox<number>;
    const finished = new Promise<void>((resolve) => {
      inbox = new PacedInbox<number>((m) => {
        applied.push(m);
        if (m < 5) inbox.push(m + 100); // a reply that arrives while applying
        if (applied.length === 10) resolve();
      });
    });
    for (let i = 0; i < 5; i++) inbox.push(i);
    await finished;
    assert.deepEqual(applied, [0, 1, 2, 3, 4, 100, 101, 102, 103, 104]);
  });
});
