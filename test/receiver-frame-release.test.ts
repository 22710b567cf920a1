/**
 * The receiver keeps its reader (and the newest reader stays referenced between executions, so
 * the decode path keeps its hidden classes across a GC): the reader must let go of each frame
 * once it is applied, or a finished execution's last frame would stay in memory.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as turn } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { NullCollector } from '../host/collectors/null-collector.js';
import { TracingEventReceiver } from '../host/receiver/receiver.js';
import { FrameWriter } from '../shared/frame-writer.js';

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
