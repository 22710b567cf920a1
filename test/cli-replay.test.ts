import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { FrameWriter } from '../shared/frame-writer.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../host/cli/main.js', import.meta.url));

test('sandtrace replay prints the rebuilt tree of recorded frames and a summary', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sandtrace-replay-'));
  try {
    const w = new FrameWriter();
    w.newCallSite(1, 'span', 'job', 'cli.test', 'info', undefined, undefined, undefined, ['name']);
    w.newCallSite(2, 'event', 'log', 'cli.test', 'warn', undefined, undefined, undefined, ['message']);
    w.newSpan(1, undefined, 1, 0, ['nightly']);
    w.spanEntered(1, 10);
    await writeFile(join(dir, 'a.bin'), w.finish());
    w.newEvent(2, undefined, 2_000_000, ['disk almost full']);
    w.spanExited(1, 3_000_000);
    w.spanDropped(1, 3_000_010);
    await writeFile(join(dir, 'b.bin'), w.finish());
    const { stdout } = await run(process.execPath, [CLI, 'replay', join(dir, 'a.bin'), join(dir, 'b.bin')]);
    assert.match(stdout, /┌ job name=nightly/);
    assert.match(stdout, /│ {2}WARN "disk almost full"/);
    assert.match(stdout, /└ job 3\.00ms/);
    assert.match(stdout, /2 frame\(s\): 7 records applied, 0 rejected, 0 truncated; 0 span\(s\) left open/);
  } finally {
    await rm(dir, { recursive: true });
  }
});

test('sandtrace replay exits 1 and names the problem when a frame is cut short', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sandtrace-replay-'));
  try {
    const w = new FrameWriter();
    w.newCallSite(1, 'span', 'job', 'cli.test', 'info', undefined, undefined, undefined, ['name']);
    w.newSpan(1, undefined, 1, 0, ['cut short']);
    const bytes = w.finish();
    await writeFile(join(dir, 'cut.bin'), bytes.subarray(0, bytes.length - 3));
    await assert.rejects(run(process.execPath, [CLI, 'replay', join(dir, 'cut.bin')]), (e: { code: number; stdout: string }) => {
      assert.equal(e.code, 1);
      assert.match(e.stdout, /1 records applied, 0 rejected, 1 truncated/);
      return true;
    });
  } finally {
    await rm(dir, { recursive: true });
  }
});
