/**
 * Head sampling: whether an execution is traced, decided once when it starts, as OpenTelemetry's
 * samplers decide for a root span. An execution that is not sampled runs with every level
 * disabled in the guest (a traced call then costs what a disabled callsite costs), produces no
 * spans or events, and still reports its metrics.
 *
 * The samplers and their names are the specification's (`OTEL_TRACES_SAMPLER`):
 * `always_on`, `always_off`, `traceidratio`, `parentbased_always_on` (the default),
 * `parentbased_always_off`, `parentbased_traceidratio`; `OTEL_TRACES_SAMPLER_ARG` is the ratio.
 */
import { ConfigError } from '../export/exporter-config.js';

/** What a sampler decides from: the parent's sampled flag when there is a parent, and the trace id. */
export interface SamplingInput {
  /** The sampled flag of the host's parent context (a traceparent, the active OpenTelemetry span); undefined for a root. */
  parentSampled: boolean | undefined;
  /** 16 bytes, when known before the execution starts (its traceparent's); otherwise a random draw stands in. */
  traceId: Uint8Array | undefined;
}

/**
 * Decides whether an execution is sampled.
 *
 * @example
 * await runQuickJS(src, { collector, sampler: parentBased(traceIdRatio(0.1)) });
 */
export interface Sampler {
  shouldSample(input: SamplingInput): boolean;
  /** For diagnostics: the specification's description, e.g. `TraceIdRatioBased{0.1}`. */
  readonly description: string;
}

export const alwaysOn: Sampler = { shouldSample: () => true, description: 'AlwaysOnSampler' };
export const alwaysOff: Sampler = { shouldSample: () => false, description: 'AlwaysOffSampler' };

/**
 * Samples `ratio` of traces, by trace id as the specification's TraceIdRatioBased does (the last
 * 8 bytes of the id read as an unsigned integer, compared with ratio × 2^64), so every service
 * that samples by ratio keeps the same traces. Without a trace id yet, a random draw.
 */
export function traceIdRatio(ratio: number): Sampler {
  if (!(ratio >= 0 && ratio <= 1)) throw new RangeError(`a sampling ratio is between 0 and 1, got ${ratio}`);
  const bound = BigInt(Math.floor(ratio * 2 ** 53)) << 11n; // ratio × 2^64, exactly representable
  return {
    description: `TraceIdRatioBased{${ratio}}`,
    shouldSample({ traceId }) {
      if (ratio >= 1) return true;
      if (ratio <= 0) return false;
      if (traceId === undefined || traceId.length !== 16) return Math.random() < ratio;
      let low = 0n;
      for (let i = 8; i < 16; i++) low = (low << 8n) | BigInt(traceId[i]!);
      return low < bound;
    },
  };
}

/** Follows the parent's decision when there is a parent; `root` decides for executions without one. */
export function parentBased(root: Sampler): Sampler {
  return {
    description: `ParentBased{root=${root.description}}`,
    shouldSample(input) {
      return input.parentSampled === undefined ? root.shouldSample(input) : input.parentSampled;
    },
  };
}

/** The sampler `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` name (default `parentbased_always_on`); a ConfigError for anything else. */
export function samplerFromEnv(env: NodeJS.ProcessEnv = process.env): Sampler {
  const name = env.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on';
  const ratio = (): number => {
    const arg = env.OTEL_TRACES_SAMPLER_ARG;
    if (arg === undefined) return 1; // the specification's default ratio
    const n = Number(arg);
    if (!(n >= 0 && n <= 1) || arg.trim() === '') throw new ConfigError('OTEL_TRACES_SAMPLER_ARG', arg, 'a ratio from 0 to 1');
    return n;
  };
  switch (name) {
    case 'always_on':
      return alwaysOn;
    case 'always_off':
      return alwaysOff;
    case 'traceidratio':
      return traceIdRatio(ratio());
    case 'parentbased_always_on':
      return parentBased(alwaysOn);
    case 'parentbased_always_off':
      return parentBased(alwaysOff);
    case 'parentbased_traceidratio':
      return parentBased(traceIdRatio(ratio()));
    default:
      throw new ConfigError('OTEL_TRACES_SAMPLER', name, 'always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio');
  }
}
