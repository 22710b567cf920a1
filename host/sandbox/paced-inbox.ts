/**
 * A worker's messages, applied on the host thread in the order they were posted, in slices of a
 * few milliseconds with the event loop let through between slices.
 *
 * Node hands a port's queued messages to its listener back to back in one callback, so a guest
 * that posts frames faster than the host applies them would hold the host's event loop for the
 * whole run: its timers, sockets and the export of the spans already applied would wait until
 * the last frame. Queued here instead, the frames are applied for at most `sliceMs` at a time.
 */
export class PacedInbox<T> {
  private items: Array<T | undefined> = [];
  private head = 0;
  private scheduled: NodeJS.Immediate | undefined;

  /**
   * @example
   * const inbox = new PacedInbox<WorkerMessage>((m) => onMessage(m));
   * port.on('message', (m) => inbox.push(m));
   * // the worker died: what it posted is applied now, before its run is settled
   * inbox.flush();
   */
  constructor(
    private readonly apply: (message: T) => void,
    private readonly sliceMs = 2,
  ) {}

  /** Messages received and not applied yet. */
  get length(): number {
    return this.items.length - this.head;
  }

  push(message: T): void {
    this.items.push(message);
    this.scheduled ??= setImmediate(this.slice);
  }

  /** Applies every message waiting, now. */
  flush(): void {
    if (this.scheduled !== undefined) {
      clearImmediate(this.scheduled);
      this.scheduled = undefined;
    }
    while (this.head < this.items.length) this.next();
    this.reset();
  }

  private next(): void {
    const m = this.items[this.head]!;
    this.items[this.head++] = undefined;
    this.apply(m);
  }

  private reset(): void {
    this.items = [];
    this.head = 0;
  }

  private readonly slice = (): void => {
    this.scheduled = undefined;
    const until = performance.now() + this.sliceMs;
    try {
      do this.next();
      while (this.head < this.items.length && performance.now() < until);
    } finally {
      // Whatever `apply` did (even throw), the messages behind it are not left waiting.
      if (this.head < this.items.length) this.scheduled ??= setImmediate(this.slice);
      else this.reset();
    }
  };
}
