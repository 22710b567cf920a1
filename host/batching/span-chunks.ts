/**
 * Queued spans kept as their encoded bytes, packed into shared chunks: a queue of spans then holds
 * one small object per span instead of the span's dozen objects, which would otherwise survive
 * (and be copied by) every young-generation GC while exports lag behind production.
 *
 * A chunk is charged whole against the memory bound from the moment it is made until its last
 * span is let go (exported, evicted or dropped), so the bound counts what is really held, even
 * when one long-lived span keeps a chunk of otherwise finished spans alive.
 */
import type { EncodedSpan } from '../export/exporter.js';

/** A buffer that several queued spans' bytes are packed into. */
export class SpanChunk {
  readonly buf: Uint8Array;
  /** Where the next span's bytes go. */
  pos = 0;
  /** Spans in it not yet let go. */
  live = 0;

  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }
}

/** A queued span: its encoded bytes at `buf[start, end)` of its chunk. */
export class QueuedSpan implements EncodedSpan {
  constructor(
    readonly chunk: SpanChunk,
    readonly buf: Uint8Array,
    readonly start: number,
    readonly end: number,
    readonly scope: string,
  ) {}
}

/**
 * The chunks of one batching manager. Spans are appended to the current chunk; a span larger than
 * a quarter of a chunk gets a chunk of its own size, so no chunk wastes more than a quarter.
 *
 * @example
 * const chunks = new SpanChunks(64 << 10);
 * const cost = chunks.costOf(bytes.length); // charged now if the span is admitted
 * const q = chunks.add(bytes, 'guest');
 * // … exported …
 * const freed = chunks.release(q); // its chunk's size when it was the chunk's last span
 */
export class SpanChunks {
  private current: SpanChunk | undefined;
  private readonly largeFrom: number;

  /** `chunkBytes`: the size of a shared chunk. */
  constructor(private readonly chunkBytes: number) {
    this.largeFrom = chunkBytes >> 2;
  }

  /** Bytes that adding a span of `len` bytes would allocate now: 0 when it fits the current chunk. */
  costOf(len: number): number {
    const c = this.current;
    if (c !== undefined && c.pos + len <= c.buf.length) return 0;
    return len > this.largeFrom ? len : this.chunkBytes;
  }

  /** Copies a span's bytes in, allocating what `costOf` said. */
  add(bytes: Uint8Array, scope: string): QueuedSpan {
    const len = bytes.length;
    let c = this.current;
    if (c === undefined || c.pos + len > c.buf.length) {
      if (len > this.largeFrom) c = new SpanChunk(len);
      else this.current = c = new SpanChunk(this.chunkBytes);
    }
    const start = c.pos;
    c.buf.set(bytes, start);
    c.pos = start + len;
    c.live++;
    return new QueuedSpan(c, c.buf, start, c.pos, scope);
  }

  /**
   * Lets go of a queued span (call once per span). Returns the bytes freed: its chunk's size when
   * it was the chunk's last span, else 0.
   */
  release(q: QueuedSpan): number {
    const c = q.chunk;
    if (--c.live > 0) return 0;
    if (c === this.current) this.current = undefined;
    return c.buf.length;
  }
}
