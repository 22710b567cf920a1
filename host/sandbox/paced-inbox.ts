/**
 * A worker's messages, applied on the host thread in the order they were posted, in slices of a
 * few milliseconds with the event loop let through between slices.
 *
 * Node hands a port's queued messages to its listener back to back in one callback, so a guest
 * that posts frames faster than the host applies them would hold the host's event loop for the
 * whole run: its timers, sockets and the export of the spans already applied would wait until
 * the last frame. A message that finds nothing waiting is applied at once (a host call's answer
 * must not wait a turn of the loop), as long as this turn of the loop has applied less than
 * `sliceMs`; past that, messages wait here and are applied at most `sliceMs` per turn.
 */
export class PacedInbox<T> {
  private items: Array<T | undefined> = [];
  private head = 0;
  private scheduled: NodeJS.Immediate | undefined;
  /** Until when messages may be applied as they arrive, in this turn of the loop (0: a new turn). */
  private inlineUntil = 0;
  /** A message is being applied: one pushed meanwhile waits its turn behind those already here. */
  private applying = false;

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
    if (this.scheduled === undefined && this.head === this.items.length && !this.applying) {
      const now = performance.now();
      if (this.inlineUntil === 0) {
        this.inlineUntil = now + this.sliceMs;
        setImmediate(this.newTurn);
      }
      if (now < this.inlineUntil) {
        this.applyOne(message);
        return;
      }
    }
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
    this.applyOne(m);
  }

  private applyOne(message: T): void {
    this.applying = true;
    try {
      this.apply(message);
    } finally {
      this.applying = false;
    }
  }

  private reset(): void {
    this.items = [];
    this.head = 0;
  }

  /** Runs after this turn's messages: the next turn may apply messages as they arrive again. */
  private readonly newTurn = (): void => {
    this.inlineUntil = 0;
  };

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
