/**
 * Enter A n times, enter B n times, then exit A n times: every exit of A is of a span that is not
 * the innermost, which a stack searched and spliced per exit turns into n² host work.
 */
import type { TracingEvent } from '../../shared/records.js';
import { enter, exit, newSpan, spanSite } from '../helpers/events.js';

export function interleavedExits(n: number): TracingEvent[] {
  const events: TracingEvent[] = [spanSite(1, 'a'), spanSite(2, 'b'), newSpan(1, 1, [], null), newSpan(2, 2, [], null)];
  for (let i = 0; i < n; i++) events.push(enter(1));
  for (let i = 0; i < n; i++) events.push(enter(2));
  for (let i = 0; i < n; i++) events.push(exit(1));
  return events;
}
