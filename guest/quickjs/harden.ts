/**
 * Freezes a QuickJS realm (a context) so that code running in it later cannot change what it
 * finds there. Meant for the SDK realm: one context per runtime holds the SDK, and every guest,
 * each in a fresh context of its own, can reach into it (`tracing.info.constructor` is the SDK
 * realm's `Function`, which runs code there). Once the realm is hardened, a guest can still run
 * code in it, but cannot patch a built-in, a prototype or an SDK object for the guests after it.
 *
 * Module-level bindings are not objects and are not affected: the SDK's own state keeps
 * changing as before. Nothing here may use Node APIs.
 */
import * as hardenModule from './harden.js';

// Taken at load, before anything else runs in the realm.
const freeze = Object.freeze;
const getPrototypeOf = Object.getPrototypeOf;
const getOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
const defineProperty = Object.defineProperty;
const isExtensible = Object.isExtensible;
const ownKeys = Reflect.ownKeys;
const isView = ArrayBuffer.isView;
const toText = String;
const uncurry = (fn: Function) => Function.prototype.call.bind(fn) as (self: unknown, ...args: unknown[]) => unknown;
const getter = (proto: object, key: PropertyKey) => uncurry(getOwnPropertyDescriptor(proto, key)!.get!);

/**
 * Accessors whose setter writes engine state rather than a property, so that freezing leaves them
 * settable: quickjs-ng's `Error.prepareStackTrace` (a function the engine calls for every error the
 * realm creates: one guest could plant one that runs in the next guest's run) and
 * `Error.stackTraceLimit`. `hardenRealm` turns each into a read-only data property with its
 * current value.
 */
const ENGINE_STATE_ACCESSORS: ReadonlyArray<readonly [object, PropertyKey]> = [
  [Error, 'prepareStackTrace'],
  [Error, 'stackTraceLimit'],
];

/**
 * Setters known to write nothing but an own property of their receiver (which freezing refuses),
 * or to throw. The walk refuses any other setter: it cannot tell what one writes.
 */
function harmlessSetters(): Set<unknown> {
  const setterOf = (o: object | undefined, key: PropertyKey) => (o === undefined ? undefined : getOwnPropertyDescriptor(o, key)?.set);
  const iteratorPrototype = (globalThis as { Iterator?: { prototype: object } }).Iterator?.prototype;
  return new Set([
    setterOf(Object.prototype, '__proto__'),
    setterOf(Function.prototype, 'caller'), // %ThrowTypeError%
    setterOf(Function.prototype, 'arguments'),
    setterOf(iteratorPrototype, 'constructor'),
    setterOf(iteratorPrototype, Symbol.toStringTag),
  ]);
}
const HARMLESS_SETTERS = harmlessSetters();

/**
 * Objects that keep state outside their properties: freezing them changes nothing (a frozen Map
 * still takes `set`). Recognised by their prototype chain, then confirmed by a call that throws a
 * TypeError without the internal slot (throwing is slow in QuickJS: only the candidates pay).
 */
const SLOT_KINDS: ReadonlyArray<readonly [string, Function, (o: object) => unknown]> = [
  ['Map', Map, getter(Map.prototype, 'size')],
  ['Set', Set, getter(Set.prototype, 'size')],
  ['WeakMap', WeakMap, ((has) => (o: object) => has(o, {}))(uncurry(WeakMap.prototype.has))],
  ['WeakSet', WeakSet, ((has) => (o: object) => has(o, {}))(uncurry(WeakSet.prototype.has))],
  ['Date', Date, uncurry(Date.prototype.getTime)],
  ['ArrayBuffer', ArrayBuffer, getter(ArrayBuffer.prototype, 'byteLength')],
  ['SharedArrayBuffer', SharedArrayBuffer, getter(SharedArrayBuffer.prototype, 'byteLength')],
  ['WeakRef', WeakRef, uncurry(WeakRef.prototype.deref)],
  ['FinalizationRegistry', FinalizationRegistry, ((unregister) => (o: object) => unregister(o, {}))(uncurry(FinalizationRegistry.prototype.unregister))],
];

/** The kind of internal state of `o` that freezing cannot protect, or undefined. */
function mutableSlots(o: object): string | undefined {
  if (typeof o === 'function') return undefined; // a function's state is its properties
  if (isView(o)) return 'typed array or DataView';
  for (let i = 0; i < SLOT_KINDS.length; i++) {
    const [kind, Kind, check] = SLOT_KINDS[i]!;
    if (!(o instanceof Kind)) continue;
    try {
      check(o);
      return kind;
    } catch (e) {
      if (!(e instanceof TypeError)) throw e; // TypeError: it only inherits from the kind's prototype
    }
  }
  return undefined;
}

/** A module namespace object: its bindings are the module's, and cannot be frozen from outside. */
function isModuleNamespace(o: object): boolean {
  return getPrototypeOf(o) === null && !isExtensible(o) && getOwnPropertyDescriptor(o, Symbol.toStringTag)?.value === 'Module';
}

/**
 * Intrinsics that no own-property path from `globalThis` leads to (the constructors of async and
 * generator functions, the iterator prototypes), reached through instances.
 */
