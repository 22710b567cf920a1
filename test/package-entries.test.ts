import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PACKAGE = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {
  name: string;
  exports: Record<string, { types: string; default: string }>;
  bin: Record<string, string>;
};
const PACKAGE_GUESTS = fileURLToPath(new URL('./fixtures/package-guests.js', import.meta.url));
const AS_PLUGIN = join(PACKAGE_ROOT, 'test/guests-as/plugin.ts');

/** A module resolve hook for the child: appends every URL it resolves to a file, before answering. */
const HOOK = `
import { appendFileSync } from 'node:fs';
let log;
export function initialize(data) { log = data.log; }
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(log, result.url + '\\n');
  return result;
}
`;

/**
 * The child: registers the hook, imports one entry by the package name (from the package root,
 * so it resolves as a self-reference), then optionally compiles a guest with it. It reports the
 * URLs resolved by the import alone and by the whole run, and the compiled module's exports.
 */
const CHILD = `
import { register } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
const [spec, log, guest] = process.argv.slice(1);
writeFileSync(log, '');
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(HOOK)}), { parentURL: import.meta.url, data: { log } });
const resolved = () => readFileSync(log, 'utf8').split('\\n').filter(Boolean);
const entry = await import(spec);
const afterImport = resolved();
let wasmExports;
if (guest) {
  const wasm = await entry.compileAssemblyScript(guest);
  wasmExports = WebAssembly.Module.exports(new WebAssembly.Module(wasm)).map((e) => e.name);
}
process.stdout.write(JSON.stringify({ afterImport, afterRun: resolved(), wasmExports }));
`;

interface ChildReport {
  afterImport: string[];
  afterRun: string[];
  wasmExports?: string[];
}

let dir: string;

async function inFreshProcess(spec: string, guest?: string): Promise<ChildReport> {
  const args = ['--input-type=module', '-e', CHILD, spec, join(dir, `resolved-${spec.replace(/\W/g, '-')}.txt`)];
  if (guest !== undefined) args.push(guest);
  const { stdout } = await run(process.execPath, args, { cwd: PACKAGE_ROOT });
  return JSON.parse(stdout) as ChildReport;
}

/** The AssemblyScript compiler and the binaryen build it loads. */
const COMPILER = /\/node_modules\/(assemblyscript|binaryen)\//;
/** Loaded by the exporter with the first response body it decodes, never at import. */
const PROTOBUF = /\/node_modules\/protobufjs\//;

/** The names each entry promises (README and the entries' own documentation). */
const PROMISED: Record<string, string[]> = {
  '.': [
    'runQuickJS', 'runWasm', 'compileAssemblyScript', 'CompileError', 'MemoryLimitError', 'TracingEventReceiver', 'ReceiveError',
    'CaptureCollector', 'FmtCollector', 'NullCollector', 'PipelineCollector', 'BatchingManager', 'OtlpHttpExporter',
    'parseTraceParent', 'formatTraceParent', 'FrameWriter', 'FrameReader', 'StateFile', 'StateFileLockedError', 'StateFileCorruptError', 'StateFileVersionError',
  ],
  './protocol': ['FrameWriter', 'FrameReader', 'FrameDecoder', 'EventEncoder'],
  './opentelemetry': ['OpenTelemetryCollector', 'SandtraceIdGenerator'],
  './quickjs': ['runQuickJS', 'CaptureCollector', 'FmtCollector', 'NullCollector', 'LevelFilter', 'parseTraceParent', 'formatTraceParent', 'describeCause', 'newExecutionId'],
  './wasm': ['runWasm', 'MemoryLimitError', 'CaptureCollector', 'FmtCollector', 'NullCollector', 'LevelFilter'],
  './compile': ['compileAssemblyScript', 'CompileError'],
};

const specOf = (subpath: string) => (subpath === '.' ? PACKAGE.name : `${PACKAGE.name}${subpath.slice(1)}`);
/** The package's own files among resolved URLs, relative to its root. */
const ownFiles = (urls: string[]) => urls.filter((u) => u.startsWith('file:') && !u.includes('/node_modules/')).map((u) => fileURLToPath(u).slice(PACKAGE_ROOT.length));

