/** Operations on field values that both the receiver and collectors need. */
import type { ErrorValue, Value, Values } from './records.js';

/** Applies recorded values to a span's values in place: a field recorded again replaces its value. */
export function assignValues(target: Values, recorded: Values): void {
  for (const pair of recorded) {
    const i = target.findIndex((p) => p[0] === pair[0]);
    if (i >= 0) target[i] = pair;
    else target.push(pair);
  }
}

/** The value of a field declared but not recorded yet. */
export function isEmptyValue(v: Value): v is { empty: true } {
  return typeof v === 'object' && v !== null && 'empty' in v;
}

/** An error value (the span's `error` field, when the guest recorded one). */
export function isErrorValue(v: Value): v is { error: ErrorValue } {
  return typeof v === 'object' && v !== null && 'error' in v;
}
