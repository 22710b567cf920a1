/**
 * A map from span ids to spans that keeps its newest entry in two fields instead of in the Map.
 *
 * Why: a guest mostly closes the span it made last before it makes the next one, so most spans
 * come and go without touching the Map at all. V8's ordered hash table keeps a deleted entry's
 * slot until it rehashes, so a table whose one or two entries come and go allocates a new table
 * every few spans (about 200 bytes per span, measured on the replayed bench workload).
 *
 * Iteration order is insertion order, as a Map's: the held entry is always the newest one.
 */
export class NewestOutsideMap<V> {
  private readonly map = new Map<number, V>();
  private held = false;
  private heldKey = 0;
  private heldValue: V | undefined = undefined;

  get size(): number {
    return this.held ? this.map.size + 1 : this.map.size;
  }

  get(key: number): V | undefined {
    if (this.held && key === this.heldKey) return this.heldValue;
    return this.map.size === 0 ? undefined : this.map.get(key);
  }

  has(key: number): boolean {
    if (this.held && key === this.heldKey) return true;
    return this.map.size !== 0 && this.map.has(key);
  }

  set(key: number, value: V): void {
    if (this.held) {
      if (key === this.heldKey) {
        this.heldValue = value;
        return;
      }
      if (this.map.has(key)) {
        this.map.set(key, value); // an existing key keeps its place, as in a Map
        return;
      }
      this.map.set(this.heldKey, this.heldValue as V);
    } else if (this.map.has(key)) {
      this.map.set(key, value);
      return;
    }
    this.held = true;
    this.heldKey = key;
    this.heldValue = value;
  }

  delete(key: number): boolean {
    if (this.held && key === this.heldKey) {
      this.held = false;
      this.heldValue = undefined;
      return true;
    }
    return this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
    this.held = false;
    this.heldValue = undefined;
  }

  /** The values in insertion order (a copy: the caller may delete while it walks them). */
  values(): V[] {
    const out = [...this.map.values()];
    if (this.held) out.push(this.heldValue as V);
    return out;
  }
}
