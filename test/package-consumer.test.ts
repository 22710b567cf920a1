/**
 * sandtrace as a user gets it: `npm pack`, then a fresh project that installs the tarball (its
 * dependencies from the npm cache, else the registry) and runs a QuickJS guest and an
 * AssemblyScript guest whose source imports the guest library as `"sandtrace"`, with nothing but
 * the package's public entries. A file missing from the package (`files` in package.json), an
 * entry that points outside it, or an AssemblyScript import that does not resolve fails here.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
let dir = '';

const AS_GUEST = `import { SpanCallsite, EventCallsite, Level } from "sandtrace";
const WORK = new SpanCallsite("work", "consumer", Level.INFO, ["n"]);
const DONE = new EventCallsite("done", "consumer", Level.INFO, ["n"]);
export function run(n: i32): i32 {
  const span = WORK.span().i64(n).open();
  span.enter();
  DONE.event().i64(n * 2).emit();
  span.exit();
  span.close();
  return n * 2;
}
`;

const CONSUMER = `import { CaptureCollector, runQuickJS, runWasm, compileAssemblyScript, StateFile, TeeCollector } from 'sandtrace';
import { PipelineCollector } from 'sandtrace';
const capture = new CaptureCollector();
const spans = [];
const collector = new TeeCollector([capture, new PipelineCollector({ handlers: { onSpan: (s) => spans.push(s.name) } })]);
const q = await runQuickJS("tracing.inSpan('from quickjs', { n: 1 }, () => tracing.info('inside')); 21 * 2", { collector });
const wasm = await compileAssemblyScript(new URL('./guest.ts', import.meta.url).pathname);
const w = await runWasm(wasm, { entry: 'run', args: [21], collector });
console.log(JSON.stringify({ q: q.value, w: w.value, spans: spans.sort(), stateFile: typeof StateFile.open }));
`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sandtrace-consumer-'));
  // dist/ is built by \`npm test\` already; packing must not run the build again.
  await run(NPM, ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: PACKAGE_ROOT });
  const tarball = (await readdir(dir)).find((f) => f.endsWith('.tgz'))!;
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { sandtrace: `file:./${tarball}` } }));
  await writeFile(join(dir, 'guest.ts'), AS_GUEST);
  await writeFile(join(dir, 'main.mjs'), CONSUMER);
  await run(NPM, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: dir, timeout: 240_000 });
});
after(() => rm(dir, { recursive: true, force: true }));

test('a project that installed the packed tarball runs a QuickJS and an AssemblyScript guest through the public entries', { timeout: 240_000 }, async () => {
  const { stdout } = await run(process.execPath, ['main.mjs'], { cwd: dir, timeout: 120_000 });
  assert.deepEqual(JSON.parse(stdout), { q: 42, w: 42, spans: ['from quickjs', 'sandtrace.execution', 'sandtrace.execution', 'work'], stateFile: 'function' });
});

test('plain asc in the consumer project: "sandtrace/guest/assemblyscript" resolves (bare "sandtrace" does not with asc 0.28); the module runs once its memory is capped', { timeout: 240_000 }, async () => {
  const asc = join(dir, 'node_modules', 'assemblyscript', 'bin', 'asc.js');
  // Plain asc, as a user would call it: the subpath resolves in node_modules/sandtrace; the bare name does not.
  await writeFile(join(dir, 'plain-guest.ts'), AS_GUEST.replace('from "sandtrace"', 'from "sandtrace/guest/assemblyscript"'));
  await assert.rejects(run(process.execPath, [asc, 'guest.ts', '--outFile', 'bare.wasm'], { cwd: dir, timeout: 120_000 }), /File '~lib\/sandtrace\.ts' not found/);
  await run(process.execPath, [asc, 'plain-guest.ts', '--outFile', 'plain.wasm', '--optimize'], { cwd: dir, timeout: 120_000 });
  await run(process.execPath, [asc, 'plain-guest.ts', '--outFile', 'capped.wasm', '--optimize', '--maximumMemory', '16'], { cwd: dir, timeout: 120_000 });
  await writeFile(
    join(dir, 'plain.mjs'),
    `import { readFileSync } from 'node:fs';
     import { compileWasm, runWasm, CaptureCollector, MemoryLimitError } from 'sandtrace';
     const out = {};
     try { await runWasm(await compileWasm(readFileSync('plain.wasm')), { entry: 'run', args: [21] }); out.plain = 'ran'; }
     catch (e) { out.plain = e instanceof MemoryLimitError ? 'MemoryLimitError' : String(e); }
     const collector = new CaptureCollector();
     const r = await runWasm(await compileWasm(readFileSync('capped.wasm')), { entry: 'run', args: [21], collector });
     out.capped = [r.value, [...collector.spans.values()].map((s) => s.meta.name).sort()];
     console.log(JSON.stringify(out));`,
  );
  const { stdout } = await run(process.execPath, ['plain.mjs'], { cwd: dir, timeout: 120_000 });
  assert.deepEqual(JSON.parse(stdout), { plain: 'MemoryLimitError', capped: [42, ['sandtrace.execution', 'work']] }, 'an uncapped module is refused with the flag to use; a capped one runs');
});

test('the tarball holds the built package and the AssemblyScript library, not the tests or benches', async () => {
  const { stdout } = await run(NPM, ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: PACKAGE_ROOT });
  const files = (JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
  for (const required of ['dist/pkg/index.js', 'dist/bin/sandtrace.js', 'dist/host/index.d.ts', 'dist/host/sandbox/worker/guest-worker.js', 'guest/assemblyscript/index.ts', 'package.json']) {
    assert.ok(files.includes(required), `${required} is in the package`);
  }
  assert.ok(!files.some((f) => f.startsWith('dist/test/') || f.startsWith('dist/bench/') || f.startsWith('dist/examples/')), 'no tests, benches or examples');
});
