/** A collector that keeps nothing: the baseline for benchmarks and for hosts that only count. */
import type { Collector } from './collector.js';

export class NullCollector implements Collector {
  private nextId = 1;
  registerCallsite(): 'always' {
    return 'always';
  }
  enabled(): boolean {
    return true;
  }
  newSpan(): number {
    return this.nextId++;
  }
  record(): void {}
  recordFollowsFrom(): void {}
  event(): void {}
  enter(): void {}
  exit(): void {}
  cloneSpan(span: number): number {
    return span;
  }
  tryClose(): boolean {
    return true;
  }
  currentSpan(): number | undefined {
    return undefined;
  }
}
