/** Human-readable rendering of field values, shared by the terminal collector and the CLI. */
import type { ErrorValue, Value, Values } from '../../shared/records.js';
import { isEmptyValue } from '../../shared/values.js';

export function formatError(e: ErrorValue): string {
  return e.source === undefined ? e.message : `${e.message}: ${formatError(e.source)}`;
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

/** `k=v k2=v2`, leaving out fields not recorded yet. */
export function formatFields(values: ReadonlyArray<readonly [string, Value]>): string {
  let out = '';
  for (const [k, v] of values) {
    if (isEmptyValue(v)) continue;
    out += `${out ? ' ' : ''}${k}=${formatValue(v)}`;
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
