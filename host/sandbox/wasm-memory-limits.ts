/**
 * Reads a WebAssembly module's memory declaration (imported `env.memory`, or its own memory)
 * from the binary, so the host can supply or refuse memory within its limit before running it.
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
  while (pos < bytes.length) {
    const id = bytes[pos++]!;
    const size = leb();
    const end = pos + size;
    if (id === 2) {
      const count = leb();
      for (let i = 0; i < count; i++) {
        const module = name();
        const field = name();
        const kind = bytes[pos++];
        if (kind === 0) leb();
        else if (kind === 1) {
          pos++;
          limits();
        } else if (kind === 2) return { kind: 'import', module, field, ...limits() };
        else if (kind === 3) pos += 2;
        else throw new WasmFormatError(`unknown import kind ${kind}`);
      }
    } else if (id === 5) {
      if (leb() > 0) return { kind: 'own', ...limits() };
    }
    pos = end;
  }
  return { kind: 'none', initial: 0, shared: false };
}
