import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const STEP = fileURLToPath(new URL('./fixtures/workflow-step.js', import.meta.url));

interface StepOutput {
  ok: boolean;
  value: string;
  persisted: number;
  spans: Array<{ name: string; closed: boolean; start: string; end?: string; values: Record<string, unknown>; events: string[] }>;
}

async function step(kind: string, n: number, stateFile: string): Promise<StepOutput> {
  const { stdout } = await run(process.execPath, [STEP, kind, String(n), stateFile]);
  return JSON.parse(stdout) as StepOutput;
}

const EXPECTED = {
  quickjs: { name: 'order-workflow', values: { order: 'A-1', status: 'paid' } },
  wasm: { name: 'handle', values: { user: 'workflow', attempt: 1, result: 'paid' } },
};

for (const kind of ['quickjs', 'wasm'] as const) {
  test(`${kind}: a span opened in one process and committed is resumed and closed in another, exported once with its real start and end`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sandtrace-wf-'));
    try {
      const stateFile = join(dir, 'state.json');
      const first = await step(kind, 1, stateFile);
      assert.equal(first.ok, true);
      assert.equal(first.persisted, 1);
      assert.deepEqual(first.spans.map((s) => [s.name, s.closed]), [[EXPECTED[kind].name, false]], 'not exported by the first process');
      const second = await step(kind, 2, stateFile);
      assert.equal(second.ok, true);
      assert.equal(second.persisted, 0);
      assert.equal(second.spans.length, 1);
      const wf = second.spans[0]!;
      assert.equal(wf.closed, true);
      assert.equal(wf.start, first.spans[0]!.start, 'start time from the first process');
      assert.ok(BigInt(wf.end!) > BigInt(wf.start));
      assert.deepEqual(wf.values, EXPECTED[kind].values);
      assert.deepEqual(wf.events, ['reserved stock', 'charged card']);
      assert.equal(wf.name, EXPECTED[kind].name);
    } finally {
      await rm(dir, { recursive: true });
    }
  });
}
