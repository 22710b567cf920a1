/**
 * Hostile frames from a real QuickJS guest (test/hostile/): a record too large for the host is
 * the only thing lost; the records sharing its frame, before and after it, still apply.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';

const HOSTILE = new URL('../../test/hostile/', import.meta.url);
const guest = (file: string): string => readFileSync(new URL(file, HOSTILE), 'utf8');

describe('hostile frames', () => {
  test('a 10 MB value in a shared frame loses only its own record, counted once', async () => {
    const collector = new CaptureCollector();
    const r = await runQuickJS(guest('oversized-value-in-shared-frame.js'), {
      collector,
      flushBytes: 64 << 20,
      memoryLimitBytes: 128 << 20,
      deadlineMs: 300_000, // ends a hang only: a few seconds alone, past 30 s on a machine loaded ten times over
    });
    assert.equal(r.ok, true, r.summary.cause);
    assert.equal(r.value, 'done');
    assert.equal(r.summary.frames, 1, 'the callsite announcement and the four events share one frame');
    const steps = collector.events.map((e) => Object.fromEntries(e.values)).filter((v) => v.message === 'step');
    assert.deepEqual(
      steps.map((v) => v.n),
      [1, 3, 4],
      'the events before and after the oversized one arrive, in order',
    );
    assert.ok(steps.every((v) => v.payload === 'small'));
    assert.equal(r.summary.rejected, 1, JSON.stringify(r.summary.rejectedByCode));
    assert.deepEqual(r.summary.rejectedByCode, { LIMIT_EXCEEDED: 1 });
    assert.equal(r.summary.limitDropped, 1);
    assert.equal(r.summary.refusedFrames, 1, 'one record skipped unread for its size');
    assert.ok(r.summary.refusedBytes > 10_000_000 && r.summary.refusedBytes < 10_001_000, `skipped ${r.summary.refusedBytes} bytes`);
    assert.equal(r.summary.truncated, 0);
    assert.equal(r.summary.guestDropped, 0);
  });
});
