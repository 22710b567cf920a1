/** Typed errors of the receiver. A rejected record changes no receiver state. */

export type ReceiveErrorCode =
  | 'UNKNOWN_METADATA_ID'
  | 'UNKNOWN_SPAN_ID'
  | 'UNKNOWN_FIELD'
  | 'DUPLICATE_SPAN_ID'
  | 'NOT_ENTERED'
  | 'TOO_MANY_VALUES'
  | 'KIND_MISMATCH'
  | 'MALFORMED'
  | 'UNSUPPORTED_VERSION'
  | 'LIMIT_EXCEEDED'
  | 'RECEIVER_CLOSED';

/**
 * @example
 * try { receiver.tryReceive(event); }
 * catch (e) { if (e instanceof ReceiveError && e.code === 'UNKNOWN_SPAN_ID') … }
 */
export class ReceiveError extends Error {
  constructor(
    readonly code: ReceiveErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ReceiveError';
  }
}
