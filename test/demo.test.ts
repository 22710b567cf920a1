import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const DEMO = fileURLToPath(new URL('../examples/demo.js', import.meta.url));

test('the npm start demo runs every guest, shows the crashes with their causes, and fills the local store', async () => {
  const cwd = await mkdtemp(join(tmpdir(), 'sandtrace-demo-'));
  try {
    // The timeout only ends a hang: the demo compiles an AssemblyScript guest (seconds of CPU), and
    // a machine loaded ten times over its cores stretched it past 120 s.
    const { stdout } = await promisify(execFile)(process.execPath, [DEMO], { cwd, timeout: 300_000 });
    assert.match(stdout, /1\. a QuickJS plugin[\s\S]*returned 3/);
    assert.match(stdout, /2\. an AssemblyScript plugin[\s\S]*┌ checksum bytes=100000/);
    assert.match(stdout, /force-closed: deadline exceeded/);
    assert.match(stdout, /force-closed: trap: unreachable/);
    assert.match(stdout, /step 2, attempt 1: uncaught exception: Error: stock service unavailable; retried from the last commit/);
    assert.match(stdout, /step 3, attempt 1: ok, 0 span\(s\) carried over/);
    assert.match(stdout, /┆ order workflow \(resumed\)/);
    assert.match(stdout, /Written to the local store \.sandtrace\/: \d+ spans/);
    assert.deepEqual((await readdir(join(cwd, '.sandtrace'))).sort(), ['logs.jsonl', 'metrics.jsonl', 'traces.jsonl']);
  } finally {
    await rm(cwd, { recursive: true });
  }
});
