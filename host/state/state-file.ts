/**
 * A workflow's state file, kept safe from crashes and from a second run: `StateFile.open` takes an
 * exclusive lock (a sibling `FILE.lock`), `read()` gives back the last committed
 * `PersistedExecution`, and `commit()` replaces it atomically (a temporary file in the same
 * folder, synced, renamed over the file, the folder synced), so a process killed at any moment
 * leaves either the previous state or the new one, never a part of one.
 *
 * The file is a versioned envelope, `{ "sandtraceState": 1, "writtenAt": ISO time, "execution":
 * PersistedExecution }`. A bare `PersistedExecution` (what sandtrace wrote before the envelope) is
 * read as legacy state; an envelope of a format this sandtrace does not know, and a file that is
 * empty, cut short or not a state file, are refused with typed errors that name the file.
 *
 * The lock. `FILE.lock` is created with O_EXCL and holds the holder's pid, host name and a random
 * token. It is held until `release()`. A lock whose process no longer runs on this host is stale
 * (a holder killed by a signal never removes it) and is taken over; one held by a running process,
 * or by a process on another host (which this host cannot check), is refused with
 * `StateFileLockedError`. Races accepted, knowingly:
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
import { open, readdir, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { PersistedExecution } from '../sandbox/execution.js';

/** The envelope format this sandtrace writes. */
export const STATE_FORMAT = 1;
/** The envelope formats this sandtrace reads (and bare legacy state, without an envelope). */
export const READABLE_STATE_FORMATS: readonly number[] = [1];

/** What a state file holds, from format 1 on. */
export interface StateEnvelope {
  /** The format version. */
  sandtraceState: number;
  /** When it was committed (ISO 8601). */
  writtenAt: string;
  execution: PersistedExecution;
}

/** What a lock file holds. */
interface LockInfo {
  pid: number;
  host: string;
  token: string;
  acquiredAt: string;
}

