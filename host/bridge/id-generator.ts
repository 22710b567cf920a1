/**
 * The OpenTelemetry id generator that lets the bridge choose span ids (see SandtraceIdGenerator),
 * and the one-shot slot through which the bridge tells it which ids the next span gets.
 */

/** The ids the bridge asks for, for the one `startSpan` call it is about to make. */
export interface NextIds {
  traceId: string | undefined;
  spanId: string | undefined;
}

/**
 * The one-shot slot, on the global object under a registered symbol so that a generator and a
 * bridge loaded from different copies of this module (bundled and unbundled) still meet.
 */
const SLOT = Symbol.for('sandtrace.opentelemetry.next-ids');
type SlotHolder = { [SLOT]?: NextIds };
export const slot = (): NextIds => ((globalThis as SlotHolder)[SLOT] ??= { traceId: undefined, spanId: undefined });

const randomBytes = new Uint8Array(16);
function randomHex(n: 8 | 16): string {
  const bytes = randomBytes.subarray(0, n);
  do crypto.getRandomValues(bytes);
  while (bytes.every((b) => b === 0));
  return hexOf(bytes);
}

/**
 * An OpenTelemetry `IdGenerator` (the interface of @opentelemetry/sdk-trace-base, implemented
 * structurally: this module does not depend on the SDK) that gives the `OpenTelemetryCollector`
 * the span and trace ids it asks for, and random ids to every other span. Install it on the
 * tracer provider the bridge's tracer comes from; without it, guest spans get random ids, a
 * replayed step is not recognisable as a replay, and a span carried between executions is
 * exported under a new id while its children exported by earlier executions point at the old
 * one (counted in `OpenTelemetryCollector.idsNotHonoured`).
 *
 * @example
 * import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
 * import { OpenTelemetryCollector, SandtraceIdGenerator } from 'sandtrace/opentelemetry';
 *
 * const provider = new BasicTracerProvider({ idGenerator: new SandtraceIdGenerator(), spanProcessors: [new BatchSpanProcessor(exporter)] });
 * // NodeTracerProvider takes the same option; NodeSDK: new NodeSDK({ idGenerator: new SandtraceIdGenerator(), … })
 * const collector = new OpenTelemetryCollector({ tracer: provider.getTracer('sandtrace') });
 * const step = await runQuickJS(source, { collector, state, persist: true, executionId: 'order-42/step-2' });
 */
export class SandtraceIdGenerator {
  /** A trace id of 32 lowercase hex characters: the one the bridge asked for, else random. */
  generateTraceId(): string {
    const next = slot();
    const id = next.traceId;
    if (id === undefined) return randomHex(16);
    next.traceId = undefined;
    return id;
  }

  /** A span id of 16 lowercase hex characters: the one the bridge asked for, else random. */
  generateSpanId(): string {
    const next = slot();
    const id = next.spanId;
    if (id === undefined) return randomHex(8);
    next.spanId = undefined;
    return id;
  }
}
const HEX = '0123456789abcdef';

/** Lowercase hex, as OpenTelemetry writes ids. */
export function hexOf(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]! >> 4]! + HEX[bytes[i]! & 15]!;
  return s;
}
