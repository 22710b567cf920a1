/**
 * WebAssembly guests written opcode by opcode (see wasm-builder.ts), for what the AssemblyScript
 * library cannot express: a guest that swallows the host's stop with catch_all, one that spins
 * without ever crossing to the host, and one that calls host functions given as imports.
 */
import { F64, I32, I64, op, WasmModuleBuilder } from './wasm-builder.js';

type Item = number | string | null | string[];

/**
 * One protocol v1 record (shared/PROTOCOL.md): a msgpack array of small unsigned integers,
 * short ASCII strings, nil and arrays of strings, which is all these guests write.
 */
export function record(...items: Item[]): number[] {
  const out = [0x90 | items.length];
  const str = (s: string) => {
    if (s.length >= 32) throw new Error('fixstr only');
    out.push(0xa0 | s.length, ...[...s].map((c) => c.charCodeAt(0)));
  };
  for (const item of items) {
    if (item === null) out.push(0xc0);
    else if (typeof item === 'string') str(item);
    else if (Array.isArray(item)) {
      out.push(0x90 | item.length);
      item.forEach(str);
    } else if (item < 0x80) out.push(item);
    else if (item < 0x100) out.push(0xcc, item);
    else out.push(0xcd, item >> 8, item & 0xff);
  }
  return out;
}

/** Where the catching guest keeps its state block and buffer (shared/PROTOCOL.md, section 5b). */
const STATE = 16;
const BUF = 1024;
const CAPACITY = 4096;
const STAGED = 8192;

/** Names the catching guest uses in its records. */
export const CATCHING = { span: 'guarded', event: 'before the loop' } as const;

/**
 * A guest that attaches its state block, hands the host two frames (frame 1: two callsites, a
 * span created and entered; frame 2: an event in that span), then loops forever around a call
 * to `sandtrace.now`, catching with catch_all whatever the host throws to stop it.
 */
export function catchingGuest(): Uint8Array<ArrayBuffer> {
  const m = new WasmModuleBuilder();
  const attach = m.importFunction('sandtrace', 'attach', [I32, I32, I32], []);
  const flush = m.importFunction('sandtrace', 'flush', [I32, I32], []);
  const now = m.importFunction('sandtrace', 'now', [], [F64]);
  m.importMemory('env', 'memory', 1, 1);
  const frame1 = [
    ...record(1, 1, 0, CATCHING.span, 'wasm.test', 2, null, null, null, []),
    ...record(1, 2, 1, 'checkpoint', 'wasm.test', 2, null, null, null, ['message']),
    ...record(2, 1, null, 1, 100), // span 1, contextual parent, callsite 1, t = 100 ns
    ...record(4, 1, 10), // entered at t = 110 ns
  ];
  const frame2 = record(9, 2, null, 200, CATCHING.event); // event of callsite 2 at t = 200 ns (a new frame: absolute)
  m.addData(BUF, frame1);
  m.addData(STAGED, frame2);
  /** Commits `length` bytes of the buffer (the state block's first word), hands them over, then empties it. */
  const handOver = (length: number) => [
    op.i32Const(STATE), op.i32Const(length), op.i32Store(),
    op.i32Const(BUF), op.i32Const(length), op.call(flush),
    op.i32Const(STATE), op.i32Const(0), op.i32Store(),
  ];
  m.addFunction('run', [], [], [
    op.i32Const(STATE), op.i32Const(BUF), op.i32Const(CAPACITY), op.call(attach),
    ...handOver(frame1.length),
    op.i32Const(BUF), op.i32Const(STAGED), op.i32Const(frame2.length), op.memoryCopy,
    ...handOver(frame2.length),
    op.loop(),
    op.try(), op.call(now), op.drop, op.catchAll, op.end,
    op.br(0),
    op.end,
  ]);
  return m.encode();
}

/** A guest whose `run` spins forever without calling anything: only terminating its worker stops it. */
export function spinningGuest(): Uint8Array<ArrayBuffer> {
  const m = new WasmModuleBuilder();
  m.importMemory('env', 'memory', 1, 1);
  m.addFunction('run', [], [], [op.loop(), op.br(0), op.end]);
  return m.encode();
}

/**
 * A guest whose exports call host functions given as imports: `add(a, b)` calls `host.add`
 * (f64), `mul(a, b)` calls `host.mul` (i64, bigints on the host), `slow()` calls `host.slow`.
 * `tag` becomes an extra export, so that distinct tags give distinct bytes.
 */
export function importingGuest(tag = 'none'): Uint8Array<ArrayBuffer> {
  const m = new WasmModuleBuilder();
  const add = m.importFunction('host', 'add', [F64, F64], [F64]);
  const mul = m.importFunction('host', 'mul', [I64, I64], [I64]);
  const slow = m.importFunction('host', 'slow', [], [F64]);
  m.importMemory('env', 'memory', 1, 1);
  m.addFunction('add', [F64, F64], [F64], [op.localGet(0), op.localGet(1), op.call(add)]);
  m.addFunction('mul', [I64, I64], [I64], [op.localGet(0), op.localGet(1), op.call(mul)]);
  m.addFunction('slow', [], [F64], [op.call(slow)]);
  m.addFunction(`tag_${tag}`, [], [], []);
  return m.encode();
}
