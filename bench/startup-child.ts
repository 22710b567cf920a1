/**
 * The child process of bench/startup: imports one module, given by name, into a fresh process
 * and writes its times as JSON. A file rather than `node -e`, so that Node's module loader is
 * already running (it loaded this file) when the clock starts, as it is in a host.
 */
const spec = process.argv[2]!;
const t0 = performance.now();
await import(spec);
const t1 = performance.now();
globalThis.gc?.();
process.stdout.write(JSON.stringify({ importMs: t1 - t0, settledMs: t1, heapBytes: process.memoryUsage().heapUsed }));
