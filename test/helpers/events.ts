/** Terse builders for event scripts used across the receiver tests. */
import type { Level, NewCallSiteEvent, TracingEvent, Values } from '../../shared/records.js';

export function spanSite(id: number, name: string, fields: string[] = [], level: Level = 'info', target = 'test'): NewCallSiteEvent {
  return { type: 'newCallSite', id, kind: 'span', name, target, level, fields };
}

export function eventSite(id: number, name: string, fields: string[] = ['message'], level: Level = 'info', target = 'test'): NewCallSiteEvent {
  return { type: 'newCallSite', id, kind: 'event', name, target, level, fields };
}

export function newSpan(id: number, metadataId: number, values: Values = [], parentId?: number | null, time?: bigint): TracingEvent {
  const e: TracingEvent = { type: 'newSpan', id, metadataId, values };
  if (parentId !== undefined) e.parentId = parentId;
  if (time !== undefined) e.time = time;
  return e;
}

export function newEvent(metadataId: number, values: Values = [], parentId?: number | null, time?: bigint): TracingEvent {
  const e: TracingEvent = { type: 'newEvent', metadataId, values };
  if (parentId !== undefined) e.parentId = parentId;
  if (time !== undefined) e.time = time;
  return e;
}

export const enter = (id: number, time?: bigint): TracingEvent => (time === undefined ? { type: 'spanEntered', id } : { type: 'spanEntered', id, time });
export const exit = (id: number, time?: bigint): TracingEvent => (time === undefined ? { type: 'spanExited', id } : { type: 'spanExited', id, time });
export const drop = (id: number, time?: bigint): TracingEvent => (time === undefined ? { type: 'spanDropped', id } : { type: 'spanDropped', id, time });
export const clone = (id: number): TracingEvent => ({ type: 'spanCloned', id });
export const record = (id: number, values: Values): TracingEvent => ({ type: 'valuesRecorded', id, values });
export const follows = (id: number, from: number): TracingEvent => ({ type: 'followsFrom', id, followsFrom: from });

/** Deterministic PRNG (mulberry32) so failures reproduce from the printed seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
