/** `npm run bench`: runs every benchmark and prints one table. Ratios are measured in the same run. */
import { printTable, type BenchRow } from './harness.js';
import { run as guestAs } from './guest-as.js';
import { run as guestQuickJS } from './guest-quickjs.js';
import { run as guestRust } from './guest-rust.js';
import { run as exportBench } from './export.js';
import { run as batchingFlood } from './batching-flood.js';
import { run as endToEnd } from './end-to-end.js';
import { run as receiver } from './receiver.js';
import { run as sandbox } from './sandbox.js';
import { run as startup } from './startup.js';

const rows: BenchRow[] = [];
rows.push(...startup());
rows.push(...receiver());
rows.push(...(await guestAs()));
rows.push(...(await guestQuickJS()));
rows.push(...(await guestRust()));
rows.push(...exportBench());
rows.push(...(await endToEnd()));
rows.push(...(await batchingFlood()));
rows.push(...(await sandbox()));
printTable(rows);
const failed = rows.filter((r) => r.ok === false);
if (failed.length > 0) console.log(`\n${failed.length} target(s) missed on this run.`);
