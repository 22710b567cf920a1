/**
 * Bundles the package's entries after tsc (`npm run build`). Node 20's ESM loader pays about
 * 1 ms per file, and the host entry alone is some forty compiled files; bytes cost far less.
 *
 * dist/pkg/: the library entries (package.json `exports`), split into shared chunks, so each
 * source module has one copy, and one instance, whichever entries a host imports. The runner
 * entries (quickjs, wasm, compile, opentelemetry) each also import the host entry: its modules are
 * then reachable from all of them, and esbuild puts them into one chunk instead of one chunk per
 * combination of entries that uses them. So `sandtrace` and each runner entry load three files
 * (their own, that chunk, and the protocol's). sandtrace/protocol keeps only the protocol chunk,
 * and with it no Node built-in.
 *
 * dist/bin/: the `sandtrace` command on its own; nothing imports it, so it shares nothing.
 *
 * The input is tsc's output, not the .ts sources: the bundles hold the JavaScript the tests run,
 * and their source maps lead back to the .ts files through tsc's own maps. Dependencies stay
 * external. Not bundled, and found under dist/ at run time (host/package-root.ts): the sandbox
 * worker's entry (dist/host/sandbox/worker/guest-worker.js) and the QuickJS SDK's sources.
 */
import { build } from 'esbuild';
import { chmod, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HOST_ENTRY = 'dist/host/index.js';

/** Bundle name → tsc output, and whether the entry also imports the host entry. */
const LIBRARY = {
  index: [HOST_ENTRY, false], // "."
  quickjs: ['dist/host/quickjs.js', true],
  wasm: ['dist/host/wasm.js', true],
  compile: ['dist/host/compile.js', true],
  opentelemetry: ['dist/host/opentelemetry.js', true],
  protocol: ['dist/shared/index.js', false],
};

/** `with-host-entry:<file>` is <file>'s exports, after importing the host entry. */
const withHostEntry = {
  name: 'with-host-entry',
  setup(b) {
    b.onResolve({ filter: /^with-host-entry:/ }, ({ path }) => ({ path: path.slice('with-host-entry:'.length), namespace: 'with-host-entry' }));
    b.onLoad({ filter: /.*/, namespace: 'with-host-entry' }, ({ path }) => ({
      contents: `import './${HOST_ENTRY}';\nexport * from './${path}';\n`,
      resolveDir: ROOT,
      loader: 'js',
    }));
  },
};

async function bundle(entryPoints, outdir) {
  await rm(`${ROOT}${outdir}`, { recursive: true, force: true }); // chunk names carry hashes: drop old ones
  await build({
    absWorkingDir: ROOT,
    entryPoints,
    outdir,
    entryNames: '[name]',
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    splitting: true, // also keeps a dynamic import() lazy: it becomes a chunk of its own
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    plugins: [withHostEntry],
    sourcemap: true,
    logLevel: 'warning',
  });
}

await bundle(Object.fromEntries(Object.entries(LIBRARY).map(([name, [file, hub]]) => [name, hub ? `with-host-entry:${file}` : file])), 'dist/pkg');
await bundle({ sandtrace: 'dist/host/cli/main.js' }, 'dist/bin');
await chmod(`${ROOT}dist/bin/sandtrace.js`, 0o755);
