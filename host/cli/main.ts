#!/usr/bin/env node
/**
 * The `sandtrace` command. For now: `replay`, which applies recorded protocol v1 frames (files of
 * raw frame bytes, e.g. captured from a guest) through a receiver and prints the span tree.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { FmtCollector } from '../collectors/fmt-collector.js';
import { TracingEventReceiver } from '../receiver/receiver.js';
import { LEVELS, type Level } from '../../shared/records.js';

const HELP = `sandtrace — tracing out of sandboxed guests

Usage:
  sandtrace replay <frame-file>... [--level L] [--execution-id ID]
      Applies recorded protocol v1 frames, in order, through one receiver and prints the span
      tree as it is rebuilt, then a summary. Exits 1 if any record was rejected or truncated.

Options:
  --level L          most verbose level shown: trace, debug, info, warn, error (default trace)
  --execution-id ID  execution id carried on every span and event
  -h, --help         this text
`;

async function replay(files: string[], level: Level, executionId: string | undefined): Promise<number> {
  const receiver = new TracingEventReceiver({ collector: new FmtCollector({ level }), ...(executionId !== undefined && { executionId }) });
  let applied = 0;
  let rejected = 0;
  let truncated = 0;
  for (const file of files) {
    const result = receiver.receiveBatch(new Uint8Array(await readFile(file)));
    applied += result.applied;
    rejected += result.rejected;
    truncated += result.truncated;
    for (const e of result.errors) process.stderr.write(`${file}: ${e.code}: ${e.message}\n`);
  }
  const open = receiver.openSpans;
  receiver.persist(); // leave open spans open: a replay is not a crash
  process.stdout.write(`\n${files.length} frame(s): ${applied} records applied, ${rejected} rejected, ${truncated} truncated; ${open} span(s) left open; guest dropped ${receiver.stats.guestDropped}\n`);
  return rejected > 0 || truncated > 0 ? 1 : 0;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { level: { type: 'string', default: 'trace' }, 'execution-id': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const [command, ...rest] = positionals;
  if (values.help || command === undefined) {
    process.stdout.write(HELP);
    return command === undefined && !values.help ? 2 : 0;
  }
  if (!(LEVELS as readonly string[]).includes(values.level!)) {
    process.stderr.write(`unknown level '${values.level}'; use one of ${LEVELS.join(', ')}\n`);
    return 2;
  }
  if (command === 'replay' && rest.length > 0) return replay(rest, values.level as Level, values['execution-id']);
  process.stderr.write(`unknown command or missing arguments: ${argv.join(' ')}\n\n${HELP}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    process.stderr.write(`sandtrace: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
