/**
 * Files this package ships (the worker entry, the QuickJS SDK's compiled sources, the
 * AssemblyScript library), found from the package root rather than by relative hops from the
 * module asking. The same source module runs from its own compiled file under dist/host/ and
 * from a bundle chunk under dist/pkg/, and its `import.meta.url` differs between the two; the
 * package root is the same for both.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const NAME = 'sandtrace';
let root: string | undefined;

/** The directory holding this package's package.json, found once by walking up from this module. */
export function packageRoot(): string {
  return (root ??= findRoot(dirname(fileURLToPath(import.meta.url))));
}

/** An absolute path inside the package, e.g. `packagePath('dist/shared/records.js')`. */
export function packagePath(relative: string): string {
  return join(packageRoot(), relative);
}

/** A `file:` URL inside the package, e.g. for a worker entry. */
export function packageUrl(relative: string): URL {
  return pathToFileURL(packagePath(relative));
}

function findRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (isThisPackage(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json named "${NAME}" in ${start} or above it`);
  }
}

function isThisPackage(file: string): boolean {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return false;
    throw e;
  }
  return (JSON.parse(text) as { name?: unknown }).name === NAME;
}
