import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  StateFile,
  StateFileCorruptError,
  StateFileError,
  StateFileLockedError,
  StateFileVersionError,
  type PersistedExecution,
} from '../host/index.js';

const STATE_MODULE = new URL('../host/state/state-file.js', import.meta.url).href;
const CLI = fileURLToPath(new URL('../host/cli/main.js', import.meta.url));
const WORKFLOW_STEP = fileURLToPath(new URL('../../examples/guests/workflow-step.js', import.meta.url));

let dir = '';
let n = 0;
/** A fresh folder per test: leftovers are counted per folder. */
async function folder(): Promise<string> {
  const d = join(dir, `t${++n}`);
  await mkdir(d);
  return d;
}

const EXECUTION: PersistedExecution = { metadata: { version: 1, callsites: [] }, spans: { version: 1, spans: [] } } as unknown as PersistedExecution;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sandtrace-state-'));
});
after(() => rm(dir, { recursive: true }));

/** Resolves with the next line `child` prints. */
function nextLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      const nl = text.indexOf('\n');
      if (nl >= 0) {
        child.stdout!.off('data', onData);
        child.off('exit', onExit);
        resolve(text.slice(0, nl));
      }
    };
    const onExit = (code: number | null) => reject(new Error(`child exited (${code}) before printing a line`));
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

const exited = (child: ChildProcess) => new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

function sandtrace(args: string[]): { child: ChildProcess; done: Promise<CliRun> } {
  let child!: ChildProcess;
  const done = new Promise<CliRun>((resolve) => {
    child = execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : ((error as { code?: number }).code ?? -1), stdout, stderr });
    });
  });
  return { child, done };
}

/**
 * The child: locks the state file and commits a state of some megabytes to it over and over,
 * each with its own sequence number, printing "open" once it holds the lock.
 */
const WRITER = `
const [mod, file, megabytes] = process.argv.slice(1);
const { StateFile } = await import(mod);
const f = await StateFile.open(file);
process.stdout.write('open\\n');
const pad = 'x'.repeat(1000);
const spans = Array.from({ length: Number(megabytes) * 1000 }, (_, id) => ({ id, pad }));
for (let seq = 1; ; seq++) await f.commit({ metadata: { version: 1, callsites: [], seq }, spans: { version: 1, spans } });
`;

