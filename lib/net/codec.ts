/**
 * The encoding of control frames as a value: a {@linkcode Codec} turns a
 * frame's opaque payload into an untrusted value and back; framing never looks
 * inside. {@linkcode jsonCodec} (a UTF-8 JSON object) is the default.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";

/**
 * Turns values into control-frame payloads and payloads back into untrusted
 * values. Framing (`FrameDecoder`, `FrameConnection`) takes one as its
 * `codec` option and never parses a payload itself, so another encoding is
 * one object, not edits across files. Data frames never pass through a codec.
 *
 * `decode` receives at most the framing's `maxFrameSize` bytes and should
 * throw a {@linkcode ProtocolError} on bad input; the framing reports any
 * other error thrown by a codec as a `ProtocolError` too. Its result is
 * untrusted: the message validators decide what it may contain.
 *
 * @example A codec that counts the frames it decodes
 * ```ts
 * import { type Codec, jsonCodec } from "@shoal/shoal/net";
 * let decoded = 0;
 * const counting: Codec = {
 *   name: "counting-json",
 *   encode: (value) => jsonCodec.encode(value),
 *   decode(payload) {
 *     decoded++;
 *     return jsonCodec.decode(payload);
 *   },
 * };
 * counting.decode(counting.encode({ type: "ping" }));
 * if (decoded !== 1) throw new Error("not counted");
 * ```
 */
export interface Codec {
  /** Short name for error messages and logs (e.g. `"json"`). */
  readonly name: string;
  /**
   * Encodes one outgoing message.
   *
   * @param value The message.
   * @returns The payload bytes (the frame's length covers exactly these).
   * @throws {TypeError} If the codec cannot encode `value`.
   */
  encode(value: unknown): Uint8Array;
  /**
   * Decodes one incoming payload.
   *
   * @param payload The frame's payload (a view; copy it to keep it).
   * @returns The untrusted value.
   * @throws {ProtocolError} If the payload is not valid in this encoding.
   */
  decode(payload: Uint8Array): unknown;
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** `{`: the first byte of every JSON object (no whitespace is written). */
const OPEN_BRACE = 0x7b;

/**
 * The default codec: each payload is one JSON object in UTF-8. Decoding
 * refuses invalid UTF-8, invalid JSON, and any JSON value other than an
 * object (array, number, string, `null`), with a {@linkcode ProtocolError}
 * starting `Cannot accept JSON frame:`. Encoding refuses a value that does
 * not serialise to a JSON object with a `TypeError`.
 *
 * @example Round trip
 * ```ts
 * import { jsonCodec } from "@shoal/shoal/net";
 * const payload = jsonCodec.encode({ type: "ping", rid: 1 });
 * const value = jsonCodec.decode(payload) as { type: string };
 * if (value.type !== "ping") throw new Error("lost");
 * ```
 *
 * @example Refusing a payload that is not an object
 * ```ts
 * import { jsonCodec, ProtocolError } from "@shoal/shoal/net";
 * try {
 *   jsonCodec.decode(new TextEncoder().encode("[1,2]"));
 *   throw new Error("accepted an array");
 * } catch (error) {
 *   if (!(error instanceof ProtocolError)) throw error;
 * }
 * ```
 */
export const jsonCodec: Codec = Object.freeze({
  name: "json",
  encode(value: unknown): Uint8Array {
    const text: string | undefined = JSON.stringify(value);
    if (text === undefined || text.charCodeAt(0) !== OPEN_BRACE) {
      throw new TypeError(
        `Cannot encode message: ${describe(value)} is not a JSON object`,
      );
    }
    return utf8Encoder.encode(text);
  },
  decode(payload: Uint8Array): unknown {
    if (payload.length < 2) {
      throw new ProtocolError(
        `Cannot accept JSON frame: length ${payload.length} cannot hold an object`,
      );
    }
    let value: unknown;
    try {
      value = JSON.parse(utf8Decoder.decode(payload));
    } catch (cause) {
      throw new ProtocolError(
        `Cannot accept JSON frame: ${(cause as Error).message.split("\n")[0]}`,
        { cause },
      );
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new ProtocolError(
        "Cannot accept JSON frame: payload is not a JSON object",
      );
    }
    return value;
  },
});

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a value of type ${typeof value}`;
}
