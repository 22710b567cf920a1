/**
 * One run of one guest, as both sandbox runners see it: a receiver, the host-side execution span
 * every guest root span hangs under, and the summary that comes out at the end. The runners only
 * differ in how they run the guest and get its frames; this is the part they share.
 */
import { hostNowNs } from '../clock.js';
import type { Collector, NewSpanInfo } from '../collectors/collector.js';
import { NullCollector } from '../collectors/null-collector.js';
import type { ExecutionSummary } from '../collectors/execution-summary.js';
import type { CallsiteRegistry } from '../receiver/callsite-registry.js';
import { firstSpanId, type PersistedMetadata, type PersistedSpans } from '../receiver/persisted-state.js';
import { TracingEventReceiver, type ReceiverLimits } from '../receiver/receiver.js';
import { describeCause, type TerminationCause } from '../receiver/termination.js';
import { levelNumber, type Level, type Values } from '../../shared/records.js';
import { parseTraceParent, type TraceParent } from '../traceparent.js';
import type { SandboxPool } from './sandbox-pool.js';
import { registryFor } from './tenant-registries.js';
import { samplerFromEnv, type Sampler } from '../sampling/sampler.js';

/** State a workflow engine keeps between executions: pass it back as `state` to resume. */
export interface PersistedExecution {
  metadata: PersistedMetadata;
  spans: PersistedSpans;
}

/** Options both runners take. */
export interface RunOptions {
  /** Where spans, events and metrics go (default: none; the summary still counts them). */
  collector?: Collector;
  /** Most verbose level the guest emits (default: the collector's hint, else info). */
  level?: Level;
  /** Host parent context as a W3C traceparent; guest spans become its descendants. */
  traceparent?: string;
  /** Wall-clock budget for the guest, in ms (default 5,000). */
  deadlineMs?: number;
  /** Guest heap limit, in bytes (QuickJS default 64 MiB; WebAssembly: the module's own maximum). */
  memoryLimitBytes?: number;
  /** Guest stack limit, in bytes (QuickJS only; default 256 KiB, at most 384 KiB). */
  stackLimitBytes?: number;
  /**
   * Carried on every span, event and metric of the run (default: a random id). In a workflow run
   * it also names the attempt: a re-run with the same id emits the same span ids (see stableIds),
   * so give each retry its own id and reuse one only to re-run the same attempt.
   */
  executionId?: string;
  /**
   * Derive span and trace ids from the execution id and the guest's span ids, so a re-run of the
   * same execution emits the same ids and a backend can deduplicate (default: on for workflow
   * runs, those with `persist` or `state`; off otherwise, where ids are random, so hosts that reuse
   * an execution id for unrelated runs never merge them).
   */
  stableIds?: boolean;
  /** State from an earlier run's `result.state`, to resume its open spans. */
  state?: PersistedExecution;
  /** Commit open spans at a normal end and return them as `result.state` (default false: roll back). */
  persist?: boolean;
  /**
   * Which trace a resumed step's execution span joins (without `traceparent`, which always wins):
   * - `workflow` (default): the workflow's trace, as a child of the carried span the step resumes
   *   (the span the guest had entered at the last commit, else the workflow's first span), so every
   *   step of a workflow is one connected trace;
   * - `step`: a trace of its own, with a span link to that carried span, for workflows that run for
   *   days and would make one unwieldy trace.
   */
  traceMode?: 'workflow' | 'step';
  /** Per-execution limits against hostile guests. */
  limits?: Partial<ReceiverLimits>;
  /** A name for the guest in traces and errors (default `guest.js` / `guest.wasm`). */
  filename?: string;
  /**
   * Cancels the run from any asynchronous source (a timer, a closed request): the guest is asked
   * to stop, its worker terminated if it does not within the pool's grace, and its spans closed
   * with `host_cancel`. Aborted while the run is still queued, the guest never starts.
   */
  signal?: AbortSignal;
  /** The worker pool to run on (default: one shared pool, sized to the cores, created on first use). */
  pool?: SandboxPool;
  /**
   * Who the guest runs for. Runs of different tenants share nothing that one could fill or
   * observe: each tenant interns callsites into a registry of its own (bounded: a tenant that
   * fills it only refuses its own new callsites), and a warm QuickJS worker keeps what the SDK
   * encoded in one run (callsite and message bytes) for the next run of the same tenant only, so a
   * guest cannot learn by timing which strings another tenant's guest used. Default: one tenant.
   */
  tenant?: string;
  /** Interning registry (default: the tenant's, or the process-wide one without a tenant). */
  registry?: CallsiteRegistry;
  /**
   * Backpressure, for hosts that choose no loss over speed: before each frame the guest hands
   * over, it waits (bounded by its deadline) until `whenRoom` resolves, which a BatchingManager
   * with `whenFull: 'block'` does once its queues have room for what the frame is likely to become
   * (see FRAME_EXPANSION). Pass the batching manager itself: `backpressure: batching`. A guest that
   * waits is still stopped at its deadline; a frame whose records still find no room is refused
   * by the batching manager and counted.
   */
  backpressure?: { whenRoom(bytes: number, timeoutMs?: number): Promise<boolean> };
  /**
   * Decides, once per execution, whether it is traced (default: `OTEL_TRACES_SAMPLER` and
   * `OTEL_TRACES_SAMPLER_ARG`, else parent-based always-on: an execution under a traceparent or an
   * active OpenTelemetry span that is not sampled is not traced). An execution that is not sampled
   * runs with every level disabled in the guest (`tracing.enabled(…)` is false there), produces no
   * spans or events and no execution span, and still reports its metrics (`summary.sampled`).
   */
  sampler?: Sampler;
  /** Called about once a second while the guest runs (from a host timer). */
  onProgress?: (progress: { elapsedMs: number; records: number; frames: number }) => void;
}

