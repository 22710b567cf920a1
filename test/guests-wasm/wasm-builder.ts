/**
 * A small WebAssembly binary encoder for hand-made test guests: what AssemblyScript cannot write
 * (exception handling's try/catch_all), in modules small enough to read opcode by opcode.
 * Only what the tests use: function types, imported functions and memory, functions with
 * locals, exports and active data segments.
 */

export const I32 = 0x7f;
export const I64 = 0x7e;
export const F64 = 0x7c;
/** Block type of a block that takes and leaves nothing. */
export const VOID = 0x40;

/** Instructions, as byte arrays; see the WebAssembly core spec, section 5.4. */
export const op = {
  unreachable: [0x00],
  loop: (type = VOID) => [0x03, type],
  /** Legacy exception handling (on by default in Node 20): try … catch_all … end. */
  try: (type = VOID) => [0x06, type],
  catchAll: [0x19],
  end: [0x0b],
  br: (depth: number) => [0x0c, ...uleb(depth)],
  call: (func: number) => [0x10, ...uleb(func)],
  drop: [0x1a],
  localGet: (i: number) => [0x20, ...uleb(i)],
  i32Load: (offset = 0) => [0x28, 2, ...uleb(offset)],
  i32Store: (offset = 0) => [0x36, 2, ...uleb(offset)],
  i32Add: [0x6a],
  i32Const: (n: number) => [0x41, ...sleb(n)],
  /** memory.copy (bulk memory): dest, source, length on the stack. */
  memoryCopy: [0xfc, 10, 0, 0],
};

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0);
    out.push(done ? b : b | 0x80);
    if (done) return out;
  }
}

const utf8 = (s: string) => [...new TextEncoder().encode(s)];
const name = (s: string) => [...uleb(utf8(s).length), ...utf8(s)];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];

interface Func {
  type: number;
  locals: number[];
  body: number[];
}

export class WasmModuleBuilder {
  private readonly types: string[] = [];
  private readonly imports: number[][] = [];
  private importedFuncs = 0;
  private readonly funcs: Func[] = [];
  private readonly exports: number[][] = [];
  private readonly data: number[][] = [];

  /** Imports a function; returns its index. Imports come before the module's own functions. */
  importFunction(module: string, field: string, params: number[], results: number[]): number {
    if (this.funcs.length > 0) throw new Error('import functions before defining any');
    this.imports.push([...name(module), ...name(field), 0x00, ...uleb(this.type(params, results))]);
    return this.importedFuncs++;
  }

  /** Imports a memory of `initial` pages, at most `maximum`. */
  importMemory(module: string, field: string, initial: number, maximum: number): void {
    this.imports.push([...name(module), ...name(field), 0x02, 0x01, ...uleb(initial), ...uleb(maximum)]);
  }

  /** Defines a function and exports it under `exportName`; returns its index. */
  addFunction(exportName: string, params: number[], results: number[], body: number[][], locals: number[] = []): number {
    const index = this.importedFuncs + this.funcs.length;
    this.funcs.push({ type: this.type(params, results), locals, body: body.flat() });
    this.exports.push([...name(exportName), 0x00, ...uleb(index)]);
    return index;
  }

  /** Bytes placed in memory 0 at `offset` when the module is instantiated. */
  addData(offset: number, bytes: Uint8Array | number[]): void {
    this.data.push([0x00, ...op.i32Const(offset), ...op.end, ...uleb(bytes.length), ...bytes]);
  }

  encode(): Uint8Array<ArrayBuffer> {
    const section = (id: number, items: number[][]) => (items.length === 0 ? [] : [id, ...uleb(vec(items).length), ...vec(items)]);
    const types = this.types.map((t) => JSON.parse(t) as number[]);
    const code = this.funcs.map((f) => {
      const locals = vec(f.locals.map((t) => [1, t]));
      const body = [...locals, ...f.body, ...op.end];
      return [...uleb(body.length), ...body];
    });
    return new Uint8Array([
      ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
      ...section(1, types),
      ...section(2, this.imports),
      ...section(3, this.funcs.map((f) => uleb(f.type))),
      ...section(7, this.exports),
      ...section(10, code),
      ...section(11, this.data),
    ]);
  }

  private type(params: number[], results: number[]): number {
    const encoded = JSON.stringify([0x60, ...vec(params.map((p) => [p])), ...vec(results.map((r) => [r]))]);
    const known = this.types.indexOf(encoded);
    if (known >= 0) return known;
    this.types.push(encoded);
    return this.types.length - 1;
  }
}
