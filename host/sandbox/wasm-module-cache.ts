/**
 * Compiled WebAssembly guests, kept so that running the same bytes again does not compile them
 * again, with the memory declaration the host needs to cap the guest (JavaScript cannot read
 * a compiled module's memory limits back, so they are read from the bytes once, here).
 */
import { assertCappable, readMemoryDeclaration, type MemoryDeclaration } from './wasm-memory-limits.js';

/** Compilations kept, least recently used dropped first. */
const CACHE_ENTRIES = 64;

const declarations = new WeakMap<WebAssembly.Module, MemoryDeclaration>();
const byBytes = new WeakMap<Uint8Array, Promise<WebAssembly.Module>>();
const byHash = new Map<string, Promise<WebAssembly.Module>>();

/**
 * Compiles a guest module once per distinct content (refusing, with MemoryLimitError, one whose
 * memories or tables the host could not cap); later calls with the same bytes (the same
 * array, or equal bytes) get the same `WebAssembly.Module`. Pass the result to `runWasm`.
 *
 * @example
 * const module = await compileWasm(readFileSync('plugin.wasm'));
 * for (const req of requests) await runWasm(module, { entry: 'handle', args: [req.id] });
 */
export async function compileWasm(bytes: Uint8Array): Promise<WebAssembly.Module> {
  const known = byBytes.get(bytes);
  if (known !== undefined) return known;
  // node:crypto loads with the first compilation, not with `import 'sandtrace'` (about 3.5 ms).
  const { createHash } = await import('node:crypto');
  const hash = createHash('sha256').update(bytes).digest('hex');
  let compiled = byHash.get(hash);
  if (compiled === undefined) {
    const declaration = readMemoryDeclaration(bytes); // throws WasmFormatError for what is not a module
    assertCappable(declaration); // before compiling: the refusal names the reason, whatever the engine supports
    compiled = WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>).then((m) => {
      declarations.set(m, declaration);
      return m;
    });
    compiled.catch(() => byHash.delete(hash)); // a module that does not compile is not kept; the caller sees the error
    if (byHash.size >= CACHE_ENTRIES) byHash.delete(byHash.keys().next().value!);
  } else {
    byHash.delete(hash); // refresh its place in the LRU order
  }
  byHash.set(hash, compiled);
  byBytes.set(bytes, compiled);
  return compiled;
}

/** The memory declaration of a module compiled by `compileWasm`, or undefined for any other module. */
export function declarationOf(module: WebAssembly.Module): MemoryDeclaration | undefined {
  return declarations.get(module);
}
