// Benchmark guest: the same loop bare, with enabled events, and with disabled events.
import { EventCallsite, EventClock, Level, setEventClock } from "sandtrace";

const ENABLED = new EventCallsite("work", "bench", Level.INFO, ["i", "x"]);
const DISABLED = new EventCallsite("work", "bench", Level.TRACE, ["i", "x"]);

let sink: f64 = 0;

export function bare(n: i32): f64 {
  for (let i = 0; i < n; i++) sink += <f64>i * 0.5;
  return sink;
}

export function enabledEvents(n: i32): f64 {
  for (let i = 0; i < n; i++) {
    sink += <f64>i * 0.5;
    ENABLED.event().i64(i).f64(sink).emit();
  }
  return sink;
}

export function disabledEvents(n: i32): f64 {
  for (let i = 0; i < n; i++) {
    sink += <f64>i * 0.5;
    DISABLED.event().i64(i).f64(sink).emit();
  }
  return sink;
}

export function useCoarseClock(coarse: bool): void {
  setEventClock(coarse ? EventClock.COARSE : EventClock.PRECISE);
}
