/**
 * Prints the span tree as it is rebuilt: one line when a span opens, one per event, one when it
 * closes (with its duration, and the cause when the host force-closed it). Everything the guest
 * wrote (names, targets, field names and values, messages, causes) is printed through
 * `escapeControls`: a guest cannot move the cursor or rewrite a line.
 */
import type { Level, Values } from '../../shared/records.js';
import type { Collector, EventInfo, ForcedClose, MetricInfo, NewSpanInfo, RestoreSpanInfo } from './collector.js';
import { escapeControls, formatFields, terminalValue } from './format-value.js';
import { LevelFilteredCollector } from './level-filter.js';

export interface FmtOptions {
  /** Where lines go (default: process.stdout). */
  write?: (line: string) => void;
  /** ANSI colours (default: when stdout is a terminal). */
  color?: boolean;
  /** Most verbose level printed (default: trace). */
  level?: Level;
  /** Show metric points (default: true). */
  metrics?: boolean;
}

interface FmtSpan {
  /** Escaped for the terminal. */
  name: string;
  depth: number;
  start: bigint;
}

const LEVEL_COLOR: Record<Level, string> = { trace: '35', debug: '34', info: '32', warn: '33', error: '31' };

/** Formats a duration in ns as `412µs`, `3.20ms`, `1.50s`. */
export function formatDuration(ns: bigint): string {
  const n = Number(ns);
  if (n < 1_000) return `${n}ns`;
  if (n < 1_000_000) return `${(n / 1_000).toFixed(n < 10_000 ? 2 : 0)}µs`;
  if (n < 1_000_000_000) return `${(n / 1_000_000).toFixed(2)}ms`;
  return `${(n / 1_000_000_000).toFixed(2)}s`;
}

/**
 * @example
 * const fmt = new FmtCollector({ level: 'debug' });
 * await runQuickJS(source, { collector: fmt });
 * // ┌ handle user=alice
 * // │  INFO loaded items=3
 * // └ handle 1.20ms
 */
export class FmtCollector extends LevelFilteredCollector implements Collector {
  private readonly write: (line: string) => void;
  private readonly color: boolean;
  private readonly showMetrics: boolean;
  private readonly spans = new Map<number, FmtSpan>();
  private nextId = 1;

  constructor(options: FmtOptions = {}) {
    super(options.level);
    this.write = options.write ?? ((line) => process.stdout.write(`${line}\n`));
    this.color = options.color ?? process.stdout.isTTY === true;
    this.showMetrics = options.metrics ?? true;
  }

  newSpan(info: NewSpanInfo): number {
    const id = this.nextId++;
    const depth = this.depthUnder(info.parent);
    const name = escapeControls(info.meta.name);
    this.spans.set(id, { name, depth, start: info.time });
    const fields = formatFields(info.values);
    this.write(`${this.indent(depth)}${this.paint('1', `┌ ${name}`)}${fields ? ` ${fields}` : ''}${this.paint('2', `  ${escapeControls(info.meta.target)}`)}`);
    return id;
  }

  restoreSpan(info: RestoreSpanInfo): number {
    const id = this.nextId++;
    const depth = this.depthUnder(info.parent);
    const name = escapeControls(info.meta.name);
    this.spans.set(id, { name, depth, start: info.time });
    this.write(`${this.indent(depth)}${this.paint('1', `┆ ${name}`)} (resumed)`);
    return id;
  }

  /** Forgets a span the execution committed open (nothing to keep: it is printed as it happens). */
  persistSpan(id: number): undefined {
    this.spans.delete(id);
    return undefined;
  }

  discardSpan(id: number): void {
    this.spans.delete(id);
  }

  record(id: number, values: Values): void {
    const span = this.spans.get(id);
    if (span !== undefined) this.write(`${this.indent(span.depth + 1)}${this.paint('2', `↳ ${span.name}`)} ${formatFields(values)}`);
  }

  recordFollowsFrom(id: number, follows: number): void {
    const span = this.spans.get(id);
    const from = this.spans.get(follows);
    if (span !== undefined && from !== undefined) this.write(`${this.indent(span.depth + 1)}${this.paint('2', `↫ follows from ${from.name}`)}`);
  }

  event(info: EventInfo): void {
    const depth = this.depthUnder(info.parent);
    const level = info.meta.level.toUpperCase().padStart(5);
    let message = '';
    const rest: Values = [];
    for (const pair of info.values) {
      if (pair[0] === 'message') message = terminalValue(pair[1]);
      else rest.push(pair);
    }
    const fields = formatFields(rest);
    const text = message || escapeControls(info.meta.name);
    this.write(`${this.indent(depth)}${this.paint(LEVEL_COLOR[info.meta.level], level)} ${text}${fields ? ` ${this.paint('2', fields)}` : ''}`);
  }

  metric(m: MetricInfo): void {
    if (!this.showMetrics) return;
    const attrs = formatFields(m.attributes);
    this.write(`${this.paint('36', `  ◆ ${m.instrument} ${escapeControls(m.name)}`)} ${String(m.value)}${attrs ? ` ${this.paint('2', attrs)}` : ''}`);
  }

  enter(): void {}
  exit(): void {}
  cloneSpan(id: number): number {
    return id;
  }

  tryClose(id: number, time: bigint, forced?: ForcedClose): boolean {
    const span = this.spans.get(id);
    if (span === undefined) return false;
    this.spans.delete(id);
    const took = formatDuration(time > span.start ? time - span.start : 0n);
    const tail = forced === undefined ? '' : ` ${this.paint('31', `✖ force-closed: ${escapeControls(forced.message)}`)}`;
    this.write(`${this.indent(span.depth)}${this.paint('1', `└ ${span.name}`)} ${took}${tail}`);
    return true;
  }

  currentSpan(): number | undefined {
    return undefined;
  }

  private depthUnder(parent: number | null | undefined): number {
    if (typeof parent !== 'number') return 0;
    const p = this.spans.get(parent);
    return p === undefined ? 0 : p.depth + 1;
  }

  private indent(depth: number): string {
    return '│ '.repeat(depth);
  }

  private paint(code: string, text: string): string {
    return this.color ? `\x1b[${code}m${text}\x1b[0m` : text;
  }
}