export type { ExecutionSummary };

/**
 * Host memory a frame byte is taken to become in the export queues, for backpressure: a span of
 * about 60 bytes on the wire (create, enter, exit, close, an event) is held as a record of some
 * 800 bytes and charged its encoded body twice; 32 leaves room to spare.
 */
export const FRAME_EXPANSION = 32;

/** The result of `runQuickJS` / `runWasm`. */
export interface RunResult {
  /** True when the guest ran to completion without an uncaught error. */
  ok: boolean;
  /** The guest's result (QuickJS: the script's completion value or module exports; WebAssembly: the export's return value). */
  value?: unknown;
  /** The uncaught error, when the guest threw. */
  error?: { name: string; message: string; stack?: string };
  summary: ExecutionSummary;
  /** With `persist: true` and a normal end: the state to pass as `state` to the next run. */
  state?: PersistedExecution;
}

/** A guest level above `error`: nothing is enabled (an execution that is not sampled). */
const UNSAMPLED_LEVEL = 5;

/** OTEL_SDK_DISABLED, read at each run (a host may flip it): only `true` (any case) disables. */
function sdkDisabled(): boolean {
  return process.env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true';
}

let envSampler: Sampler | undefined;
/** The sampler the environment names, read once (a ConfigError for one that does not exist). */
function defaultSampler(): Sampler {
  return (envSampler ??= samplerFromEnv());
}

/**
 * The info of the newest execution span. A collector's newSpan (PipelineCollector's, inlined
 * into the receiver's code) is optimized for the hidden class of this object; the object dies
 * right after the call, and a full GC with no object of that class left drops the class and
 * deoptimizes them (measured on the replay bench: two of fifteen replays 2-3x slower after the
 * GCs between them). Holding the newest one keeps the class alive. It is held here, where it is
 * made, because only this object is known to hold no guest data (an execution id, a guest kind,
 * a file name); a collector cannot tell it from a guest's own root span.
 */
const KEEP_EXECUTION_INFO: { info: NewSpanInfo | undefined } = { info: undefined };

const EXECUTION_FIELDS = ['execution.id', 'guest.kind', 'guest.source', 'sandtrace.records', 'sandtrace.dropped', 'termination.cause'];

let executionCounter = 0;

const idRandom = new Uint32Array(1);

/**
 * Creates an execution id unique within this process, and beyond it by 32 random bits: span and
 * trace ids derive from execution ids (see span-ids.ts), and containers all run as pid 1.
 */
export function newExecutionId(): string {
  crypto.getRandomValues(idRandom);
  return `${Date.now().toString(36)}-${process.pid.toString(36)}-${(++executionCounter).toString(36)}-${idRandom[0]!.toString(36)}`;
}

