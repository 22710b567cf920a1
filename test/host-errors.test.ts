/**
 * A failure on the host's side while a guest's frames are applied (a collector that throws) is
 * the host's error: the run rejects with it, after the worker is done, and no frame is applied
 * twice. The guest is never blamed for it, and nothing is swallowed (issue 10).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import type { NewSpanInfo } from '../host/collectors/collector.js';
import { compileAssemblyScript } from '../host/sandbox/compile-assemblyscript.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { SandboxPool } from '../host/sandbox/sandbox-pool.js';
import { runWasm } from '../host/sandbox/wasm-runner.js';

/** Captures everything, but fails on the first span named `name` (once). */
class FailingCollector extends CaptureCollector {
  spansSeen: string[] = [];
  private failed = false;
  constructor(private readonly failOn: string) {
    super();
  }
  override newSpan(info: NewSpanInfo): number {
    this.spansSeen.push(info.meta.name);
    if (info.meta.name === this.failOn && !this.failed) {
      this.failed = true;
      throw new Error(`collector failure on ${this.failOn}`);
    }
    return super.newSpan(info);
  }
}

describe('a host-side error while frames are applied', () => {
  const pool = new SandboxPool({ size: 1 });
  let wasm: Uint8Array;
  before(async () => (wasm = await compileAssemblyScript(fileURLToPath(new URL('../../test/guests-as/plugin.ts', import.meta.url)))));
  after(() => pool.close());

  test('QuickJS: the run rejects with it (it was swallowed by the final drain) and the worker serves the next run', async () => {
    const collector = new FailingCollector('work');
    await assert.rejects(runQuickJS(`tracing.inSpan('work', {}, () => tracing.info('x')); 1`, { collector, pool }), /collector failure on work/);
    assert.deepEqual(collector.spansSeen.filter((n) => n === 'work'), ['work'], 'the frame was applied once');
    const next = await runQuickJS(`2`, { pool });
    assert.equal(next.value, 2);
    assert.equal(pool.stats.faults, 0, 'not a failure of the worker');
  });

  test('WebAssembly: the run rejects with it, and the frame was applied once, not again on the way out', async () => {
    const probe = new CaptureCollector();
    await runWasm(wasm, { pool, entry: 'run', args: ['alice', 1], collector: probe });
    const first = [...probe.spans.values()].find((s) => s.meta.name !== 'sandtrace.execution')!.meta.name;
    const collector = new FailingCollector(first);
    await assert.rejects(runWasm(wasm, { pool, entry: 'run', args: ['alice', 1], collector }), new RegExp(`collector failure on ${first}`));
    assert.deepEqual(collector.spansSeen.filter((n) => n === first), [first]);
  });
});
