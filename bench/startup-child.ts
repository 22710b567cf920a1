/**
 * The child process of bench/startup: imports one module, given by name, into a fresh process
 * and writes its times as JSON. A file rather than `node -e`, so that Node's module loader is
 * already running (it loaded this file) when the clock starts, as it is in a host.
 *
 * It is started without `--expose-gc`: with that flag, Node compiles the built-in modules it does
 * not preload (node:worker_threads, node:os, node:fs/promises…) without their code cache, which
 * made an import that loads them look some 10 ms slower than in a host. The collection before
 * the heap is read is enabled after the import instead (its context adds about 0.2 MiB of heap,
 * on both sides).
 */
const spec = process.argv[2]!;
const t0 = performance.now();
await import(spec);
const t1 = performance.now();
const [{ setFlagsFromString }, { runInNewContext }] = await Promise.all([import('node:v8'), import('node:vm')]);
setFlagsFromString('--expose-gc');
(runInNewContext('gc') as () => void)();
process.stdout.write(JSON.stringify({ importMs: t1 - t0, settledMs: t1, heapBytes: process.memoryUsage().heapUsed }));
