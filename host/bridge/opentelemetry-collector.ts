/**
 * Sends guest spans into the host's existing OpenTelemetry JS setup through @opentelemetry/api:
 * a guest's root spans become children of the host span active when the guest runs, with the
 * guest's own start and end times, attributes, events, links and status. The host's SDK then
 * exports them like any other span.
 */
import { ROOT_CONTEXT, SpanStatusCode, context, trace, type Attributes, type AttributeValue, type Context, type HrTime, type Link, type Span, type Tracer } from '@opentelemetry/api';
import type { ErrorValue, Value, Values } from '../../shared/records.js';
import type { Collector, EventInfo, ForcedClose, NewSpanInfo } from '../collectors/collector.js';
import { formatError, formatValue, splitMessage } from '../collectors/format-value.js';
import { assignValues, isErrorValue } from '../../shared/values.js';
import { LevelFilteredCollector } from '../collectors/level-filter.js';
import type { Level } from '../../shared/records.js';

export interface OpenTelemetryCollectorOptions {
  /** The tracer to create spans with (default: `trace.getTracer('sandtrace')` from the global provider). */
  tracer?: Tracer;
  /** Most verbose level forwarded (default: info). */
  level?: Level;
}

interface Live {
  span: Span;
  values: Values;
}

/** Nanoseconds since the epoch as OpenTelemetry's [seconds, nanoseconds]. */
function hrTime(ns: bigint): HrTime {
  return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
}

function attributeValue(v: Value): AttributeValue | undefined {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return v;
    case 'bigint':
      return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  }
  if (v instanceof Uint8Array || 'debug' in v) return formatValue(v);
  if ('error' in v) return formatError(v.error);
  return undefined; // not recorded yet
}

function attributes(values: Values): Attributes {
  const out: Attributes = {};
  for (const [k, v] of values) {
    const a = attributeValue(v);
    if (a !== undefined) out[k] = a;
  }
  return out;
}

/**
 * @example
 * // inside a request handler traced by the host's OpenTelemetry SDK:
 * const collector = new OpenTelemetryCollector();
 * await runQuickJS(pluginSource, { collector }); // plugin spans appear under the request span
 */
export class OpenTelemetryCollector extends LevelFilteredCollector implements Collector {
  private readonly tracer: Tracer;
  private readonly live = new Map<number, Live>();
  private nextId = 1;
  /** Guest events outside any span (OpenTelemetry traces have nowhere to put them). */
  unattachedEvents = 0;

  constructor(options: OpenTelemetryCollectorOptions = {}) {
    super(options.level ?? 'info');
    this.tracer = options.tracer ?? trace.getTracer('sandtrace');
  }

  newSpan(info: NewSpanInfo): number {
    let parent: Context;
    const parentSpan = typeof info.parent === 'number' ? this.live.get(info.parent)?.span : undefined;
    if (parentSpan !== undefined) parent = trace.setSpan(ROOT_CONTEXT, parentSpan);
    else if (info.remoteParent !== undefined) {
      parent = trace.setSpanContext(ROOT_CONTEXT, { traceId: info.remoteParent.traceId, spanId: info.remoteParent.spanId, traceFlags: info.remoteParent.traceFlags, isRemote: true });
    } else if (info.parent === null) parent = ROOT_CONTEXT;
    else parent = context.active(); // the host span the guest runs under
    const links: Link[] = (info.links ?? []).map((l) => ({ context: { traceId: l.traceId, spanId: l.spanId, traceFlags: l.traceFlags, isRemote: true } }));
    const attrs = attributes(info.values);
    if (info.executionId !== undefined) attrs['sandtrace.execution.id'] = info.executionId;
    const span = this.tracer.startSpan(info.meta.name, { startTime: hrTime(info.time), attributes: attrs, links }, parent);
    const id = this.nextId++;
    this.live.set(id, { span, values: info.values.slice() });
    return id;
  }

  record(id: number, values: Values): void {
    const live = this.live.get(id);
    if (live === undefined) return;
    live.span.setAttributes(attributes(values));
    assignValues(live.values, values);
  }

  recordFollowsFrom(id: number, follows: number): void {
    const span = this.live.get(id)?.span;
    const from = this.live.get(follows)?.span;
    if (span !== undefined && from !== undefined) span.addLink({ context: from.spanContext() });
  }

  event(info: EventInfo): void {
    const span = typeof info.parent === 'number' ? this.live.get(info.parent)?.span : undefined;
    if (span === undefined) {
      this.unattachedEvents++;
      return;
    }
    const { message, fields } = splitMessage(info.values);
    span.addEvent(message ?? info.meta.name, { ...attributes(fields), 'log.severity': info.meta.level }, hrTime(info.time));
  }

  enter(): void {}
  exit(): void {}
  cloneSpan(id: number): number {
    return id;
  }

  tryClose(id: number, time: bigint, forced?: ForcedClose): boolean {
    const live = this.live.get(id);
    if (live === undefined) return false;
    this.live.delete(id);
    let error: ErrorValue | undefined;
    for (const [k, v] of live.values) if (k === 'error' && isErrorValue(v)) error = v.error;
    if (forced !== undefined) {
      live.span.setAttributes({ 'sandtrace.force_closed': true, 'sandtrace.termination.cause': forced.cause });
      live.span.setStatus({ code: SpanStatusCode.ERROR, message: forced.message });
    } else if (error !== undefined) live.span.setStatus({ code: SpanStatusCode.ERROR, message: formatError(error) });
    live.span.end(hrTime(time));
    return true;
  }

  currentSpan(): number | undefined {
    return undefined;
  }
}
