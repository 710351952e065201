/**
 * The errors every layer shares, kept apart so that the lowest layers
 * (content, net) can throw them without importing anything above.
 *
 * @module
 */

/**
 * A violation of the wire protocol by the remote side: a malformed or
 * oversized frame, an invalid message or a field out of bounds. The connection
 * that produced it is closed; nothing else is affected.
 *
 * @example Catching a protocol error
 * ```ts
 * import { ProtocolError } from "@shoal/shoal";
 * try {
 *   throw new ProtocolError("Cannot accept frame: unknown kind 9");
 * } catch (error) {
 *   if (!(error instanceof ProtocolError)) throw error;
 * }
 * ```
 */
export class ProtocolError extends Error {
  /**
   * Creates a protocol error.
   *
   * @param message What failed and the offending value.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
  }
}

/**
 * A wait that ran out: a connect, read or reply that took too long.
 *
 * @example Recognising a timeout
 * ```ts
 * import { TimeoutError } from "@shoal/shoal";
 * const error = new TimeoutError("No reply within 100 ms");
 * if (!(error instanceof TimeoutError)) throw new Error("unreachable");
 * ```
 */
export class TimeoutError extends Error {
  /**
   * Creates the error.
   *
   * @param message What timed out, with the limit.
   */
  constructor(message: string) {
    super(message);
    this.name = "TimeoutError";
  }
}

/**
 * An error reported by the remote side in an `error` reply
 * (`{ type: "error", code, message }`).
 *
 * @example Telling "not found" apart
 * ```ts
 * import { RemoteError } from "@shoal/shoal";
 * const error = new RemoteError("not_found", "No such file");
 * if (error.code !== "not_found") throw new Error("wrong code");
 * ```
 */
export class RemoteError extends Error {
  /** Machine-readable code, e.g. `not_found`, `unknown_peer`, `bad_request`. */
  readonly code: string;
  /** How long the remote side asks to wait before asking again (`choked`), ms. */
  readonly retryAfterMs: number | undefined;
  /**
   * Creates the error.
   *
   * @param code Machine-readable code.
   * @param message Human-readable text from the remote side.
   * @param retryAfterMs The wait the remote side asked for, if any.
   */
  constructor(code: string, message: string, retryAfterMs?: number) {
    super(message);
    this.name = "RemoteError";
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}
