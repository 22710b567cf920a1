/**
 * The receiver keeps its reader (and the newest reader stays referenced between executions, so
 * the decode path keeps its hidden classes across a GC): the reader must let go of each frame
 * once it is applied, or a finished execution's last frame would stay in memory.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setImmediate as turn } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { NewSpanInfo } from '../host/collectors/collector.js';
import { NullCollector } from '../host/collectors/null-collector.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import { TracingEventReceiver } from '../host/receiver/receiver.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { SandboxPool } from '../host/sandbox/sandbox-pool.js';
import { FrameWriter } from '../shared/frame-writer.js';
import type { Values } from '../shared/records.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

test('a_receiver_holds_no_frame_once_it_is_applied', async () => {
  const receiver = new TracingEventReceiver({ collector: new NullCollector() });
  let frame: Uint8Array | undefined = (() => {
    const w = new FrameWriter();
    w.newCallSite(1, 'span', 'work', 'test', 'info', undefined, 'a.ts', 1, ['n']);
    w.newSpan(1, undefined, 1, 10, [1]);
    w.spanDropped(1, 20);
    return w.finish().slice(); // a buffer of its own
  })();
  const buffer = new WeakRef(frame.buffer);
  assert.deepEqual(receiver.receiveBatch(frame), { applied: 3, rejected: 0, truncated: 0, errors: [] });
  frame = undefined;
  await turn(); // a WeakRef's target is kept until the job that made it ends
  gc();
  assert.equal(buffer.deref(), undefined, 'the frame is still referenced after receiveBatch');
  assert.equal(receiver.stats.applied, 3);
});

/**
 * What a guest sent must not outlive its run on the host: the decoder state kept between
 * executions (KEEP_DECODER_SHAPES, KEEP_ROOT_INFO_SHAPE) holds only classes, not a tenant's values
 * (up to maxValues × maxStringBytes of them, held until some later run replaced them).
 */
describe('a finished run leaves none of its guest\'s values referenced from state kept for the next run', () => {
  const guestBytes = (values: Values, into: Array<WeakRef<Uint8Array>>) => {
    for (const [, v] of values) if (v instanceof Uint8Array) into.push(new WeakRef(v));
  };
  const collected = async (refs: Array<WeakRef<Uint8Array>>, what: string) => {
    assert.ok(refs.length > 0, `the ${what} reached the collector`);
    await turn();
    gc();
    gc();
    assert.equal(refs.filter((r) => r.deref() !== undefined).length, 0, `the ${what} is still referenced after the run`);
  };

  test('the last values a guest sent are let go with its run', async () => {
    await using pool = new SandboxPool({ size: 1 });
    const refs: Array<WeakRef<Uint8Array>> = [];
    class Watching extends NullCollector {
      override newSpan(info?: NewSpanInfo): number {
        guestBytes(info!.values, refs);
        return super.newSpan();
      }
    }
    const result = await runQuickJS(`tracing.span('last', { secret: new Uint8Array(65536).fill(7) }).close();`, { pool, collector: new Watching() });
    assert.equal(result.ok, true);
    await collected(refs, 'guest span\'s bytes value');
  });

  test('a guest\'s explicit root span is not kept by the pipeline collector', async () => {
    await using pool = new SandboxPool({ size: 1 });
    const refs: Array<WeakRef<Uint8Array>> = [];
    let spans = 0;
    class Watching extends PipelineCollector {
      override newSpan(info: NewSpanInfo): number {
        guestBytes(info.values, refs);
        return super.newSpan(info);
      }
    }
    const collector = new Watching({ handlers: { onSpan: () => void spans++ } });
    const result = await runQuickJS(`tracing.span('root', { secret: new Uint8Array(65536).fill(7) }, { parent: null }).close(); tracing.span('after').close();`, { pool, collector });
    assert.equal(result.ok, true);
    assert.equal(spans, 3, 'the execution span and the guest\'s two');
    await collected(refs, 'explicit root span\'s bytes value');
  });
});
