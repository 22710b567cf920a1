/**
 * Builds the Rust test guest (test/guests-rust) with Debian's toolchain, offline, once per
 * process; the target directory is kept in the temp directory, so later runs only relink when
 * something changed (a no-op build takes well under a second).
 *
 * Without Debian's rustc, cargo, wasm32 standard library or packaged `tracing` crates, `skip`
 * says what is missing and how to install it (`.ci/run` installs them).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const RUST_GUEST_DIR = fileURLToPath(new URL('../../../test/guests-rust', import.meta.url));
export const RUST_TARGET_DIR = join(tmpdir(), 'sandtrace-rust-target');
const RUSTC = '/usr/bin/rustc';
const CARGO = '/usr/bin/cargo';
const REGISTRY = '/usr/share/cargo/registry';
const INSTALL = 'apt-get install -y rustc cargo libstd-rust-dev-wasm32 librust-tracing-dev librust-tracing-core-dev';

/** What is missing to build Rust guests, or undefined when everything is there. */
export function rustToolchainMissing(): string | undefined {
  if (process.env.SANDTRACE_SKIP_RUST === '1') return 'Rust guest tests skipped: SANDTRACE_SKIP_RUST=1';
  const missing: string[] = [];
  if (!existsSync(RUSTC)) missing.push('rustc');
  if (!existsSync(CARGO)) missing.push('cargo');
  if (!existsSync('/usr/lib/rustlib/wasm32-unknown-unknown')) missing.push('libstd-rust-dev-wasm32');
  const crates = existsSync(REGISTRY) ? readdirSync(REGISTRY) : [];
  if (!crates.some((c) => c.startsWith('tracing-0.1.'))) missing.push('librust-tracing-dev');
  if (!crates.some((c) => c.startsWith('tracing-core-0.1.'))) missing.push('librust-tracing-core-dev');
  return missing.length === 0 ? undefined : `Rust guest tests skipped: Debian's ${missing.join(', ')} not installed (${INSTALL})`;
}

let built: Promise<Uint8Array<ArrayBuffer>> | undefined;

/** The test guest's module bytes (built on first use in this process). */
export function rustGuest(): Promise<Uint8Array<ArrayBuffer>> {
  built ??= (async () => {
    await promisify(execFile)(CARGO, ['build', '--release', '--offline', '--quiet', '--target-dir', RUST_TARGET_DIR], {
      cwd: RUST_GUEST_DIR,
      // Debian's rustc has the wasm32 standard library; a rustup one first on PATH may not.
      env: { ...process.env, RUSTC, CARGO_TERM_COLOR: 'never' },
      maxBuffer: 16 << 20,
    });
    return new Uint8Array(readFileSync(join(RUST_TARGET_DIR, 'wasm32-unknown-unknown', 'release', 'sandtrace_test_guest.wasm')));
  })();
  return built;
}