export class Execution {
  readonly receiver: TracingEventReceiver;
  readonly executionId: string;
  private readonly collector: Collector;
  private readonly rootSpan: number | undefined;
  private readonly started = performance.now();
  private readonly persistRequested: boolean;
  private readonly stableIds: boolean;
  /** The head-sampling decision, made once when the execution starts. */
  readonly sampled: boolean;
  private frames = 0;
  private readonly onProgress: RunOptions['onProgress'];
  private nextProgress = 0;

  constructor(
    readonly guestKind: 'quickjs' | 'wasm',
    readonly source: string,
    private readonly options: RunOptions,
    /** Unix ns at which guest time 0 lies, for guests that send no hello record. */
    clockOrigin?: bigint,
  ) {
    this.executionId = options.executionId ?? newExecutionId();
    // OTEL_SDK_DISABLED=true: nothing is traced or recorded, as every OpenTelemetry SDK does then.
    const disabled = sdkDisabled();
    const collector = (this.collector = disabled ? new NullCollector() : (options.collector ?? new NullCollector()));
    this.persistRequested = options.persist === true;
    this.onProgress = options.onProgress;
    this.nextProgress = this.started + 1000;
    const registry = options.registry ?? registryFor(options.tenant);
    this.stableIds = options.stableIds ?? (options.persist === true || options.state !== undefined);
    this.sampled = !disabled && Execution.decideSampling(options, collector);
    // The receiver first: refused state throws before anything reaches the collector.
    this.receiver = new TracingEventReceiver({
      collector,
      registry,
      executionId: this.executionId,
      stableIds: this.stableIds,
      // The QuickJS SDK is always told its first span id; a WebAssembly module built with an older
      // library (a 24-byte state block) is not, and numbers from 1 again: no floor for those.
      spanIdFloor: guestKind === 'quickjs',
      ...(options.state && { metadata: options.state.metadata, spans: options.state.spans }),
      ...(options.limits && { limits: options.limits }),
      ...(clockOrigin !== undefined && { clockOrigin }),
    });
    this.rootSpan = this.sampled ? this.openExecutionSpan(collector, registry, options) : undefined;
    this.receiver.setRootParent(this.rootSpan);
  }

  /** The most verbose level guests should emit (trace 0 … error 4). */
  static minLevel(options: RunOptions): number {
    return levelNumber(options.level ?? options.collector?.maxLevelHint?.() ?? 'info');
  }

  /** The level this execution's guest runs with: above every level when it is not sampled. */
  get minLevel(): number {
    return this.sampled ? Execution.minLevel(this.options) : UNSAMPLED_LEVEL;
  }

  /** Spans carried over from the persisted state, as the guest SDKs announce them. */
  static carried(options: RunOptions): Array<{ id: number; name: string; target: string; fields: string[] }> {
    return (options.state?.spans.spans ?? []).map((s) => ({ id: s.id, name: s.callsite.name, target: s.callsite.target, fields: s.callsite.fields }));
  }

  /**
   * The first span id the guest may allocate: the host owns span ids across a workflow's
   * executions, so a resumed step's own spans never take a carried (or earlier) span's id.
   */
  static firstSpanId(options: RunOptions): number {
    return firstSpanId(options.state?.spans);
  }

  /** Reports progress if a second has passed since the last report (cheap to call often). */
  tick(now = performance.now()): void {
    if (this.onProgress === undefined || now < this.nextProgress) return;
    this.nextProgress = now + 1000;
    this.onProgress({ elapsedMs: now - this.started, records: this.receiver.stats.applied, frames: this.frames });
  }

  /** Applies one frame from the guest. Never throws for bad guest bytes. */
  ingest(frame: Uint8Array): void {
    this.frames++;
    this.receiver.receiveBatch(frame);
  }

  /** Records the guest says it dropped, reported outside the record stream (guest memory). */
  guestDropped(count: number): void {
    this.receiver.addGuestDropped(count);
  }

