/**
 * Host-wide interning of callsites by content, shared by many receivers: a thousand executions
 * of the same guest keep one copy of each callsite's strings, and one cached interest per
 * collector.
 */
import type { CallsiteData, Level } from '../../shared/records.js';
import type { Collector } from '../collectors/collector.js';
import { ReceiveError } from './receive-error.js';

export type Interest = 'always' | 'sometimes' | 'never';

/** An interned callsite. `id` is host-wide: the same content gets the same id in every execution. */
export interface CallsiteMeta {
  readonly id: number;
  readonly kind: 'span' | 'event';
  readonly name: string;
  readonly target: string;
  readonly level: Level;
  readonly modulePath?: string;
  readonly file?: string;
  readonly line?: number;
  readonly fields: readonly string[];
}

function contentKey(d: CallsiteData): string {
  return `${d.kind}\0${d.level}\0${d.name}\0${d.target}\0${d.modulePath ?? ''}\0${d.file ?? ''}\0${d.line ?? ''}\0${d.fields.join('\x01')}`;
}

/**
 * @example
 * const registry = new CallsiteRegistry();
 * const a = registry.intern({ kind: 'event', name: 'hi', target: 't', level: 'info', fields: ['message'] });
 * const b = registry.intern({ ...same content });
 * a === b; // true
 */
export class CallsiteRegistry {
  /**
   * @param maxSize distinct callsites held at most (default 100,000): guests that invent a new
   * callsite in every execution cannot grow the host without bound.
   */
  constructor(readonly maxSize = 100_000) {}

  private readonly byKey = new Map<string, CallsiteMeta>();
  private readonly byId: CallsiteMeta[] = [];
  private readonly interests = new WeakMap<Collector, Interest[]>();

  /** Number of distinct callsites held. */
  get size(): number {
    return this.byId.length;
  }

  /** Returns the interned callsite for this content, creating it on first sight. */
  intern(data: CallsiteData): CallsiteMeta {
    const key = contentKey(data);
    const found = this.byKey.get(key);
    if (found !== undefined) return found;
    if (this.byId.length >= this.maxSize) throw new ReceiveError('LIMIT_EXCEEDED', `callsite registry is full (${this.maxSize} distinct callsites); '${data.name}' not interned`);
    const meta: CallsiteMeta = Object.freeze({
      id: this.byId.length + 1,
      kind: data.kind,
      name: data.name,
      target: data.target,
      level: data.level,
      ...(data.modulePath !== undefined && { modulePath: data.modulePath }),
      ...(data.file !== undefined && { file: data.file }),
      ...(data.line !== undefined && { line: data.line }),
      fields: Object.freeze(data.fields.slice()),
    });
    this.byKey.set(key, meta);
    this.byId.push(meta);
    return meta;
  }

  get(id: number): CallsiteMeta | undefined {
    return this.byId[id - 1];
  }

  /** The collector's interest in a callsite, asked once and cached per collector. */
  interest(collector: Collector, meta: CallsiteMeta): Interest {
    let cache = this.interests.get(collector);
    if (cache === undefined) {
      cache = [];
      this.interests.set(collector, cache);
    }
    let interest = cache[meta.id];
    if (interest === undefined) {
      interest = collector.registerCallsite(meta);
      cache[meta.id] = interest;
    }
    return interest;
  }
}

/** The registry receivers share unless given their own. */
export const defaultCallsiteRegistry = new CallsiteRegistry();
