/** `npm run bench:sandbox`: only the sandbox section of `npm run bench`, as one table. */
import { printTable } from './harness.js';
import { run } from './sandbox.js';

const started = performance.now();
const rows = await run();
printTable(rows);
console.log(`\nbench/sandbox: ${((performance.now() - started) / 1000).toFixed(1)} s`);
const failed = rows.filter((r) => r.ok === false);
if (failed.length > 0) console.log(`${failed.length} target(s) missed on this run.`);
