/**
 * Golden byte vectors for every record type of protocol v1. Each vector is one frame (time base
 * zero), decoded and re-encoded; the same bytes also decode with msgpackr, the reference
 * msgpack implementation. PROTOCOL.md shows the same vectors.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Unpackr, addExtension } from 'msgpackr';
import { EventEncoder, FrameDecoder } from '../shared/event-codec.js';
import { FrameReader, RawRecord } from '../shared/frame-reader.js';
import type { TracingEvent } from '../shared/records.js';

interface Vector {
  name: string;
  hex: string;
  events: TracingEvent[];
}

const VALUES_FIELDS = ['u64', 'i64', 'nan', 'inf', 'ninf', 'negzero', 'dbg', 'err', 'bin', 'empty', 'f32ish', 'str'];

const vectors: Vector[] = [
  {
    name: 'hello',
    hex: '95 00 01 a2 6a73 a5 302e312e30 cf 17979cfe362a0000',
    events: [{ type: 'hello', version: 1, guestKind: 'js', sdkVersion: '0.1.0', clockOrigin: 1_700_000_000_000_000_000n }],
  },
  {
    name: 'hello (1.1: the minor revision as a sixth element)',
    hex: '96 00 01 a2 6a73 a5 302e312e30 cf 17979cfe362a0000 01',
    events: [{ type: 'hello', version: 1, guestKind: 'js', sdkVersion: '0.1.0', clockOrigin: 1_700_000_000_000_000_000n, minor: 1 }],
  },
  {
    name: 'newCallSite (span, with file and line)',
    hex: '9a 01 01 00 a6 68616e646c65 a3 617070 02 c0 a4 612e6a73 03 92 a4 75736572 a2 6f6b',
    events: [{ type: 'newCallSite', id: 1, kind: 'span', name: 'handle', target: 'app', level: 'info', file: 'a.js', line: 3, fields: ['user', 'ok'] }],
  },
  {
    name: 'newCallSite (event, with module path, no file)',
    hex: '9a 01 02 01 a2 6869 a3 617070 01 a3 6d6f64 c0 c0 92 a7 6d657373616765 a1 6e',
    events: [{ type: 'newCallSite', id: 2, kind: 'event', name: 'hi', target: 'app', level: 'debug', modulePath: 'mod', fields: ['message', 'n'] }],
  },
  {
    name: 'newCallSite (span with every value type)',
    hex: '9a 01 03 00 a4 76616c73 a1 74 04 c0 c0 c0 9c a3 753634 a3 693634 a3 6e616e a3 696e66 a4 6e696e66 a7 6e65677a65726f a3 646267 a3 657272 a3 62696e a5 656d707479 a6 663332697368 a3 737472',
    events: [{ type: 'newCallSite', id: 3, kind: 'span', name: 'vals', target: 't', level: 'error', fields: VALUES_FIELDS }],
  },
  {
    name: 'newSpan (contextual parent, time 1000)',
    hex: '97 02 01 c0 01 cd03e8 a5 616c696365 c3',
    events: [{ type: 'newSpan', id: 1, metadataId: 1, values: [['user', 'alice'], ['ok', true]], time: 1000n }],
  },
  {
    name: 'newSpan (explicit root, no time, field not recorded yet)',
    hex: '97 02 02 c2 01 c0 a3 626f62 c0',
    events: [{ type: 'newSpan', id: 2, parentId: null, metadataId: 1, values: [['user', 'bob'], ['ok', { empty: true }]] }],
  },
  {
    name: 'newSpan (explicit parent 1)',
    hex: '95 02 04 01 01 05',
    events: [{ type: 'newSpan', id: 4, parentId: 1, metadataId: 1, values: [], time: 5n }],
  },
  {
    name: 'newSpan (every value type)',
    hex: [
      'dc 0011 02 05 c0 03 c0',
      'cf ffffffffffffffff', // u64 max -> bigint
      'd3 8000000000000000', // i64 min -> bigint
      'cb 7ff8000000000000', // NaN
      'cb 7ff0000000000000', // +Infinity
      'cb fff0000000000000', // -Infinity
      'cb 8000000000000000', // -0
      'c7 03 01 466f6f', // debug "Foo"
      'c7 0a 02 92 a1 78 c7 04 02 92 a1 79 c0', // error x caused by y
      'c4 02 0102', // bytes
      'c0', // not recorded yet
      'cb 3ff8000000000000', // 1.5
      'a5 c3a974c3a9', // "été" (multi-byte UTF-8)
    ].join(' '),
    events: [
      {
        type: 'newSpan',
        id: 5,
        metadataId: 3,
        values: [
          ['u64', 0xffff_ffff_ffff_ffffn],
          ['i64', -(2n ** 63n)],
          ['nan', NaN],
          ['inf', Infinity],
          ['ninf', -Infinity],
          ['negzero', -0],
          ['dbg', { debug: 'Foo' }],
          ['err', { error: { message: 'x', source: { message: 'y' } } }],
          ['bin', new Uint8Array([1, 2])],
          ['empty', { empty: true }],
          ['f32ish', 1.5],
          ['str', 'été'],
        ],
      },
    ],
  },
  {
    name: 'newSpanEntered (1.1): span 6 created and entered at t = 2000, then exited and closed by its drop at 2100',
    hex: '97 0c 06 c0 01 cd07d0 a5 6361726f6c c3  93 07 06 64',
    events: [
      { type: 'newSpan', id: 6, metadataId: 1, values: [['user', 'carol'], ['ok', true]], time: 2000n, entered: true },
      { type: 'spanDropped', id: 6, time: 2100n },
    ],
  },
  {
    name: 'newSpanEntered (1.1, explicit root, no time, no values)',
    hex: '95 0c 07 c2 01 c0',
    events: [{ type: 'newSpan', id: 7, parentId: null, metadataId: 1, values: [], entered: true }],
  },
  { name: 'followsFrom', hex: '93 03 02 01', events: [{ type: 'followsFrom', id: 2, followsFrom: 1 }] },
  { name: 'spanEntered', hex: '93 04 01 cd05dc', events: [{ type: 'spanEntered', id: 1, time: 1500n }] },
  {
    name: 'spanEntered then spanExited: time is a delta against the previous record',
    hex: '93 04 01 cd03e8 93 05 01 cd012c',
    events: [
      { type: 'spanEntered', id: 1, time: 1000n },
      { type: 'spanExited', id: 1, time: 1300n },
    ],
  },
  { name: 'spanCloned', hex: '92 06 01', events: [{ type: 'spanCloned', id: 1 }] },
  { name: 'spanDropped (no time)', hex: '93 07 01 c0', events: [{ type: 'spanDropped', id: 1 }] },
  {
    name: 'valuesRecorded (field 1 of span 1)',
    hex: '94 08 01 01 c2',
    events: [{ type: 'valuesRecorded', id: 1, values: [['ok', false]] }],
  },
  {
    name: 'newEvent (contextual parent)',
    hex: '96 09 02 c0 64 a2 6869 2a',
    events: [{ type: 'newEvent', metadataId: 2, values: [['message', 'hi'], ['n', 42]], time: 100n }],
  },
  {
    name: 'newEvent (in span 1, negative integer)',
    hex: '96 09 02 01 c0 a1 78 d0 85',
    events: [{ type: 'newEvent', metadataId: 2, parentId: 1, values: [['message', 'x'], ['n', -123]] }],
  },
  {
    name: 'metric (counter, no attributes)',
    hex: '95 0a 00 a4 72657173 01 c0',
    events: [{ type: 'metric', name: 'reqs', instrument: 'counter', value: 1 }],
  },
  {
    name: 'metric (histogram with attributes)',
    hex: '96 0a 01 a3 6c6174 cb 4004000000000000 0a 81 a5 726f757465 a2 2f78',
    events: [{ type: 'metric', name: 'lat', instrument: 'histogram', value: 2.5, time: 10n, attributes: [['route', '/x']] }],
  },
  {
    name: 'metric (gauge)',
    hex: '95 0a 02 a3 6d656d cd 0400 c0',
    events: [{ type: 'metric', name: 'mem', instrument: 'gauge', value: 1024 }],
  },
  { name: 'dropped', hex: '92 0b 03', events: [{ type: 'dropped', count: 3 }] },
];

function bytesOf(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex.replace(/\s+/g, ''), 'hex'));
}

// msgpackr knows nothing of sandtrace's extension types until told; then it reads every frame.
class DebugText {}
class ErrorValueExt {}
const generic = new Unpackr({ int64AsType: 'auto' as 'bigint', mapsAsObjects: true, useRecords: false });
addExtension({ Class: DebugText, type: 1, pack: () => Buffer.alloc(0), unpack: (b: Buffer) => ({ debug: b.toString('utf8') }) });
addExtension({ Class: ErrorValueExt, type: 2, pack: () => Buffer.alloc(0), unpack: (b: Buffer) => ({ error: generic.unpack(b) }) });

describe('protocol v1 golden vectors', () => {
  // One decoder and one encoder for the whole table: later vectors use the callsites and spans
  // declared by earlier ones, as a real stream does; each vector is still a frame of its own.
  const decoder = new FrameDecoder();
  const encoder = new EventEncoder();

  for (const v of vectors) {
    test(`${v.name}: decodes to the documented events and re-encodes to the same bytes`, () => {
      const bytes = bytesOf(v.hex);
      const decoded = decoder.decode(bytes);
      assert.equal(decoded.truncated, false);
      assert.deepEqual(decoded.errors, []);
      assert.deepStrictEqual(decoded.events, v.events);
      const again = encoder.encode(v.events);
      assert.equal(Buffer.from(again).toString('hex'), Buffer.from(bytes).toString('hex'));
      const records = generic.unpackMultiple(bytes) as unknown[];
      assert.equal(records.length, v.events.length, 'msgpackr sees one value per record');
      for (const r of records) assert.ok(Array.isArray(r) && typeof r[0] === 'number', 'every record is an array led by its tag');
    });
  }

  test('a frame cut at any byte keeps every complete record before the cut and says it was truncated', () => {
    const frame = bytesOf(vectors.map((v) => v.hex).join(' '));
    const full = new FrameDecoder().decode(frame);
    assert.equal(full.truncated, false);
    // Where each record ends, read with the low-level reader.
    const ends: number[] = [];
    const reader = new FrameReader();
    const rec = new RawRecord();
    reader.reset(frame);
    while (!reader.done) {
      reader.readHead(rec);
      reader.readValues(rec);
      ends.push(reader.pos);
    }
    assert.equal(ends.length, full.events.length);
    for (let cut = 0; cut < frame.length; cut++) {
      const d = new FrameDecoder().decode(frame.subarray(0, cut));
      const complete = ends.filter((e) => e <= cut).length;
      assert.equal(d.events.length, complete, `cut at ${cut}`);
      assert.equal(d.truncated, !ends.includes(cut) && cut > 0, `cut at ${cut}`);
      assert.equal(d.errors.length, 0);
    }
  });

  test('frames decode independently: the time base restarts at zero in every frame', () => {
    const enc = new EventEncoder();
    const a = enc.encode([{ type: 'spanEntered', id: 1, time: 5_000n }]);
    const b = enc.encode([{ type: 'spanExited', id: 1, time: 7_000n }]);
    assert.deepStrictEqual(new FrameDecoder().decode(b).events, [{ type: 'spanExited', id: 1, time: 7_000n }]);
    assert.deepStrictEqual(new FrameDecoder().decode(a).events, [{ type: 'spanEntered', id: 1, time: 5_000n }]);
  });

  test('a bad record in the middle is reported and the records around it still decode', () => {
    const frame = bytesOf('92 0b 01  93 7f 01 02  92 0b 02'); // dropped, unknown tag 127, dropped
    const d = new FrameDecoder().decode(frame);
    assert.deepStrictEqual(d.events, [{ type: 'dropped', count: 1 }, { type: 'dropped', count: 2 }]);
    assert.equal(d.errors.length, 1);
    assert.match(d.errors[0]!.message, /unknown record tag 127/);
  });
});
