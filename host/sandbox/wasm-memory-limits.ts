/**
 * Reads what a WebAssembly module declares about its memories and tables from the binary, so
 * the host can supply memory within its limit, or refuse the module, before running it.
 */

export interface MemoryDeclaration {
  /** `import`: the host provides it (module, field); `own`: the module defines it. */
  kind: 'import' | 'own' | 'none';
  module?: string;
  field?: string;
  /** Pages (64 KiB). */
  initial: number;
  maximum?: number;
  shared: boolean;
  /** Memories the module imports or defines, in all (the host caps exactly one). */
  memories: number;
  /** Its tables, imported or its own, with their limits in entries. */
  tables: Array<{ initial: number; maximum?: number }>;
}

/** Thrown when a module's memory (or a table) cannot be held to the host's limit. */
export class MemoryLimitError extends Error {
  override name = 'MemoryLimitError';
}

/** Largest table a guest may declare (8 bytes an entry or more, outside its memory): 1 Mi entries. */
const MAX_TABLE_ENTRIES = 1 << 20;

/**
 * Refuses a module the host could not cap whatever the limit: more than one memory (only one is
 * capped), or a table without a maximum (`table.grow` would take host memory past the limit).
 */
export function assertCappable(decl: MemoryDeclaration): void {
  if (decl.memories > 1) throw new MemoryLimitError(`the module has ${decl.memories} memories; sandtrace caps exactly one`);
  for (const t of decl.tables) {
    if (t.maximum === undefined || t.maximum > MAX_TABLE_ENTRIES) throw new MemoryLimitError(`the module has a table with ${t.maximum === undefined ? 'no maximum' : `a maximum of ${t.maximum} entries`}; at most ${MAX_TABLE_ENTRIES} are allowed`);
  }
}

/** Thrown for bytes that are not a well-formed WebAssembly module header/sections. */
export class WasmFormatError extends Error {
  override name = 'WasmFormatError';
}

export function readMemoryDeclaration(bytes: Uint8Array): MemoryDeclaration {
  let pos = 8;
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) throw new WasmFormatError('not a WebAssembly module (bad magic)');
  const leb = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (pos >= bytes.length) throw new WasmFormatError('unexpected end of module');
      const b = bytes[pos++]!;
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 49) throw new WasmFormatError('LEB128 too long');
    }
  };
  const name = (): string => {
    const n = leb();
    const s = new TextDecoder().decode(bytes.subarray(pos, pos + n));
    pos += n;
    return s;
  };
  const limits = (): { initial: number; maximum?: number; shared: boolean } => {
    const flags = leb();
    const initial = leb();
    const out: { initial: number; maximum?: number; shared: boolean } = { initial, shared: (flags & 2) !== 0 };
    if (flags & 1) out.maximum = leb();
    return out;
  };
  // Every memory and table is read, not only the first: a second, uncapped memory must not pass.
  let first: Omit<MemoryDeclaration, 'memories' | 'tables'> | undefined;
  let memories = 0;
  const tables: MemoryDeclaration['tables'] = [];
  const table = (): void => {
    pos++; // element type
    const { initial, maximum } = limits();
    tables.push(maximum === undefined ? { initial } : { initial, maximum });
  };
  while (pos < bytes.length) {
    const id = bytes[pos++]!;
    const size = leb();
    const end = pos + size;
    if (end > bytes.length) throw new WasmFormatError(`section ${id} runs past the end of the module`);
    if (id === 2) {
      const count = leb();
      for (let i = 0; i < count; i++) {
        const module = name();
        const field = name();
        const kind = bytes[pos++];
        if (kind === 0) leb(); // function: type index
        else if (kind === 1) table();
        else if (kind === 2) {
          memories++;
          const l = limits();
          first ??= { kind: 'import', module, field, ...l };
        } else if (kind === 3) pos += 2; // global: value type, mutability
        else if (kind === 4) {
          pos++; // exception tag: attribute, then type index
          leb();
        } else throw new WasmFormatError(`unknown import kind ${kind}`);
      }
    } else if (id === 4) {
      const count = leb();
      for (let i = 0; i < count; i++) table();
    } else if (id === 5) {
      const count = leb();
      for (let i = 0; i < count; i++) {
        memories++;
        const l = limits();
        first ??= { kind: 'own', ...l };
      }
    }
    pos = end;
  }
  return { ...(first ?? { kind: 'none', initial: 0, shared: false }), memories, tables };
}