/** Any refusal of a state file; `path` is the state file. */
export class StateFileError extends Error {
  override name = 'StateFileError';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

/** Another process holds the state file's lock. `pid` and `host` are unknown when the lock names no process. */
export class StateFileLockedError extends StateFileError {
  override name = 'StateFileLockedError';
  constructor(
    path: string,
    readonly lockPath: string,
    readonly pid: number | undefined,
    readonly host: string | undefined,
    detail: string,
  ) {
    super(path, `state file ${path} is in use: ${detail} (lock ${lockPath})`);
  }
}

/** The state file is empty, cut short, or not a sandtrace state file. */
export class StateFileCorruptError extends StateFileError {
  override name = 'StateFileCorruptError';
  constructor(path: string, readonly reason: string) {
    super(path, `state file ${path} is corrupt: ${reason}`);
  }
}

/** The state file was written in a format this sandtrace does not read (a newer sandtrace's). */
export class StateFileVersionError extends StateFileError {
  override name = 'StateFileVersionError';
  constructor(path: string, readonly version: number) {
    super(
      path,
      `state file ${path} is in state format ${version}, which this sandtrace cannot read ` +
        `(it reads format ${READABLE_STATE_FORMATS.join(', ')} and unversioned legacy state); use the sandtrace that wrote it, or a newer one`,
    );
  }
}

const errnoCode = (e: unknown): string | undefined => (e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined);

/**
 * Whether a process with this pid runs on this host. EPERM: it runs, as another user. Only ESRCH
 * says it does not.
 */
function processRuns(pid: number): boolean {
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
async function syncDirectory(dir: string): Promise<void> {
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
async function unlinkIfThere(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw e;
  }
}

/** Writes `text` to a new file at `path` (which must not exist) and syncs it; the file is removed if that fails. */
async function writeNewFile(path: string, text: string): Promise<void> {
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
 * A workflow's state file, locked for as long as it is open.
 *
 * @example
 * import { StateFile, runQuickJS } from 'sandtrace';
 * await using file = await StateFile.open('order-1001.json'); // throws StateFileLockedError if another process has it
 * const state = await file.read();                             // undefined on the first step
 * const result = await runQuickJS(step, { persist: true, ...(state && { state }) });
 * if (result.state !== undefined) await file.commit(result.state); // atomic: all of it or none
 * // leaving the block releases the lock (or call file.release())
 */
export class StateFile {
  /** The lock file next to the state file. */
  readonly lockPath: string;
  #released = false;

  private constructor(
    /** The state file, as an absolute path. */
    readonly path: string,
    private readonly lock: LockInfo,
  ) {
    this.lockPath = `${path}.lock`;
  }

  /**
   * Locks the state file at `path` (which need not exist yet) for this process. Rejects with
   * `StateFileLockedError` when another live process holds it. Temporary files that killed
   * writers left next to it are removed.
   */
  static async open(path: string): Promise<StateFile> {
    const file = resolve(path);
    const lockPath = `${file}.lock`;
    const lock: LockInfo = { pid: process.pid, host: hostname(), token: randomBytes(12).toString('hex'), acquiredAt: new Date().toISOString() };
    const text = `${JSON.stringify(lock)}\n`;
    for (let attempt = 0; ; attempt++) {
      try {
        await writeNewFile(lockPath, text);
        break;
      } catch (e) {
        if (errnoCode(e) !== 'EEXIST') throw e;
      }
      // Someone has the lock, or had it. Taken over when its process is gone; then, checked again.
      if (attempt >= 3) throw new StateFileLockedError(file, lockPath, undefined, undefined, 'its lock keeps changing hands');
      const held = await StateFile.#holder(file, lockPath);
      if (held === undefined) continue; // released meanwhile: try to create it again
      if (await StateFile.#takeOver(lockPath, held, text, lock.token)) break;
    }
    const opened = new StateFile(file, lock);
    await opened.#removeLeftovers();
    return opened;
  }

  /**
   * The current lock, when it is stale (its process is gone from this host); undefined when
   * there is no lock any more. Throws `StateFileLockedError` when it is held.
   */
  static async #holder(file: string, lockPath: string): Promise<string | undefined> {
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
        throw new StateFileLockedError(file, lockPath, undefined, undefined, 'its lock names no process (a holder killed while taking it?); delete the lock if no sandtrace is using the file');
      }
      if (info.host !== hostname()) {
        throw new StateFileLockedError(file, lockPath, info.pid, info.host, `locked by process ${info.pid} on host ${info.host}, which this host cannot check; delete the lock if that process is gone`);
      }
      if (processRuns(info.pid)) {
        throw new StateFileLockedError(file, lockPath, info.pid, info.host, `locked by process ${info.pid} on this host since ${info.acquiredAt || 'an unknown time'}; wait for it to finish`);
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

  /** Removes `FILE.<pid>.<random>.tmp` files (here and for the lock) whose writer no longer runs. */
  async #removeLeftovers(): Promise<void> {
    const name = basename(this.path).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const pattern = new RegExp(`^${name}(?:\\.lock)?\\.(\\d+)\\.[0-9a-f]+\\.tmp$`);
    const dir = dirname(this.path);
    for (const entry of await readdir(dir)) {
      const m = pattern.exec(entry);
      if (m !== null && Number(m[1]) !== process.pid && !processRuns(Number(m[1]))) await unlinkIfThere(join(dir, entry));
    }
  }

  /** Whether `release()` was called. */
  get released(): boolean {
    return this.#released;
  }

  /**
   * The last committed state; undefined when the file does not exist. Rejects with
   * `StateFileCorruptError` (empty, cut short, not a state file) or `StateFileVersionError`
   * (a format this sandtrace does not read). The spans themselves are checked by the run
   * that resumes them (`MALFORMED`).
   */
  async read(): Promise<PersistedExecution | undefined> {
    this.#check();
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return undefined;
      throw e;
    }
    return parseStateText(this.path, text);
  }

  /** Replaces the state file with `state`, atomically and durably. */
  async commit(state: PersistedExecution): Promise<void> {
    this.#check();
    const envelope: StateEnvelope = { sandtraceState: STATE_FORMAT, writtenAt: new Date().toISOString(), execution: state };
    const tmp = `${this.path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    await writeNewFile(tmp, JSON.stringify(envelope));
    try {
      await rename(tmp, this.path);
    } catch (e) {
      await unlinkIfThere(tmp);
      throw e;
    }
    await syncDirectory(dirname(this.path));
  }

  /** Frees the lock (if it is still ours). Idempotent. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    const text = await readLockText(this.lockPath);
    if (text !== undefined && parseLock(text)?.token === this.lock.token) await unlinkIfThere(this.lockPath);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }

  #check(): void {
    if (this.#released) throw new Error(`state file ${this.path} was released; open it again`);
  }
}

/** A state file's text as the execution it holds; `path` names the file in errors. */
function parseStateText(path: string, text: string): PersistedExecution {
  if (text.length === 0) throw new StateFileCorruptError(path, 'it is empty (a write to it was cut short?)');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    throw new StateFileCorruptError(path, `it is not complete JSON (${text.length} bytes; cut short while being written?): ${e.message}`);
  }
  if (!isObject(v)) throw new StateFileCorruptError(path, 'it is not a sandtrace state file (not a JSON object)');
  if ('sandtraceState' in v) {
    const version = v.sandtraceState;
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) throw new StateFileCorruptError(path, `its format version is ${JSON.stringify(version)}, not a positive integer`);
    if (!READABLE_STATE_FORMATS.includes(version)) throw new StateFileVersionError(path, version);
    if (!isExecution(v.execution)) throw new StateFileCorruptError(path, 'its execution is missing or has no metadata and spans');
    return v.execution as unknown as PersistedExecution;
  }
  if (isExecution(v)) return v as unknown as PersistedExecution; // legacy: the bare state, before the envelope
  throw new StateFileCorruptError(path, 'it is not a sandtrace state file (neither a versioned envelope nor legacy state with metadata and spans)');
}

const isExecution = (v: unknown): v is Record<string, unknown> => isObject(v) && isObject(v.metadata) && isObject(v.spans);
