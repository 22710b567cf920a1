/**
 * A cross-process lock file: created with O_EXCL, holding the holder's pid, host name and a
 * random token, held until `release()`. Used by state files (state-file.ts) and by the viewer's
 * store compaction (viewer/store-eviction.ts).
 *
 * A lock whose process no longer runs on this host is stale (a holder killed by a signal never
 * removes it) and is taken over; one held by a running process, or by a process on another host
 * (which this host cannot check), is refused with {@link LockHeldError}. Races accepted, knowingly:
 * - Two processes taking over the same stale lock at the same moment: each re-reads the lock just
 *   before renaming its own over it, and reads it again after; the one whose lock is not there
 *   then backs off. Both can still win if one renames between the other's rename and its check
 *   (a window of a few system calls, only ever opened by a stale lock).
 * - A stale lock whose pid a new, unrelated process has been given looks held: it is refused,
 *   naming the pid, and the lock has to be deleted by hand.
 * - The lock is created first and written right after: a reader that finds it empty waits a
 *   little for its content; a process killed between the two leaves an empty lock, refused as
 *   held by an unknown process (delete it by hand).
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';

/** What a lock file holds. */
interface LockInfo {
  pid: number;
  host: string;
  token: string;
  acquiredAt: string;
}

/** Another process holds the lock. `pid` and `host` are unknown when the lock names no process; `detail` says why it is refused. */
export class LockHeldError extends Error {
  override name = 'LockHeldError';
  constructor(
    readonly lockPath: string,
    readonly pid: number | undefined,
    readonly host: string | undefined,
    readonly detail: string,
  ) {
    super(`${lockPath} is held: ${detail}`);
  }
}

export const errnoCode = (e: unknown): string | undefined => (e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined);

/**
 * Whether a process with this pid runs on this host. EPERM: it runs, as another user. Only ESRCH
 * says it does not.
 */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    if (errnoCode(e) === 'ESRCH') return false;
    if (errnoCode(e) === 'EPERM') return true;
    throw e;
  }
}

/** Directory fsync codes that mean "not supported here", not "failed". */
const DIR_SYNC_UNSUPPORTED = new Set(process.platform === 'win32' ? ['EISDIR', 'EPERM', 'EBADF', 'EINVAL', 'ENOTSUP'] : ['EINVAL', 'ENOTSUP']);

/** Makes a rename in `dir` durable. Windows cannot open or sync a folder; some file systems refuse to sync one. */
export async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await open(dir, 'r');
  } catch (e) {
    if (DIR_SYNC_UNSUPPORTED.has(errnoCode(e) ?? '')) return;
    throw e;
  }
  try {
    await handle.sync();
  } catch (e) {
    if (!DIR_SYNC_UNSUPPORTED.has(errnoCode(e) ?? '')) throw e;
  } finally {
    await handle.close();
  }
}

/** Removes a file that may already be gone. */
export async function unlinkIfThere(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw e;
  }
}

/** Writes `text` to a new file at `path` (which must not exist) and syncs it; the file is removed if that fails. */
export async function writeNewFile(path: string, text: string): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } catch (e) {
    await handle.close();
    await unlinkIfThere(path);
    throw e;
  }
  await handle.close();
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses a lock file's text; undefined when it is not (yet) a complete lock. */
function parseLock(text: string): LockInfo | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    if (e instanceof SyntaxError) return undefined;
    throw e;
  }
  if (!isObject(v) || !Number.isSafeInteger(v.pid) || (v.pid as number) <= 0 || typeof v.host !== 'string' || typeof v.token !== 'string') return undefined;
  return { pid: v.pid as number, host: v.host, token: v.token, acquiredAt: typeof v.acquiredAt === 'string' ? v.acquiredAt : '' };
}

/** The lock file's text, or undefined when there is none. */
async function readLockText(lockPath: string): Promise<string | undefined> {
  try {
    return await readFile(lockPath, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How long a reader waits for an empty lock file to be written by its creator. */
const EMPTY_LOCK_WAIT_MS = 200;

/**
 * A lock file held by this process.
 *
 * @example
 * await using lock = await LockFile.acquire('/data/store/.compact.lock'); // throws LockHeldError if another process has it
 * // ... work only one process may do at a time ...
 */
export class LockFile {
  #released = false;

  private constructor(
    readonly path: string,
    private readonly token: string,
  ) {}

  /** Takes the lock at `path` (created; its folder must exist), taking over a stale one. Rejects with {@link LockHeldError} when another live process holds it. */
  static async acquire(path: string): Promise<LockFile> {
    const lock: LockInfo = { pid: process.pid, host: hostname(), token: randomBytes(12).toString('hex'), acquiredAt: new Date().toISOString() };
    const text = `${JSON.stringify(lock)}\n`;
    for (let attempt = 0; ; attempt++) {
      try {
        await writeNewFile(path, text);
        break;
      } catch (e) {
        if (errnoCode(e) !== 'EEXIST') throw e;
      }
      // Someone has the lock, or had it. Taken over when its process is gone; then, checked again.
      if (attempt >= 3) throw new LockHeldError(path, undefined, undefined, 'its lock keeps changing hands');
      const held = await LockFile.#holder(path);
      if (held === undefined) continue; // released meanwhile: try to create it again
      if (await LockFile.#takeOver(path, held, text, lock.token)) break;
    }
    return new LockFile(path, lock.token);
  }

  /**
   * The current lock's text when it is stale (its process is gone from this host); undefined when
   * there is no lock any more. Throws {@link LockHeldError} when it is held.
   */
  static async #holder(lockPath: string): Promise<string | undefined> {
    const deadline = Date.now() + EMPTY_LOCK_WAIT_MS;
    for (;;) {
      const text = await readLockText(lockPath);
      if (text === undefined) return undefined;
      const info = parseLock(text);
      if (info === undefined) {
        // Its creator may be between creating and writing it.
        if (Date.now() < deadline) {
          await sleep(10);
          continue;
        }
        throw new LockHeldError(lockPath, undefined, undefined, 'its lock names no process (a holder killed while taking it?); delete the lock if no sandtrace is using the file');
      }
      if (info.host !== hostname()) {
        throw new LockHeldError(lockPath, info.pid, info.host, `locked by process ${info.pid} on host ${info.host}, which this host cannot check; delete the lock if that process is gone`);
      }
      if (processRuns(info.pid)) {
        throw new LockHeldError(lockPath, info.pid, info.host, `locked by process ${info.pid} on this host since ${info.acquiredAt || 'an unknown time'}; wait for it to finish`);
      }
      return text;
    }
  }

  /**
   * Replaces the stale lock whose text is `stale` with ours: our lock is written to a temporary
   * file, the lock is re-read and must still be the stale one, ours is renamed over it, and read
   * back (another process taking it over at the same time may have renamed its own over ours).
   */
  static async #takeOver(lockPath: string, stale: string, text: string, token: string): Promise<boolean> {
    const tmp = `${lockPath}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    await writeNewFile(tmp, text);
    try {
      if ((await readLockText(lockPath)) !== stale) return false;
      await rename(tmp, lockPath);
    } finally {
      await unlinkIfThere(tmp);
    }
    await syncDirectory(dirname(lockPath));
    const now = await readLockText(lockPath);
    return now !== undefined && parseLock(now)?.token === token;
  }

  /** Whether `release()` was called. */
  get released(): boolean {
    return this.#released;
  }

  /** Frees the lock (if it is still ours). Idempotent. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    const text = await readLockText(this.path);
    if (text !== undefined && parseLock(text)?.token === this.token) await unlinkIfThere(this.path);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }
}
