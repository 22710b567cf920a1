/** Why an execution ended abnormally; the receiver force-closes open spans with it. */
export type TerminationCause =
  | { kind: 'trap'; message?: string }
  | { kind: 'abort'; message: string; file?: string; line?: number; column?: number }
  | { kind: 'deadline'; message?: string }
  | { kind: 'out_of_memory'; message?: string }
  | { kind: 'stack_overflow'; message?: string }
  | { kind: 'exception'; message: string }
  | { kind: 'host_cancel'; message?: string };

export type TerminationKind = TerminationCause['kind'];

/** One line naming the cause, e.g. `abort: index out of range at plugin.ts:12:5`. */
export function describeCause(c: TerminationCause): string {
  switch (c.kind) {
    case 'abort': {
      const where = c.file === undefined ? '' : ` at ${c.file}${c.line === undefined ? '' : `:${c.line}`}${c.column === undefined ? '' : `:${c.column}`}`;
      return `abort: ${c.message}${where}`;
    }
    case 'trap':
      return `trap${c.message ? `: ${c.message}` : ''}`;
    case 'deadline':
      return `deadline exceeded${c.message ? `: ${c.message}` : ''}`;
    case 'out_of_memory':
      return `out of memory${c.message ? `: ${c.message}` : ''}`;
    case 'stack_overflow':
      return `stack overflow${c.message ? `: ${c.message}` : ''}`;
    case 'exception':
      return `uncaught exception: ${c.message}`;
    case 'host_cancel':
      return `cancelled by host${c.message ? `: ${c.message}` : ''}`;
  }
}
