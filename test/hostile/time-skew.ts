/**
 * Records that used to move guest time: a metric refused for an over-long name (its timestamp
 * delta was never applied, so every later record of the frame shifted), records without a time
 * before the guest's first timestamp, and a span dropped before it started.
 */
import { EventEncoder } from '../../shared/event-codec.js';
import type { TracingEvent } from '../../shared/records.js';
import { drop, eventSite, newEvent, newSpan, spanSite } from '../helpers/events.js';

/** One frame: event at 100, a metric at 200 whose name is `nameBytes` long, event at 300. */
export function overlongMetricNameFrame(nameBytes: number): Uint8Array {
  const events: TracingEvent[] = [
    eventSite(1, 'log'),
    newEvent(1, [['message', 'before']], null, 100n),
    { type: 'metric', name: 'm'.repeat(nameBytes), instrument: 'counter', value: 1, time: 200n },
    newEvent(1, [['message', 'after']], null, 300n),
  ];
  return new EventEncoder().encode(events);
}

/** Records without a time, sent before any record that has one. */
export const untimedFirst: TracingEvent[] = [spanSite(1, 'untimed'), eventSite(2, 'log'), newSpan(1, 1, [], null), newEvent(2, [['message', 'untimed']], null)];

/** A span started at 500 and dropped at 100. */
export const droppedBeforeStart: TracingEvent[] = [spanSite(1, 'backwards'), newSpan(1, 1, [], null, 500n), drop(1, 100n)];
