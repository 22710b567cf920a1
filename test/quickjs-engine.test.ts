/**
 * The worker's QuickJS engine, driven directly (it needs no worker to run): what it keeps from one
 * guest to the next, and what it does not.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { QuickJSEngine } from '../host/sandbox/worker/quickjs-engine.js';
import type { GuestSettings } from '../host/sandbox/worker-messages.js';

const SETTINGS: GuestSettings = { minLevel: 0, flushBytes: 1 << 15, executionId: 'x', carried: [], firstSpanId: 1 };

describe('QuickJS engine', () => {
  let engine: QuickJSEngine;
  before(async () => (engine = await QuickJSEngine.create(16 << 20)));

  /** Runs `source` as one guest and returns the frame it left. */
  function run(source: string, settings: GuestSettings): Uint8Array | undefined {
    const vm = engine.newGuestContext(settings, () => assert.fail('no flush expected'));
    try {
      vm.unwrapResult(vm.evalCode(source)).dispose();
      const drained = engine.drain();
      try {
        return drained.frame?.slice();
      } finally {
        drained.release();
      }
    } finally {
      vm.dispose();
    }
  }

  test('the SDK caches of encoded strings carry over within a tenant and are emptied for another tenant', () => {
    run(`tracing.info('the first tenant logs this', { secret: 1 })`, { ...SETTINGS, cacheScope: 'tenant a' });
    assert.ok(engine.sdkCaches().now.messages >= 1 && engine.sdkCaches().now.sites >= 1, 'tenant a left its strings in the caches');
    run(`1`, { ...SETTINGS, cacheScope: 'tenant a' });
    assert.ok(engine.sdkCaches().now.sites >= 1, 'kept for the same tenant');
    run(`1`, { ...SETTINGS, cacheScope: 'tenant b' });
    assert.deepEqual([engine.sdkCaches().now.sites, engine.sdkCaches().now.messages], [0, 0], 'nothing of tenant a is left when tenant b runs');
  });

  test('a guest context sees the SDK realm through `tracing` only, and a fresh one each run', () => {
    run(`globalThis.leftover = 42; tracing.info('x')`, SETTINGS);
    const vm = engine.newGuestContext(SETTINGS, () => {});
    try {
      assert.equal(vm.dump(vm.unwrapResult(vm.evalCode(`typeof leftover + ' ' + typeof tracing.info`))), 'undefined function');
    } finally {
      engine.drain().release();
      vm.dispose();
    }
  });
});
