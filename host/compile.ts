/**
 * sandtrace/compile: compile an AssemblyScript guest with the project's own compiler and settings.
 * Importing this entry is cheap; the compiler itself loads with the first compile.
 *
 * @example
 * import { compileAssemblyScript, CompileError } from 'sandtrace/compile';
 * const wasm = await compileAssemblyScript('plugin.ts', { target: 'release' });
 */
export { compileAssemblyScript, CompileError, type CompileOptions } from './sandbox/compile-assemblyscript.js';
