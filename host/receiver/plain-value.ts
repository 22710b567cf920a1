/**
 * JSON-safe form of field values, for persisted state: it must survive `JSON.stringify` and a
 * msgpack round trip unchanged. Plain JSON values stay as they are; the rest are tagged objects.
 */
import type { Value, Values } from '../../shared/records.js';

export type PlainValue =
  | boolean
  | number
  | string
  | { bigint: string }
  | { float: 'NaN' | 'Infinity' | '-Infinity' | '-0' }
  | { bytes: string }
  | { debug: string }
  | { error: { message: string; source?: unknown } }
  | { empty: true };

export function toPlainValue(v: Value): PlainValue {
  switch (typeof v) {
    case 'bigint':
      return { bigint: v.toString() };
    case 'number':
      if (Number.isFinite(v)) return Object.is(v, -0) ? { float: '-0' } : v;
      return { float: Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity' };
    case 'boolean':
    case 'string':
      return v;
  }
  if (v instanceof Uint8Array) return { bytes: Buffer.from(v).toString('base64') };
  return v as PlainValue;
}

export function fromPlainValue(p: PlainValue): Value {
  if (typeof p !== 'object' || p === null) return p;
  if ('bigint' in p) return BigInt(p.bigint);
  if ('float' in p) return p.float === '-0' ? -0 : Number(p.float);
  if ('bytes' in p) return new Uint8Array(Buffer.from(p.bytes, 'base64'));
  return p as Value;
}

export function toPlainValues(values: Values): Array<[string, PlainValue]> {
  return values.map(([k, v]) => [k, toPlainValue(v)]);
}

export function fromPlainValues(values: ReadonlyArray<readonly [string, PlainValue]>): Values {
  return values.map(([k, v]) => [k, fromPlainValue(v)]);
}
