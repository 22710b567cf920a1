/**
 * One tenant cannot deny another (issue 10): each interns callsites into a bounded registry of
 * its own, so a tenant that fills its registry only refuses its own new callsites.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { defaultCallsiteRegistry } from '../host/receiver/callsite-registry.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { SandboxPool } from '../host/sandbox/sandbox-pool.js';
import { registryFor } from '../host/sandbox/tenant-registries.js';

/** A guest announcing 1,000 callsites no other run uses (the per-execution maximum). */
const inventive = (run: number) => `for (let i = 0; i < 1000; i++) tracing.callsite('invented ${run}.' + i).emit();`;

describe('callsite registries per tenant', () => {
  const pool = new SandboxPool({ size: 2 });
  after(() => pool.close());

  test('a tenant that fills its registry (100 runs of 1,000 new callsites) refuses only its own new callsites', { timeout: 120_000 }, async () => {
    const greedy = `greedy-${process.pid}`;
    const defaultBefore = defaultCallsiteRegistry.size;
    for (let batch = 0; batch < 100; batch += 2) {
      const runs = await Promise.all([batch, batch + 1].map((n) => runQuickJS(inventive(n), { pool, tenant: greedy })));
      for (const r of runs) assert.equal(r.ok, true);
    }
    assert.ok(registryFor(greedy).size >= 100_000, `the greedy tenant's registry is full (${registryFor(greedy).size})`);
    assert.equal(defaultCallsiteRegistry.size, defaultBefore, 'nothing went into the process-wide registry');

    const refused = await runQuickJS(inventive(100), { pool, tenant: greedy });
    assert.ok(refused.summary.rejected > 0, 'the greedy tenant now has its own new callsites refused, counted');

    const collector = new CaptureCollector();
    const other = await runQuickJS(`tracing.info('a tenant of its own'); 1`, { pool, tenant: `other-${process.pid}`, collector });
    assert.equal(other.summary.rejected, 0);
    assert.deepEqual(collector.events.map((e) => e.values[0]![1]), ['a tenant of its own']);
  });

  test('runs without a tenant share the process-wide registry, and a tenant keeps its registry from run to run', () => {
    assert.equal(registryFor(undefined), defaultCallsiteRegistry);
    assert.equal(registryFor('t1'), registryFor('t1'));
    assert.notEqual(registryFor('t1'), registryFor('t2'));
  });
});
