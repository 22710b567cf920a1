/**
 * One callsite registry per tenant. A registry is bounded (a guest that invents callsites fills
 * it, and then its new callsites are refused); with a registry of its own, a tenant that fills
 * one only refuses its own. Persisted state names callsites by content, so a tenant whose
 * registry was let go (the least recently used, past MAX_TENANTS) just interns them again.
 */
import { CallsiteRegistry, defaultCallsiteRegistry } from '../receiver/callsite-registry.js';

/** Registries kept at most; past it the least recently used tenant's goes (runs holding it keep it). */
const MAX_TENANTS = 1024;
const registries = new Map<string, CallsiteRegistry>();

/** The registry a run of `tenant` interns into: the process-wide one when there is no tenant. */
export function registryFor(tenant: string | undefined): CallsiteRegistry {
  if (tenant === undefined) return defaultCallsiteRegistry;
  let registry = registries.get(tenant);
  if (registry === undefined) {
    if (registries.size >= MAX_TENANTS) registries.delete(registries.keys().next().value!);
    registry = new CallsiteRegistry();
  } else {
    registries.delete(tenant); // refresh its place in the LRU order
  }
  registries.set(tenant, registry);
  return registry;
}