  /** Ends the execution: commits, rolls back or force-closes, closes the execution span, and sums up. */
  finish(termination: TerminationCause | undefined, invalidFrames = 0): { summary: ExecutionSummary; state?: PersistedExecution } {
    const r = this.receiver;
    let forceClosed = 0;
    let state: PersistedExecution | undefined;
    if (termination !== undefined) forceClosed = r.terminate(termination);
    else if (this.persistRequested) state = { metadata: r.persistMetadata(), spans: r.persist() };
    else forceClosed = r.end();
    const stats = r.stats;
    const summary: ExecutionSummary = {
      executionId: this.executionId,
      guestKind: this.guestKind,
      frames: this.frames,
      records: stats.applied,
      rejected: stats.rejected,
      rejectedByCode: { ...stats.rejectedByCode },
      limitDropped: stats.rejectedByCode.LIMIT_EXCEEDED ?? 0,
      truncated: stats.truncatedFrames,
      guestDropped: stats.guestDropped,
      refusedFrames: stats.refusedFrames,
      invalidFrames,
      refusedBytes: stats.refusedBytes,
      reservedRenamed: stats.reservedRenamed,
      forceClosed,
      uncommitted: stats.uncommitted,
      persistedSpans: state?.spans.spans.length ?? 0,
      sampled: this.sampled,
      durationMs: performance.now() - this.started,
    };
    if (termination !== undefined) {
      summary.termination = termination;
      summary.cause = describeCause(termination);
    }
    this.closeExecutionSpan(summary);
    this.collector.executionFinished?.(summary);
    return state === undefined ? { summary } : { summary, state };
  }

  /**
   * Head sampling: the parent is the host's traceparent, else the active OpenTelemetry span (a
   * collector that knows one, the bridge), else the workflow the step resumes (sampled: an
   * unsampled first step carries no spans); the sampler decides from it, or alone for a root.
   */
  private static decideSampling(options: RunOptions, collector: Collector): boolean {
    const remote = options.traceparent === undefined ? undefined : parseTraceParent(options.traceparent);
    const carried = (options.state?.spans.spans.length ?? 0) > 0;
    const parentSampled = remote !== undefined ? (remote.traceFlags & 1) === 1 : (collector.parentSampled?.() ?? (carried ? true : undefined));
    const traceId = remote === undefined ? undefined : Buffer.from(remote.traceId, 'hex');
    return (options.sampler ?? defaultSampler()).shouldSample({ parentSampled, traceId });
  }

  /**
   * The host span every guest root span hangs under. Its parent: the host's traceparent, else
   * (resuming a workflow) the carried span the step continues, or a link to it (traceMode `step`).
   */
  private openExecutionSpan(collector: Collector, registry: CallsiteRegistry, options: RunOptions): number | undefined {
    const meta = registry.intern({ kind: 'span', name: 'sandtrace.execution', target: 'sandtrace', level: 'info', fields: EXECUTION_FIELDS });
    const interest = registry.interest(collector, meta);
    if (interest === 'never' || (interest === 'sometimes' && !collector.enabled(meta))) return undefined;
    const values: Values = [
      ['execution.id', this.executionId],
      ['guest.kind', this.guestKind],
      ['guest.source', this.source],
    ];
    const remote: TraceParent | undefined = options.traceparent === undefined ? undefined : parseTraceParent(options.traceparent);
    const resumed = remote === undefined && options.state !== undefined ? this.receiver.resumeTarget() : undefined;
    const linked = options.traceMode === 'step';
    const parent = resumed !== undefined && !linked ? resumed : undefined;
    const info: NewSpanInfo = { meta, parent, values, time: hostNowNs(), executionId: this.executionId, guestSpanId: this.stableIds ? 0 : undefined, ...(remote && { remoteParent: remote }) };
    KEEP_EXECUTION_INFO.info = info;
    const span = collector.newSpan(info);
    if (resumed !== undefined && linked) collector.recordFollowsFrom(span, resumed);
    return span;
  }

  private closeExecutionSpan(summary: ExecutionSummary): void {
    if (this.rootSpan === undefined) return;
    const values: Values = [
      ['sandtrace.records', summary.records],
      ['sandtrace.dropped', summary.rejected + summary.guestDropped],
    ];
    if (summary.cause !== undefined) values.push(['termination.cause', summary.cause]);
    this.collector.record(this.rootSpan, values);
    const forced = summary.termination === undefined ? undefined : { cause: summary.termination.kind, message: summary.cause! };
    this.collector.tryClose(this.rootSpan, hostNowNs(), forced);
  }
}