describe('package entries', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sandtrace-entries-'));
  });
  after(async () => {
    await rm(dir, { recursive: true });
  });

  for (const subpath of ['.', './quickjs', './wasm', './compile']) {
    test(`importing ${specOf(subpath)} loads neither the AssemblyScript compiler nor protobufjs`, async () => {
      const { afterImport } = await inFreshProcess(specOf(subpath));
      const entryFile = PACKAGE.exports[subpath]!.default.slice(1);
      assert.ok(afterImport.some((url) => url.endsWith(entryFile)), `the hook saw the entry (${entryFile}) resolve`);
      assert.deepEqual(afterImport.filter((url) => COMPILER.test(url)), []);
      assert.deepEqual(afterImport.filter((url) => PROTOBUF.test(url)), []);
    });
  }

  test('importing sandtrace loads its bundle: at most four files of the package, none of them outside dist/pkg/', async () => {
    const own = ownFiles((await inFreshProcess('sandtrace')).afterImport);
    assert.ok(own.length <= 4, `one file per entry and per shared chunk, which cost about 1 ms each: ${own.join(', ')}`);
    assert.deepEqual(own.filter((f) => !f.startsWith('dist/pkg/')), []);
  });

  test('sandtrace/protocol loads no Node built-in', async () => {
    const { afterImport } = await inFreshProcess('sandtrace/protocol');
    assert.deepEqual(afterImport.filter((url) => url.startsWith('node:')), []);
  });

  test('the entries share one instance of each module: a class from one entry is the same class in another', async () => {
    const host = await import('sandtrace');
    const quickjs = await import('sandtrace/quickjs');
    const wasm = await import('sandtrace/wasm');
    const compile = await import('sandtrace/compile');
    const protocol = await import('sandtrace/protocol');
    assert.equal(quickjs.SandboxPool, host.SandboxPool);
    assert.equal(wasm.SandboxPool, host.SandboxPool);
    assert.equal(quickjs.defaultSandboxPool, wasm.defaultSandboxPool);
    assert.equal(wasm.CaptureCollector, host.CaptureCollector);
    assert.equal(compile.CompileError, host.CompileError);
    assert.equal(protocol.FrameReader, host.FrameReader);
  });

  test('a process importing sandtrace and sandtrace/compile by name runs a QuickJS guest and an AssemblyScript guest end to end', async () => {
    const { stdout } = await run(process.execPath, [PACKAGE_GUESTS, AS_PLUGIN], { cwd: PACKAGE_ROOT });
    const report = JSON.parse(stdout) as {
      resolved: string[];
      quickjs: { ok: boolean; value: unknown; spans: string[]; events: unknown[] };
      wasm: { ok: boolean; value: unknown; spans: string[] };
    };
    assert.deepEqual(ownFiles(report.resolved), [PACKAGE.exports['.']!.default.slice(2), PACKAGE.exports['./compile']!.default.slice(2)]);
    assert.deepEqual(report.quickjs, { ok: true, value: { answer: 42 }, spans: ['sandtrace.execution', 'work'], events: ['inside'] });
    assert.deepEqual(report.wasm, { ok: true, value: 6, spans: ['sandtrace.execution', 'handle', 'query'] });
  });

  test("package.json's bin runs: --help, and a QuickJS guest into a local store", async () => {
    const bin = join(PACKAGE_ROOT, PACKAGE.bin[PACKAGE.name]!);
    const env = { PATH: process.env.PATH };
    const help = await run(process.execPath, [bin, '--help'], { env });
    assert.match(help.stdout, /sandtrace run <guest\.js/);
    const guest = join(dir, 'bin-guest.js');
    await writeFile(guest, "tracing.inSpan('from the bin', {}, () => tracing.info('hello'));\n'done'\n");
    const out = join(dir, 'bin-store');
    const r = await run(process.execPath, [bin, 'run', guest, '--quiet', '--out', out], { cwd: dir, env });
    assert.match(r.stdout, /completed/);
    assert.match(await readFile(join(out, 'traces.jsonl'), 'utf8'), /from the bin/);
  });

  test('sandtrace/compile loads the compiler with the first compileAssemblyScript call, and the guest compiles', async () => {
    const guest = join(dir, 'add.ts');
    await writeFile(guest, 'export function add(a: i32, b: i32): i32 {\n  return a + b;\n}\n');
    const report = await inFreshProcess('sandtrace/compile', guest);
    assert.deepEqual(report.afterImport.filter((url) => COMPILER.test(url)), [], 'not at import');
    assert.ok(report.afterRun.some((url) => /\/node_modules\/assemblyscript\//.test(url)), 'loaded by the call');
    assert.ok(report.wasmExports?.includes('add'), `exports: ${report.wasmExports}`);
  });

  test("every subpath in package.json's exports resolves by the package name, has its types, and exposes the names it promises", async () => {
    assert.deepEqual(Object.keys(PACKAGE.exports).sort(), Object.keys(PROMISED).sort(), 'every entry has its promised names listed here');
    for (const [subpath, target] of Object.entries(PACKAGE.exports)) {
      assert.ok(existsSync(join(PACKAGE_ROOT, target.types)), `${target.types} exists`);
      const entry = (await import(specOf(subpath))) as Record<string, unknown>;
      const missing = PROMISED[subpath]!.filter((name) => entry[name] === undefined);
      assert.deepEqual(missing, [], `${specOf(subpath)} exposes ${PROMISED[subpath]!.join(', ')}`);
    }
  });
});
