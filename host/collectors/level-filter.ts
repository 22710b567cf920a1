/** A level threshold, the static filter collectors share: callsites below it are never wanted. */
import { LEVELS, type Level } from '../../shared/records.js';
import type { CallsiteMeta, Interest } from '../receiver/callsite-registry.js';

/**
 * @example
 * const filter = new LevelFilter('info');
 * filter.interest(debugCallsite); // 'never'
 */
export class LevelFilter {
  private readonly min: number;

  constructor(readonly level: Level = 'trace') {
    this.min = LEVELS.indexOf(level);
  }

  enabled(meta: CallsiteMeta): boolean {
    return LEVELS.indexOf(meta.level) >= this.min;
  }

  /** Static, so the receiver caches it per callsite and never asks again. */
  interest(meta: CallsiteMeta): Interest {
    return this.enabled(meta) ? 'always' : 'never';
  }
}

/** Base for collectors whose only filter is a level: the three filtering members of Collector. */
export abstract class LevelFilteredCollector {
  protected readonly filter: LevelFilter;

  constructor(level: Level | undefined) {
    this.filter = new LevelFilter(level);
  }

  registerCallsite(meta: CallsiteMeta): Interest {
    return this.filter.interest(meta);
  }

  enabled(meta: CallsiteMeta): boolean {
    return this.filter.enabled(meta);
  }

  maxLevelHint(): Level {
    return this.filter.level;
  }
}
