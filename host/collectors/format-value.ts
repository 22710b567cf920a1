/** Human-readable rendering of field values, shared by the terminal collector and the CLI. */
import type { ErrorValue, Value, Values } from '../../shared/records.js';
import { isEmptyValue } from '../../shared/values.js';

/**
 * Characters a terminal acts on instead of showing: C0 controls (ESC, BEL, backspace, carriage
 * return, newline, …), DEL, C1 controls (U+0080–U+009F, which include the one-byte CSI and OSC),
 * the bidirectional marks, embeddings, overrides and isolates, and the line and paragraph
 * separators.
 */
const TERMINAL_CONTROL = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const TERMINAL_CONTROLS = new RegExp(TERMINAL_CONTROL.source, 'g');
const SHORT_ESCAPES: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Guest text made safe to print on a terminal: every control character, bidi control and line
 * separator becomes a visible escape (`\x1b`, `\u202e`; `\n`, `\r`, `\t` for those three), so a
 * guest's names, fields and messages can neither move the cursor, rewrite a line, set the window
 * title, ring the bell, reorder the text after them, nor start a line of their own.
 *
 * @example
 * escapeControls('\r\x1b[2K✔ completed'); // '\\r\\x1b[2K✔ completed'
 */
export function escapeControls(text: string): string {
  if (!TERMINAL_CONTROL.test(text)) return text;
  return text.replace(TERMINAL_CONTROLS, (c) => {
    const code = c.charCodeAt(0);
    return SHORT_ESCAPES[c] ?? (code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`);
  });
}

export function formatError(e: ErrorValue): string {
  return e.source === undefined ? e.message : `${e.message}: ${formatError(e.source)}`;
}

/**
 * A guest error as the semantic conventions' exception attributes: `type` from a `Name: message`
 * form (how the QuickJS SDK writes JavaScript errors), the message without it, and, when the error
 * has causes, a stacktrace-like text of the chain (`Caused by: …` lines, as Java prints them).
 * Guests send no stack frames, so the chain is all a stacktrace can hold.
 */
export function describeException(e: ErrorValue): { type: string | undefined; message: string; stacktrace: string | undefined } {
  const m = /^([A-Za-z_$][\w$.]*): ([\s\S]*)$/.exec(e.message);
  const type = m?.[1];
  const message = m === null ? e.message : m[2]!;
  if (e.source === undefined) return { type, message, stacktrace: undefined };
  const lines = [e.message];
  let depth = 0;
  for (let c: ErrorValue | undefined = e.source; c !== undefined && depth < 32; c = c.source, depth++) lines.push(`Caused by: ${c.message}`);
  return { type, message, stacktrace: lines.join('\n') };
}

export function formatValue(v: Value): string {
  switch (typeof v) {
    case 'string':
      return /^[\w.:/@-]*$/.test(v) && v.length > 0 ? v : JSON.stringify(v);
    case 'number':
    case 'bigint':
    case 'boolean':
      return String(v);
  }
  if (v instanceof Uint8Array) {
    const hex = Buffer.from(v.subarray(0, 16)).toString('hex');
    return v.length > 16 ? `0x${hex}…(${v.length} bytes)` : `0x${hex}`;
  }
  if ('debug' in v) return v.debug;
  if ('error' in v) return formatError(v.error);
  return '∅';
}

/**
 * A value for a terminal: `formatValue`'s rendering, with strings that need quotes quoted here
 * (backslashes and quotes escaped) and every control character as a visible escape.
 */
export function terminalValue(v: Value): string {
  if (typeof v === 'string' && !/^[\w.:/@-]+$/.test(v)) return `"${escapeControls(v.replace(/["\\]/g, '\\$&'))}"`;
  return escapeControls(formatValue(v));
}

/**
 * `k=v k2=v2` for a terminal, leaving out fields not recorded yet. Names and values pass through
 * `escapeControls`: they come from the guest.
 */
export function formatFields(values: ReadonlyArray<readonly [string, Value]>): string {
  let out = '';
  for (const [k, v] of values) {
    if (isEmptyValue(v)) continue;
    out += `${out ? ' ' : ''}${escapeControls(k)}=${terminalValue(v)}`;
  }
  return out;
}

/** An event's message as text: strings as they are (no quoting), anything else formatted. */
export function messageText(v: Value): string {
  return typeof v === 'string' ? v : formatValue(v);
}

/** An event's message (its `message` field, as text) and its other recorded fields. */
export function splitMessage(values: Values): { message: string | undefined; fields: Values } {
  let message: string | undefined;
  const fields: Values = [];
  for (const pair of values) {
    if (pair[0] === 'message') message = messageText(pair[1]);
    else if (!isEmptyValue(pair[1])) fields.push(pair);
  }
  return { message, fields };
}
