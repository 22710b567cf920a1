/**
 * The frame reader's short-string cache (shared/frame-reader.ts) returns a string it made before
 * when the same bytes come again. These tests hold it to the bytes: every length around the
 * cache's bound, every byte value, non-ASCII and invalid UTF-8, strings that share a prefix, and
 * more distinct strings than the cache has slots, read in one reader so that slots are reused.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FrameReader, RawRecord } from '../shared/frame-reader.js';
import { Tag } from '../shared/records.js';

const expected = new TextDecoder('utf-8', { fatal: false });

/** One frame of newEvent records, each carrying one string value of exactly these bytes. */
function frameOf(strings: Uint8Array[]): Uint8Array {
  const out: number[] = [];
  for (const s of strings) {
    out.push(0x95, Tag.newEvent, 1, 0xc0, 0x00); // [tag, callsite, parent nil, time 0, value]
    if (s.length < 32) out.push(0xa0 | s.length);
    else out.push(0xd9, s.length);
    for (const b of s) out.push(b);
  }
  return Uint8Array.from(out);
}

/** The string values of a frame, as one reader decodes them in order. */
function readAll(reader: FrameReader, frame: Uint8Array): string[] {
  const rec = new RawRecord();
  const got: string[] = [];
  reader.reset(frame);
  while (!reader.done) {
    reader.readHead(rec);
    reader.readValues(rec);
    got.push(rec.values[0] as string);
  }
  return got;
}

/** Deterministic bytes (xorshift), so a failure names the same case every run. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function check(reader: FrameReader, strings: Uint8Array[]): void {
  const got = readAll(reader, frameOf(strings));
  for (let i = 0; i < strings.length; i++) {
    assert.equal(got[i], expected.decode(strings[i]), `string ${i}: bytes [${[...strings[i]!].join(',')}]`);
  }
}

describe('frame reader short strings', () => {
  test('every_length_and_every_byte_decodes_to_its_own_string_read_once_and_again', () => {
    const reader = new FrameReader();
    const next = rng(12);
    const strings: Uint8Array[] = [];
    for (let len = 0; len <= 24; len++) {
      for (let k = 0; k < 40; k++) {
        const ascii = new Uint8Array(len).map(() => next() & 0x7f);
        strings.push(ascii);
        // One non-ASCII byte at each position (alone it is invalid UTF-8: a replacement character).
        if (len > 0) {
          const high = ascii.slice();
          high[k % len] = 0x80 | (next() & 0x7f);
          strings.push(high);
        }
        strings.push(new Uint8Array(len).map(() => next() & 0xff)); // any bytes, mostly invalid UTF-8
      }
    }
    // Every byte value, alone and inside a string of cache length.
    for (let b = 0; b < 256; b++) {
      strings.push(Uint8Array.of(b));
      strings.push(Uint8Array.of(0x61, b, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e));
    }
    // Valid multi-byte UTF-8 of short lengths.
    for (const s of ['é', 'ü/x', '日本', '→a', 'naïve', '€€€€', '😀', 'a😀b']) strings.push(new TextEncoder().encode(s));
    check(reader, strings);
    check(reader, strings); // the second time most come from the cache
    check(reader, strings.slice().reverse());
  });

  test('strings_sharing_a_prefix_or_a_cache_slot_are_never_confused', () => {
    const reader = new FrameReader();
    const enc = new TextEncoder();
    const names: string[] = [];
    for (let i = 0; i < 3000; i++) names.push(`route/${i}`); // far more than the cache's slots
    for (let n = 0; n <= 15; n++) names.push('abcdefghijklmno'.slice(0, n)); // each a prefix of the next
    for (let n = 0; n <= 15; n++) names.push('abcdefghijklmnX'.slice(0, n));
    names.push('/orders', '/order', '/orders/', '/Orders', 'loaded', 'Loaded', 'load', '');
    const next = rng(7);
    for (let round = 0; round < 4; round++) {
      const order = names.map((s) => ({ s, k: next() })).sort((a, b) => a.k - b.k).map((x) => x.s);
      const got = readAll(reader, frameOf(order.map((s) => enc.encode(s))));
      assert.deepEqual(got, order);
    }
  });

  test('a_string_longer_than_the_cache_bound_still_decodes_whole', () => {
    const reader = new FrameReader();
    const s = 'x'.repeat(15) + 'y'.repeat(10);
    assert.deepEqual(readAll(reader, frameOf([new TextEncoder().encode(s), new TextEncoder().encode(s.slice(0, 15))])), [s, s.slice(0, 15)]);
  });
});
