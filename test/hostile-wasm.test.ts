/**
 * WebAssembly modules built to get past the host's caps (issue 10): more memories than the one
 * the host caps, tables that grow without a bound, imports the parser did not know, and frames
 * handed over with pointers outside the guest's buffer.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { SandboxPool } from '../host/sandbox/sandbox-pool.js';
import { compileWasm } from '../host/sandbox/wasm-module-cache.js';
import { MemoryLimitError, readMemoryDeclaration } from '../host/sandbox/wasm-memory-limits.js';
import { runWasm } from '../host/sandbox/wasm-runner.js';
import { I32, op, WasmModuleBuilder } from './guests-wasm/wasm-builder.js';

const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
/** A section: id, byte length, contents. */
const section = (id: number, contents: number[]) => [id, contents.length, ...contents];
/** An imported memory of 1 page, at most 1 (`env.memory`). */
const MEMORY_IMPORT = [0x03, ...Buffer.from('env'), 0x06, ...Buffer.from('memory'), 0x02, 0x01, 0x01, 0x01];

describe('WebAssembly modules the host cannot cap are refused before they compile', () => {
  test('two memories of its own: MemoryLimitError naming both', async () => {
    const bytes = new Uint8Array([...HEADER, ...section(5, [2, 0x01, 1, 1, 0x00, 1])]); // the second has no maximum
    assert.equal(readMemoryDeclaration(bytes).memories, 2);
    await assert.rejects(runWasm(bytes, {}), (e: Error) => e instanceof MemoryLimitError && /2 memories; sandtrace caps exactly one/.test(e.message));
  });

  test('an imported memory and one of its own: refused the same way', async () => {
    const bytes = new Uint8Array([...HEADER, ...section(2, [1, ...MEMORY_IMPORT]), ...section(5, [1, 0x00, 1])]);
    await assert.rejects(compileWasm(bytes), (e: Error) => e instanceof MemoryLimitError && /2 memories/.test(e.message));
  });

  test('a table without a maximum (table.grow would take host memory past the limit)', async () => {
    const bytes = new Uint8Array([...HEADER, ...section(4, [1, 0x70, 0x00, 1])]);
    await assert.rejects(runWasm(bytes, {}), (e: Error) => e instanceof MemoryLimitError && /table with no maximum/.test(e.message));
    const huge = new Uint8Array([...HEADER, ...section(4, [1, 0x70, 0x01, 1, 0x80, 0x80, 0x80, 0x04])]); // maximum 2^23 entries
    await assert.rejects(runWasm(huge, {}), (e: Error) => e instanceof MemoryLimitError && /a maximum of 8388608 entries/.test(e.message));
  });

  test('a module importing an exception tag is read, not refused as malformed', () => {
    const type = section(1, [1, 0x60, 0, 0]);
    const tagImport = [0x03, ...Buffer.from('env'), 0x01, ...Buffer.from('t'), 0x04, 0x00, 0x00];
    const bytes = new Uint8Array([...HEADER, ...type, ...section(2, [2, ...tagImport, ...MEMORY_IMPORT])]);
    const decl = readMemoryDeclaration(bytes);
    assert.deepEqual([decl.kind, decl.module, decl.field, decl.memories], ['import', 'env', 'memory', 1]);
  });
});

describe('frames handed over outside the guest buffer', () => {
  const pool = new SandboxPool({ size: 1 });
  after(() => pool.close());

  test('are counted in the summary, never read', async () => {
    const m = new WasmModuleBuilder();
    const flush = m.importFunction('sandtrace', 'flush', [I32, I32], []);
    m.importMemory('env', 'memory', 1, 1);
    // No attach: every pointer is foreign. One inside memory, one past its end, one with a huge length.
    m.addFunction('run', [], [], [
      [...op.i32Const(16), ...op.i32Const(8), ...op.call(flush)],
      [...op.i32Const(1 << 20), ...op.i32Const(8), ...op.call(flush)],
      [...op.i32Const(16), ...op.i32Const(-1), ...op.call(flush)],
    ]);
    const r = await runWasm(m.encode(), { pool });
    assert.equal(r.ok, true);
    assert.equal(r.summary.invalidFrames, 3);
    assert.equal(r.summary.records, 0);
  });
});
