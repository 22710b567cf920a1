/**
 * Hostile persisted state: files that passed the old shape checks but failed, recursed or looped
 * when a receiver applied them. Each case names what it attacks and what the refusal must say.
 */
import type { PersistedExecution } from '../../host/sandbox/execution.js';
import type { PersistedSpan } from '../../host/receiver/persisted-state.js';

export interface HostileState {
  /** What the state attacks. */
  name: string;
  state: PersistedExecution;
  /** The refusal's message must match this. */
  problem: RegExp;
}

/** A well-formed carried span (guest id `id`) of callsite `work`. */
export function carriedSpan(id: number, extra: Partial<PersistedSpan> = {}): PersistedSpan {
  return {
    id,
    callsite: { kind: 'span', name: 'work', target: 'hostile', level: 'info', fields: ['n'] },
    refs: 1,
    start: '1000',
    values: [['n', 1]],
    follows: [],
    ...extra,
  };
}

function state(spans: PersistedSpan[], stack?: number[]): PersistedExecution {
  return { metadata: { version: 1, callsites: [] }, spans: stack === undefined ? { version: 2, spans } : { version: 2, spans, stack } };
}

/** A chain of `n` spans, each the parent of the next. */
function chain(n: number): PersistedSpan[] {
  return Array.from({ length: n }, (_, i) => carriedSpan(i + 1, i === 0 ? {} : { parent: i }));
}

/** An array nested `n` deep. */
function nested(n: number): unknown {
  let v: unknown = [];
  for (let i = 0; i < n; i++) v = [v];
  return v;
}

export const hostileStates: HostileState[] = [
  { name: 'values that are not [name, value] pairs', state: state([carriedSpan(1, { values: ['n', 1] as never })]), problem: /values\[0\]: must be a \[name, value\] pair/ },
  { name: 'a bigint value that is not a decimal integer', state: state([carriedSpan(1, { values: [['n', { bigint: '12 apples' }]] })]), problem: /'n' is not a persisted value/ },
  { name: 'a value of an unknown tagged form', state: state([carriedSpan(1, { values: [['n', { float: 'lots' } as never]] })]), problem: /'n' is not a persisted value/ },
  { name: 'a parent chain 10,000 deep', state: state(chain(10_000)), problem: /parent chain \d+ deep; maxDepth is 128/ },
  { name: 'a parent cycle', state: state([carriedSpan(1, { parent: 2 }), carriedSpan(2, { parent: 1 })]), problem: /parent cycle/ },
  { name: 'a span that is its own parent', state: state([carriedSpan(1, { parent: 1 })]), problem: /parent cycle/ },
  { name: 'entered: 1e9', state: state([carriedSpan(1, { entered: 1e9 })], [1]), problem: /entered must be an integer from 0 to 10000/ },
  { name: 'entered without matching stack entries', state: state([carriedSpan(1, { entered: 3 })], [1]), problem: /entered 3 times, but on the stack 1 times/ },
  { name: 'a stack naming a span that is not carried', state: state([carriedSpan(1)], [7]), problem: /span 7 is not among the spans/ },
  { name: 'a stack longer than maxEntered', state: state([carriedSpan(1, { entered: 20_000 })], new Array<number>(20_000).fill(1)), problem: /20000 entries; at most 10000/ },
  { name: 'absurd refs', state: state([carriedSpan(1, { refs: Number.MAX_SAFE_INTEGER })]), problem: /refs must be an integer from 1 to/ },
  { name: 'duplicate span ids', state: state([carriedSpan(1), carriedSpan(1)]), problem: /duplicate id 1/ },
  { name: 'a collector snapshot nested 10,000 deep', state: state([carriedSpan(1, { collector: { deep: nested(10_000) } })]), problem: /collector: nested deeper than 32/ },
  { name: 'follows that are not span ids', state: state([carriedSpan(1, { follows: ['x'] as never })]), problem: /follows must be span ids/ },
  { name: 'more carried spans than maxOpenSpans', state: state(Array.from({ length: 10_001 }, (_, i) => carriedSpan(i + 1))), problem: /10001 spans; at most 10000/ },
  {
    name: 'more callsites than maxCallsites',
    state: { metadata: { version: 1, callsites: Array.from({ length: 1_001 }, (_, i) => ({ id: i, kind: 'event' as const, name: `e${i}`, target: 't', level: 'info' as const, fields: [] })) }, spans: { version: 1, spans: [] } },
    problem: /1001 callsites; at most 1000/,
  },
];
