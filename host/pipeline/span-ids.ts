/**
 * Deterministic trace and span ids for the spans of an execution.
 *
 * A workflow engine that re-runs a step (it lost its checkpoint, or it replays) runs the same
 * execution again, with the same execution id. Deriving each span's id from the trace, the
 * execution id and the guest's span id makes the re-run emit the same ids, so a backend (and the
 * local store) can deduplicate instead of showing the step twice.
 *
 * The span id is a keyed permutation of the guest span id: a four-round Feistel network over 64
 * bits whose round keys are hashed from the execution id and mixed with the trace id. A Feistel
 * network is a bijection whatever its round function, so two spans of one execution never share
 * an id; spans of different executions collide with probability about 2^-64 per pair, as random
 * ids do. The ids are not secret and not meant to be: they identify, they do not authenticate.
 */

/** Round keys for one (trace, execution) pair; computed once and reused for all its spans. */
export class SpanIdKey {
  private readonly k = new Uint32Array(4);
  constructor(
    readonly traceId: Uint8Array,
    readonly executionId: string,
  ) {
    const t = words(traceId);
    for (let i = 0; i < 4; i++) this.k[i] = hash32(executionId, 0x5eed0001 + i) ^ t[i]!;
  }

  /** The 8-byte span id of guest span `guestSpanId` (0 for the runner's execution span). */
  spanId(guestSpanId: number): Uint8Array {
    const k = this.k;
    let l = k[0]! ^ 0x9e3779b9;
    let r = guestSpanId >>> 0;
    let h = Math.floor(guestSpanId / 0x1_0000_0000) >>> 0; // ids above 2^32 (never from the SDKs) still differ
    for (let i = 0; i < 4; i++) {
      const f = fmix32((r ^ k[i]! ^ h) >>> 0);
      const next = (l ^ f) >>> 0;
      l = r;
      r = next;
      h = 0;
    }
    const out = new Uint8Array(8);
    writeU32(out, 0, l);
    writeU32(out, 4, r);
    if (l === 0 && r === 0) out[7] = 1; // the all-zero id is invalid in OTLP
    return out;
  }
}

/** A 16-byte trace id derived from an execution id (for an execution that starts a trace). */
export function traceIdFor(executionId: string): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 4; i++) writeU32(out, i * 4, hash32(executionId, 0x7eace001 + i));
  if (out.every((b) => b === 0)) out[15] = 1;
  return out;
}

function words(id: Uint8Array): number[] {
  const w = [0, 0, 0, 0];
  for (let i = 0; i < id.length && i < 16; i++) w[i >> 2] = ((w[i >> 2]! << 8) | id[i]!) >>> 0;
  return w;
}

function writeU32(out: Uint8Array, at: number, v: number): void {
  out[at] = v >>> 24;
  out[at + 1] = (v >>> 16) & 0xff;
  out[at + 2] = (v >>> 8) & 0xff;
  out[at + 3] = v & 0xff;
}

/** MurmurHash3's 32-bit finalizer: every input bit affects every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** MurmurHash3 (x86, 32-bit) over the string's UTF-16 code units. */
function hash32(s: string, seed: number): number {
  let h = seed | 0;
  for (let i = 0; i < s.length; i++) {
    let k = Math.imul(s.charCodeAt(i), 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  return fmix32((h ^ s.length) >>> 0);
}
