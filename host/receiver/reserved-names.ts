/**
 * The `sandtrace.*` attribute namespace belongs to the host: it marks executions
 * (`sandtrace.execution.id`), forced closes (`sandtrace.force_closed`,
 * `sandtrace.termination.cause`) and the like. A guest name in it is renamed by the receiver,
 * before any collector sees it, by prefixing `guest.` (`sandtrace.force_closed` becomes
 * `guest.sandtrace.force_closed`): the value is kept, and can never collide with the host's key.
 *
 * The only guest names left alone are those the guest protocol itself defines there
 * ({@link LINK_FIELD}), which the receiver consumes.
 */
import { LINK_FIELD, type Values } from '../../shared/records.js';

export const RESERVED_PREFIX = 'sandtrace.';
export const GUEST_PREFIX = 'guest.';

const PROTOCOL_NAMES: ReadonlySet<string> = new Set([LINK_FIELD]);

/** Whether a guest may not use this name as it is. */
export function isReservedName(name: string): boolean {
  return name.startsWith(RESERVED_PREFIX) && !PROTOCOL_NAMES.has(name);
}

/**
 * The names with every reserved one renamed, and how many were. A renamed name is prefixed with
 * `guest.` as many times as needed to differ from every other name in the list (a guest that also
 * declares `guest.sandtrace.x` keeps it, and its `sandtrace.x` becomes `guest.guest.sandtrace.x`).
 * Returns the same array when nothing is reserved.
 */
export function renameReserved(names: readonly string[]): { names: readonly string[]; renamed: number } {
  let out: string[] | undefined;
  let renamed = 0;
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    if (!isReservedName(name)) continue;
    out ??= names.slice();
    let candidate = GUEST_PREFIX + name;
    while (names.includes(candidate) || out.includes(candidate)) candidate = GUEST_PREFIX + candidate;
    out[i] = candidate;
    renamed++;
  }
  return out === undefined ? { names, renamed: 0 } : { names: out, renamed };
}

/** The values with their names renamed as {@link renameReserved} does; the same array when nothing is reserved. */
export function renameReservedValues(values: Values): { values: Values; renamed: number } {
  const { names, renamed } = renameReserved(values.map(([name]) => name));
  if (renamed === 0) return { values, renamed };
  return { values: values.map(([, v], i) => [names[i]!, v]), renamed };
}

/**
 * Renames values recorded on a callsite whose guest-declared fields are `declared` and whose
 * renamed fields are `fields` (same positions): each name maps to the field it names.
 */
export function renameToFields(values: Values, declared: readonly string[], fields: readonly string[]): Values {
  if (declared === fields) return values;
  return values.map(([name, v]) => {
    const i = declared.indexOf(name);
    return [i >= 0 ? fields[i]! : name, v];
  });
}