function hiddenIntrinsics(): object[] {
  const out: object[] = [
    getPrototypeOf(async function () {}),
    getPrototypeOf(function* () {}),
    getPrototypeOf(async function* () {}),
    getPrototypeOf([][Symbol.iterator]()),
    getPrototypeOf(new Map()[Symbol.iterator]()),
    getPrototypeOf(new Set()[Symbol.iterator]()),
    getPrototypeOf(''[Symbol.iterator]()),
    getPrototypeOf(/x/[Symbol.matchAll]('')),
  ];
  const values = [][Symbol.iterator]() as { map?: (f: (x: unknown) => unknown) => object };
  if (typeof values.map === 'function') out.push(getPrototypeOf(values.map((x) => x))); // iterator helpers
  const Iter = (globalThis as { Iterator?: { from?: (o: object) => object } }).Iterator;
  if (typeof Iter?.from === 'function') out.push(getPrototypeOf(Iter.from({ next: () => ({ done: true, value: undefined }) })));
  return out;
}

/**
 * Deep-freezes everything reachable from this realm's `globalThis`, from its hidden intrinsics and
 * from `roots`: through own properties (string and symbol keys, values, getters and setters) and
 * prototypes. Module namespaces among them are walked but not frozen (their exports are). Run it
 * in the realm to harden (it freezes the realm it runs in), after the SDK is loaded and the host
 * took its hooks, before any guest runs. Returns how many objects it froze.
 *
 * Before the walk, quickjs-ng's `Error.prepareStackTrace` and `Error.stackTraceLimit`, whose
 * setters write engine state, become read-only data properties. It throws a TypeError naming the
 * path when it reaches what freezing would not protect, so that the realm would not be hardened:
 * an object whose state lives outside its properties (a typed array, an ArrayBuffer, a Map, a Set,
 * a Date, …), or a setter it does not know to write only to its receiver.
 *
 * @example
 * // In the SDK context, once:
 * import * as sdk from 'sandtrace/guest/quickjs/sdk.js';
 * import { hardenRealm } from 'sandtrace/guest/quickjs/harden.js';
 * const hooks = sdk.takeHostHooks();
 * hardenRealm(sdk.realmRoots());
 */
export function hardenRealm(roots: readonly object[]): number {
  for (const [owner, key] of ENGINE_STATE_ACCESSORS) {
    const d = getOwnPropertyDescriptor(owner, key);
    if (d?.set === undefined) continue;
    defineProperty(owner, key, { value: d.get === undefined ? undefined : uncurry(d.get)(owner), writable: false, enumerable: d.enumerable ?? false, configurable: false });
  }
  const seen = new Set<object>();
  // The objects to visit; for each, the one it was reached from, and through which key and
  // which part of the property (kept as is: the path is spelled out only for an error).
  const objects: object[] = [];
  const from: number[] = [];
  const via: Array<PropertyKey | undefined> = [];
  const part: Step[] = [];
  const visit = (o: unknown, parent: number, key: PropertyKey | undefined, step: Step): void => {
    if ((typeof o !== 'object' && typeof o !== 'function') || o === null || seen.has(o)) return;
    seen.add(o);
    objects.push(o);
    from.push(parent);
    via.push(key);
    part.push(step);
  };
  visit(globalThis, -1, 'globalThis', 'root');
  visit(hardenModule, -1, 'harden.js', 'root');
  for (let i = 0; i < roots.length; i++) visit(roots[i], -1, `roots[${i}]`, 'root');
  const hidden = hiddenIntrinsics();
  for (let i = 0; i < hidden.length; i++) visit(hidden[i], -1, `hidden intrinsic ${i}`, 'root');

  let frozen = 0;
  for (let i = 0; i < objects.length; i++) {
    const o = objects[i]!;
    if (!isModuleNamespace(o)) {
      const slots = mutableSlots(o);
      if (slots !== undefined) throw new TypeError(`hardenRealm: ${pathOf(i, from, via, part)} is a ${slots}, which freezing does not protect`);
      freeze(o);
      frozen++;
    }
    visit(getPrototypeOf(o), i, undefined, 'prototype');
    const keys = ownKeys(o);
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k]!;
      const d = getOwnPropertyDescriptor(o, key)!;
      if ('value' in d) visit(d.value, i, key, 'value');
      else {
        if (d.set !== undefined && !HARMLESS_SETTERS.has(d.set))
          throw new TypeError(`hardenRealm: ${pathOf(i, from, via, part)}${describeKey(key)} has a setter, which freezing does not disarm`);
        visit(d.get, i, key, 'get');
        visit(d.set, i, key, 'set');
      }
    }
  }
  return frozen;
}

/** How the walk reached an object: as a root, as a prototype, or as a property's value, getter or setter. */
type Step = 'root' | 'prototype' | 'value' | 'get' | 'set';

/** `globalThis.Map.prototype`, say: the way the walk first reached object `i`. */
function pathOf(i: number, from: readonly number[], via: ReadonlyArray<PropertyKey | undefined>, part: readonly Step[]): string {
  let path = '';
  for (let j = i; j >= 0; j = from[j]!) {
    const key = via[j]!;
    const step = part[j]!;
    path = (step === 'root' ? toText(key) : step === 'prototype' ? '.[[Prototype]]' : step === 'value' ? describeKey(key) : `${describeKey(key)}(${step})`) + path;
  }
  return path;
}

function describeKey(key: PropertyKey): string {
  return typeof key === 'symbol' ? `[${toText(key)}]` : `.${toText(key)}`;
}
