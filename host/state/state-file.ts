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
 * The lock. `FILE.lock` is a lock file (lock-file.ts: O_EXCL, pid, host name and token, stale
 * locks of processes gone from this host taken over), held until `release()`. One held by a
 * running process, or by a process on another host, is refused with `StateFileLockedError`.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rename } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { PersistedExecution } from '../sandbox/execution.js';
import { errnoCode, LockFile, LockHeldError, processRuns, syncDirectory, unlinkIfThere, writeNewFile } from './lock-file.js';

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

  private constructor(
    /** The state file, as an absolute path. */
    readonly path: string,
    private readonly lock: LockFile,
  ) {
    this.lockPath = lock.path;
  }

  /**
   * Locks the state file at `path` (which need not exist yet) for this process. Rejects with
   * `StateFileLockedError` when another live process holds it. Temporary files that killed
   * writers left next to it are removed.
   */
  static async open(path: string): Promise<StateFile> {
    const file = resolve(path);
    let lock: LockFile;
    try {
      lock = await LockFile.acquire(`${file}.lock`);
    } catch (e) {
      if (!(e instanceof LockHeldError)) throw e;
      throw new StateFileLockedError(file, e.lockPath, e.pid, e.host, e.detail);
    }
    const opened = new StateFile(file, lock);
    await opened.#removeLeftovers();
    return opened;
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
    return this.lock.released;
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
    await this.lock.release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }

  #check(): void {
    if (this.lock.released) throw new Error(`state file ${this.path} was released; open it again`);
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

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isExecution = (v: unknown): v is Record<string, unknown> => isObject(v) && isObject(v.metadata) && isObject(v.spans);
