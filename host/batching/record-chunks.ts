/**
 * Queued records (spans, log records) kept as their encoded bytes, packed into shared chunks: a
 * queue then holds one small object per record instead of the record's dozen objects, which would
 * otherwise survive (and be copied by) every young-generation GC while exports lag behind.
 *
 * A chunk is charged whole against the memory bound from the moment it is made until its last
 * record is let go (exported, evicted or dropped), so the bound counts what is really held, even
 * when one long-lived record keeps a chunk of otherwise finished ones alive.
 */
import type { EncodedRecord } from '../export/exporter.js';

/** A buffer that several queued records' bytes are packed into. */
export class RecordChunk {
  readonly buf: Uint8Array;
  /** Where the next record's bytes go. */
  pos = 0;
  /** Records in it not yet let go. */
  live = 0;

  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }
}

/** A queued record: its encoded bytes at `buf[start, end)` of its chunk. */
export class QueuedRecord implements EncodedRecord {
  constructor(
    readonly chunk: RecordChunk,
    readonly start: number,
    readonly end: number,
    readonly scope: string,
  ) {}

  get buf(): Uint8Array {
    return this.chunk.buf;
  }
}

/**
 * The chunks of one queue. Records are appended to the current chunk; one larger than a quarter of
 * a chunk gets a chunk of its own size, so no chunk wastes more than a quarter.
 *
 * @example
 * const chunks = new RecordChunks(64 << 10);
 * const cost = chunks.costOf(bytes.length); // charged now if the record is admitted
 * const q = chunks.add(bytes, 'guest');
 * // … exported …
 * const freed = chunks.release(q); // its chunk's size when it was the chunk's last record
 */
export class RecordChunks {
  private current: RecordChunk | undefined;
  private readonly largeFrom: number;

  /** `chunkBytes`: the size of a shared chunk. */
  constructor(private readonly chunkBytes: number) {
    this.largeFrom = chunkBytes >> 2;
  }

  /** Bytes that adding a record of `len` bytes would allocate now: 0 when it fits the current chunk. */
  costOf(len: number): number {
    const c = this.current;
    if (c !== undefined && c.pos + len <= c.buf.length) return 0;
    return len > this.largeFrom ? len : this.chunkBytes;
  }

  /** Copies a record's bytes in, allocating what `costOf` said. */
  add(bytes: Uint8Array, scope: string): QueuedRecord {
    const len = bytes.length;
    let c = this.current;
    if (c === undefined || c.pos + len > c.buf.length) {
      if (len > this.largeFrom) c = new RecordChunk(len);
      else this.current = c = new RecordChunk(this.chunkBytes);
    }
    const start = c.pos;
    c.buf.set(bytes, start);
    c.pos = start + len;
    c.live++;
    return new QueuedRecord(c, start, c.pos, scope);
  }

  /**
   * Lets go of a queued record (call once per record). Returns the bytes freed: its chunk's size
   * when it was the chunk's last record, else 0.
   */
  release(q: QueuedRecord): number {
    const c = q.chunk;
    if (--c.live > 0) return 0;
    if (c === this.current) this.current = undefined;
    return c.buf.length;
  }
}
