/**
 * Byte-level access to a store file of JSON lines: reading the complete lines appended after an
 * offset (a last line without its newline yet is left for later), reading single lines at known
 * offsets (checking they are whole lines), and the hash of a file's first bytes that tells the
 * same file from a replaced one.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { BadStoreLine, parseLine } from './store-reader.js';

/** The first bytes a file's identity hash covers. */
export const HEAD_BYTES = 4096;
const CHUNK_BYTES = 8 * 1024 * 1024;
/**
 * Lines parsed between two turns of the event loop while a file is read: a chunk holds seconds of
 * parsing on a busy machine, and requests answered during a first index must not wait for it.
 */
const YIELD_BYTES = 1024 * 1024;

/** A line the index points at is not what it recorded: the index starts over. */
export class IndexInconsistent extends Error {
  override readonly name = 'IndexInconsistent';
}

type Json = Record<string, any>;

/**
 * A line longer than this (give or take one chunk read) is skipped unread and counted as bad.
 * Held whole, a line of more than 512 MiB cannot become a string at all (the engine's limit), so
 * the store could never be read past it; well below that, it would take that much memory at
 * every look while torn. No exporter writes one: an OTLP request is bounded well under it.
 */
export const MAX_LINE_BYTES = 256 * 1024 * 1024;

/**
 * Calls `onLine` for each complete line in [from, size) (its text without the newline, its offset
 * and its length with it), in order, reading in chunks, and `onTooLong` instead for a line over
 * {@link MAX_LINE_BYTES} (only its newline is looked for); stops early when `stop()` says so after
 * a chunk. Returns the offset after the last complete line read.
 */
export async function scanLines(
  path: string,
  from: number,
  size: number,
  onLine: (text: string, offset: number, length: number) => void,
  onTooLong: (offset: number, length: number) => void,
  stop: () => boolean,
): Promise<number> {
  const fd = await open(path, 'r');
  /** Where the line not complete yet starts: all before it is read. */
  let lineStart = from;
  // That line's bytes read so far, in pieces (joined once, when its newline comes: a line spanning
  // many chunks is copied once, not once per chunk); none kept once it is too long.
  let held: Buffer[] = [];
  let heldBytes = 0;
  let tooLong = false;
  try {
    for (let pos = from; pos < size && !stop(); ) {
      const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, size - pos));
      const { bytesRead } = await fd.read(chunk, 0, chunk.length, pos);
      if (bytesRead === 0) break; // shrank meanwhile: the next look starts over
      const view = chunk.subarray(0, bytesRead);
      let start = 0;
      let yielded = 0;
      for (let nl = view.indexOf(10); nl >= 0; nl = view.indexOf(10, start)) {
        if (nl - yielded > YIELD_BYTES) {
          yielded = nl;
          await new Promise((r) => setImmediate(r));
        }
        const length = pos + nl + 1 - lineStart;
        if (tooLong) onTooLong(lineStart, length);
        else if (heldBytes > 0) onLine(Buffer.concat([...held, view.subarray(0, nl)]).toString('utf8'), lineStart, length);
        else onLine(view.toString('utf8', start, nl), lineStart, length);
        held = [];
        heldBytes = 0;
        tooLong = false;
        start = nl + 1;
        lineStart = pos + start;
      }
      if (start < bytesRead && !tooLong) {
        heldBytes += bytesRead - start;
        tooLong = heldBytes > MAX_LINE_BYTES;
        if (tooLong) held = [];
        else held.push(Buffer.from(view.subarray(start)));
      }
      pos += bytesRead;
    }
  } finally {
    await fd.close();
  }
  return lineStart;
}

/**
 * Reads the lines at these offset, length pairs, checks each is a whole line that parses, and
 * hands each over parsed; a line that is not, or that `use` finds not to be what it expects
 * ({@link BadStoreLine}), throws {@link IndexInconsistent}.
 */
export async function readLinesAt(path: string, refs: readonly number[], use: (json: Json) => void): Promise<void> {
  if (refs.length === 0) return;
  const fd = await open(path, 'r');
  try {
    for (let i = 0; i < refs.length; i += 2) {
      const offset = refs[i]!;
      try {
        use(await lineAt(fd, offset, refs[i + 1]!));
      } catch (e) {
        if (!(e instanceof BadStoreLine)) throw e;
        throw new IndexInconsistent(`${path} at ${offset}: ${e.message}`);
      }
    }
  } finally {
    await fd.close();
  }
}

async function lineAt(fd: FileHandle, offset: number, length: number): Promise<Json> {
  // One byte before: the previous line's newline (none at the start of the file).
  const before = offset > 0 ? 1 : 0;
  const buf = Buffer.allocUnsafe(length + before);
  const { bytesRead } = await fd.read(buf, 0, buf.length, offset - before);
  if (bytesRead !== buf.length || buf[buf.length - 1] !== 10 || (before === 1 && buf[0] !== 10)) throw new BadStoreLine('not a whole line');
  return parseLine(buf.toString('utf8', before, buf.length - 1));
}

/** sha256 (hex) of the first min(`upTo`, {@link HEAD_BYTES}) bytes of a file. */
export async function headHash(path: string, upTo: number): Promise<string> {
  const fd = await open(path, 'r');
  try {
    return await headHashOf(fd, upTo);
  } finally {
    await fd.close();
  }
}

async function headHashOf(fd: FileHandle, upTo: number): Promise<string> {
  const head = Buffer.alloc(Math.min(upTo, HEAD_BYTES));
  await fd.read(head, 0, head.length, 0);
  return createHash('sha256').update(head).digest('hex');
}

/** Whether a file still starts as it did (`head`) and still has a newline ending its first `consumed` bytes. */
export async function sameStart(path: string, consumed: number, head: string): Promise<boolean> {
  if (consumed === 0) return true;
  const fd = await open(path, 'r');
  try {
    const last = Buffer.alloc(1);
    await fd.read(last, 0, 1, consumed - 1);
    return last[0] === 10 && (await headHashOf(fd, consumed)) === head;
  } finally {
    await fd.close();
  }
}
