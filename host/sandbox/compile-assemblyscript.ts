/**
 * Compiles an AssemblyScript guest with the project's own compiler and settings, in memory.
 * `import … from "sandtrace"` in the guest resolves to this package's AssemblyScript library,
 * wherever the guest's file lives.
 *
 * The compiler (`assemblyscript/asc` with binaryen: about half a second and 45 MiB of heap to
 * load) is imported on the first compile, not when this module loads, so a host that never
 * compiles never pays for it.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { packageRoot } from '../package-root.js';

type Asc = (typeof import('assemblyscript/asc'))['default'];

export interface CompileOptions {
  /** `release` (optimized, default) or `debug`. */
  target?: 'release' | 'debug';
  /** Maximum memory, in 64 KiB pages (only with `importMemory: false`; otherwise the host sets it). */
  maximumMemoryPages?: number;
  /** Import the memory from the host, which then enforces the run's memory limit (default true). */
  importMemory?: boolean;
}

let compiler: Promise<Asc> | undefined;

/** The compiler, imported once; a failed import is not cached, so the next compile tries again. */
function loadCompiler(): Promise<Asc> {
  compiler ??= import('assemblyscript/asc').then(
    (m) => m.default,
    (e: unknown) => {
      compiler = undefined;
      throw e;
    },
  );
  return compiler;
}

/** Errors of a path that is not a readable file: the compiler then tries its next candidate. */
const NOT_A_FILE = new Set(['ENOENT', 'ENOTDIR', 'EISDIR']);

/** Raised with the compiler's diagnostics when a guest does not compile. */
export class CompileError extends Error {
  constructor(
    readonly file: string,
    readonly diagnostics: string,
  ) {
    super(`${file} does not compile:\n${diagnostics}`);
    this.name = 'CompileError';
  }
}

/**
 * @example
 * const wasm = await compileAssemblyScript('plugin.ts');
 * const result = await runWasm(wasm, { entry: 'run', collector });
 */
export async function compileAssemblyScript(file: string, options: CompileOptions = {}): Promise<Uint8Array> {
  const entry = resolve(file);
  const args = [entry, '--config', join(packageRoot(), 'asconfig.json'), '--outFile', 'guest.wasm', '--textFile', '', '--runtime', 'incremental', '--exportRuntime'];
  if (options.target === 'debug') args.push('--debug');
  else args.push('--optimizeLevel', '3', '--shrinkLevel', '0');
  if (options.importMemory !== false) args.push('--importMemory');
  if (options.maximumMemoryPages !== undefined) args.push('--maximumMemory', String(options.maximumMemoryPages));
  const asc = await loadCompiler();
  let wasm: Uint8Array | undefined;
  let diagnostics = '';
  const { error } = await asc.main(args, {
    readFile: async (name: string, baseDir: string) => {
      const path = resolve(baseDir, name);
      // `from "sandtrace"`: serve this package's library, wherever the compiler looks for it.
      const marker = `${join('node_modules', 'sandtrace')}/`;
      const i = path.lastIndexOf(marker);
      // Both forms: `from "sandtrace"` (the compiler asks for node_modules/sandtrace/index.ts) and
      // `from "sandtrace/guest/assemblyscript"`, the subpath plain asc resolves too.
      const rest = i < 0 ? '' : path.slice(i + marker.length);
      const real = i < 0 ? path : rest.startsWith('guest/assemblyscript/') ? join(packageRoot(), rest) : join(packageRoot(), 'guest/assemblyscript', rest);
      try {
        return await readFile(real, 'utf8');
      } catch (e) {
        if (NOT_A_FILE.has((e as NodeJS.ErrnoException).code ?? '')) return null;
        throw e;
      }
    },
    writeFile: async (name: string, contents: Uint8Array | string) => {
      if (name.endsWith('.wasm') && typeof contents !== 'string') wasm = contents;
    },
    listFiles: async () => [],
    stdout: { write: () => true } as never,
    stderr: { write: (s: string) => ((diagnostics += s), true) } as never,
  });
  if (error !== null && error !== undefined) throw new CompileError(file, diagnostics || String(error));
  if (wasm === undefined) throw new CompileError(file, 'the compiler produced no binary');
  return wasm;
}