describe('StateFile', () => {
  test('kill -9 at random moments during commits: the file is always absent or a complete envelope, never empty or cut short', async (t) => {
    const d = await folder();
    const file = join(d, 'wf.json');
    const megabytes = 4;
    let kills = 0;
    let midWrite = 0; // kills that left a temporary file: the kill landed while a commit was being written
    const seen = new Set<number>();
    while (kills < 12 || (midWrite < 2 && kills < 40)) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', WRITER, STATE_MODULE, file, String(megabytes)], { stdio: ['ignore', 'pipe', 'inherit'] });
      assert.equal(await nextLine(child), 'open', 'each writer takes over the lock its killed predecessor left');
      await new Promise((r) => setTimeout(r, Math.random() * 250));
      child.kill('SIGKILL');
      await exited(child);
      kills++;
      if ((await readdir(d)).some((f) => f.endsWith('.tmp'))) midWrite++;
      if (!existsSync(file)) {
        assert.equal(seen.size, 0, 'once committed, the file never goes away');
        continue;
      }
      const text = await readFile(file, 'utf8');
      assert.ok(text.length > megabytes * 1_000_000, `complete, not cut short (${text.length} bytes after kill ${kills})`);
      const envelope = JSON.parse(text);
      assert.equal(envelope.sandtraceState, 1);
      assert.match(envelope.writtenAt, /^\d{4}-\d\d-\d\dT/);
      assert.equal(envelope.execution.spans.spans.length, megabytes * 1000);
      assert.equal(typeof envelope.execution.metadata.seq, 'number');
      seen.add(envelope.execution.metadata.seq);
    }
    t.diagnostic(`${kills} kills, ${midWrite} in the middle of a commit, ${seen.size} distinct commits seen`);
    assert.ok(midWrite >= 1, `at least one kill landed in the middle of a commit (${midWrite} of ${kills})`);
    assert.ok(seen.size > 0, 'some commits completed');
    // The next holder reads the last complete state, and clears what the killed writers left.
    const f = await StateFile.open(file);
    assert.equal((await f.read())!.spans.spans.length, megabytes * 1000);
    await f.release();
    assert.deepEqual(await readdir(d), ['wf.json']);
  });

  test('a second sandtrace run on a state file in use is refused with the holder named; the library refuses it too', async () => {
    const d = await folder();
    const file = join(d, 'wf.json');
    const busy = join(d, 'busy.js');
    await writeFile(busy, `const wf = tracing.span('long step'); const t = Date.now(); while (Date.now() - t < 1500) {} 'done';`);
    const first = sandtrace(['run', busy, '--out', join(d, 'store'), '--state', file, '--quiet']);
    while (!existsSync(`${file}.lock`)) await new Promise((r) => setTimeout(r, 10));

    const second = await sandtrace(['run', WORKFLOW_STEP, '--out', join(d, 'store'), '--state', file, '--quiet']).done;
    assert.equal(second.code, 2);
    assert.equal(second.stderr, `sandtrace: state file ${file} is in use: locked by process ${first.child.pid} on this host since ${JSON.parse(await readFile(`${file}.lock`, 'utf8')).acquiredAt}; wait for it to finish (lock ${file}.lock)\n`);
    assert.equal(second.stdout, '', 'nothing ran');

    const refused = await StateFile.open(file).then(
      () => assert.fail('opened a state file in use'),
      (e: unknown) => e,
    );
    assert.ok(refused instanceof StateFileLockedError && refused instanceof StateFileError);
    assert.equal(refused.pid, first.child.pid);
    assert.equal(refused.host, hostname());
    assert.equal(refused.path, file);

    const r = await first.done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /state: started fresh; 1 open span\(s\) committed to /);
    assert.equal(existsSync(`${file}.lock`), false, 'released at the end of the run');
    assert.deepEqual((await readdir(d)).sort(), ['busy.js', 'store', 'wf.json']);
  });

  test('a stale lock, left by a process that has exited, is taken over; a lock from another host or naming no process is refused', async () => {
    const d = await folder();
    const file = join(d, 'wf.json');
    const gone = spawn(process.execPath, ['-e', '']);
    await exited(gone);
    await writeFile(`${file}.lock`, JSON.stringify({ pid: gone.pid, host: hostname(), token: 'old', acquiredAt: '2020-01-01T00:00:00.000Z' }));
    const f = await StateFile.open(file);
    assert.equal(JSON.parse(await readFile(`${file}.lock`, 'utf8')).pid, process.pid);
    await f.release();
    assert.equal(existsSync(`${file}.lock`), false);

    await writeFile(`${file}.lock`, JSON.stringify({ pid: 1, host: 'elsewhere.example', token: 'x', acquiredAt: '' }));
    await assert.rejects(StateFile.open(file), (e: unknown) => e instanceof StateFileLockedError && e.host === 'elsewhere.example' && /process 1 on host elsewhere\.example/.test(e.message));
    await writeFile(`${file}.lock`, '');
    await assert.rejects(StateFile.open(file), (e: unknown) => e instanceof StateFileLockedError && e.pid === undefined && /names no process/.test(e.message));
    assert.equal(await readFile(`${file}.lock`, 'utf8'), '', 'a lock it cannot judge is left alone');
  });

  test('this process holds its own lock: a second open in the same process is refused as well', async () => {
    const file = join(await folder(), 'wf.json');
    const f = await StateFile.open(file);
    await assert.rejects(StateFile.open(file), (e: unknown) => e instanceof StateFileLockedError && e.pid === process.pid);
    await f.release();
    await (await StateFile.open(file)).release();
  });

  test('unknown format, cut short, empty, not a state file: typed errors that name the file; a legacy bare state is read', async () => {
    const file = join(await folder(), 'wf.json');
    const f = await StateFile.open(file);
    assert.equal(await f.read(), undefined, 'no file yet');

    await writeFile(file, JSON.stringify({ sandtraceState: 2, writtenAt: '', execution: EXECUTION }));
    await assert.rejects(f.read(), (e: unknown) => e instanceof StateFileVersionError && e.version === 2 && e.path === file && e.message.includes(file) && /state format 2.*reads format 1/.test(e.message));

    const complete = JSON.stringify({ sandtraceState: 1, writtenAt: new Date().toISOString(), execution: EXECUTION });
    await writeFile(file, complete.slice(0, complete.length - 7));
    await assert.rejects(f.read(), (e: unknown) => e instanceof StateFileCorruptError && e.message.startsWith(`state file ${file} is corrupt: it is not complete JSON`));

    await writeFile(file, '');
    await assert.rejects(f.read(), (e: unknown) => e instanceof StateFileCorruptError && e.message === `state file ${file} is corrupt: it is empty (a write to it was cut short?)`);

    for (const text of ['[1,2]', '{"hello":1}', '{"sandtraceState":"1"}', '{"sandtraceState":1,"execution":null}']) {
      await writeFile(file, text);
      await assert.rejects(f.read(), (e: unknown) => e instanceof StateFileCorruptError && e.path === file, text);
    }

    await writeFile(file, JSON.stringify(EXECUTION)); // what sandtrace wrote before the envelope
    assert.deepEqual(await f.read(), EXECUTION);
    await f.commit(EXECUTION);
    assert.equal(JSON.parse(await readFile(file, 'utf8')).sandtraceState, 1, 'rewritten in the current format');
    assert.deepEqual(await f.read(), EXECUTION);
    await f.release();
  });

  test('commits leave no temporary files; release removes the lock; a released file refuses further use', async () => {
    const d = await folder();
    const file = join(d, 'wf.json');
    {
      await using f = await StateFile.open(file);
      assert.deepEqual(await readdir(d), ['wf.json.lock']);
      for (let i = 0; i < 5; i++) await f.commit({ ...EXECUTION, metadata: { ...EXECUTION.metadata, i } } as unknown as PersistedExecution);
      assert.deepEqual((await readdir(d)).sort(), ['wf.json', 'wf.json.lock']);
      assert.equal(((await f.read())!.metadata as unknown as { i: number }).i, 4);
    }
    assert.deepEqual(await readdir(d), ['wf.json'], 'await using released the lock');
    const f = await StateFile.open(file);
    await f.release();
    await f.release();
    assert.equal(f.released, true);
    await assert.rejects(f.commit(EXECUTION), /was released/);
    await assert.rejects(f.read(), /was released/);
  });

  test('the CLI resumes from a legacy state file and rewrites it as an envelope; a corrupt one is refused before the guest runs', async () => {
    const d = await folder();
    const file = join(d, 'wf.json');
    const store = join(d, 'store');
    const first = await sandtrace(['run', WORKFLOW_STEP, '--out', store, '--state', file, '--quiet']).done;
    assert.equal(first.code, 0, first.stderr);
    await writeFile(file, JSON.stringify(JSON.parse(await readFile(file, 'utf8')).execution)); // as an older sandtrace wrote it
    const second = await sandtrace(['run', WORKFLOW_STEP, '--out', store, '--state', file, '--quiet']).done;
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /✔ completed → 2/);
    assert.match(second.stdout, /state: resumed 1 span\(s\); 0 open span\(s\) committed to /);
    assert.equal(JSON.parse(await readFile(file, 'utf8')).sandtraceState, 1);

    await writeFile(file, '{"sandtraceState":1,"writtenAt":"2026-');
    const third = await sandtrace(['run', WORKFLOW_STEP, '--out', store, '--state', file, '--quiet']).done;
    assert.equal(third.code, 2);
    assert.match(third.stderr, new RegExp(`^sandtrace: state file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is corrupt: it is not complete JSON`));
    assert.equal(third.stdout, '');
    assert.equal(existsSync(`${file}.lock`), false, 'the lock is released after a refusal too');
  });
});
