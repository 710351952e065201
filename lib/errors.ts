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
 * import { ProtocolError } from "./errors.ts";
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
