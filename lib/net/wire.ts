/**
 * Framing for Shoal's binary protocol: turns a byte stream into length-prefixed
 * frames and back. It knows nothing of messages or files.
 *
 * A frame is a 5-byte header — one kind byte (`1` JSON, `2` data) and a
 * big-endian `uint32` payload length — followed by the payload. A JSON
 * (control) frame's payload is opaque here: a {@linkcode Codec} turns it into
 * an untrusted value and back ({@linkcode jsonCodec}, one UTF-8 JSON object,
 * by default). A data frame's payload is a big-endian `uint32` request id
 * followed by raw bytes (chunk data travels as bytes, never base64, and never
 * through the codec). Because the first byte of a framed connection is `1` or
 * `2`, a connection starting with `{` can be told apart as the seed's
 * JSON-line protocol.
 *
 * @module
 */
import { MAX_CHUNK_SIZE } from "../content/manifest.ts";
import { ProtocolError } from "../errors.ts";
import { type Codec, jsonCodec } from "./codec.ts";

export { MAX_CHUNK_SIZE, ProtocolError };

/** Frame kind byte for a JSON control message. */
export const FRAME_JSON = 1;
/** Frame kind byte for binary data (request id + bytes). */
export const FRAME_DATA = 2;
/** Size of a frame header in bytes: kind (1) + payload length (4). */
export const FRAME_HEADER_SIZE = 5;
/** Size of a data frame's header: frame header (5) + request id (4). */
export const DATA_HEADER_SIZE = 9;
/**
 * Default hard limit on a frame's payload: the largest chunk plus 64 KiB of
 * room for headers.
 */
export const DEFAULT_MAX_FRAME_SIZE: number = MAX_CHUNK_SIZE + 64 * 1024;

/** A JSON (control) frame: kind byte `1`, payload encoded by a {@linkcode Codec}. */
export interface JsonFrame {
  /** Discriminant. */
  kind: "json";
  /** The decoded value (validated by the message layer, not here). */
  message: unknown;
}

/** A binary data frame answering the request `rid`. */
export interface DataFrame {
  /** Discriminant. */
  kind: "data";
  /** Request id this data answers. */
  rid: number;
  /** The bytes. A view; the frame owns its buffer. */
  bytes: Uint8Array;
}

/** One frame on the wire. */
export type Frame = JsonFrame | DataFrame;

/** Options for {@linkcode FrameDecoder} and {@linkcode FrameDecoderStream}. */
export interface FrameDecoderOptions {
  /**
   * Largest payload accepted, in bytes. A bigger length in a header is a
   * {@linkcode ProtocolError} before any payload byte is buffered.
   *
   * @default {DEFAULT_MAX_FRAME_SIZE}
   */
  maxFrameSize?: number;
  /**
   * Accept data frames. Servers, which take only JSON requests, turn this off
   * so a data frame header is refused before anything is buffered.
   *
   * @default {true}
   */
  allowData?: boolean;
  /**
   * Provides the buffer for a data frame's bytes (at least `size` long), so a
   * receiver can reuse chunk buffers instead of allocating one per frame.
   *
   * @default {(size) => new Uint8Array(size)}
   */
  allocate?: (size: number) => Uint8Array;
  /**
   * Decodes the payload of each JSON (control) frame. Data frames never pass
   * through it.
   *
   * @default {jsonCodec}
   */
  codec?: Codec;
}

/** Options for {@linkcode FrameEncoderStream}. */
export interface FrameEncoderOptions {
  /**
   * Encodes the message of each JSON (control) frame.
   *
   * @default {jsonCodec}
   */
  codec?: Codec;
}

/**
 * JSON payloads are buffered in steps from this size up, so a header that
 * merely claims a large frame pins no memory.
 */
const JSON_INITIAL_CAPACITY = 64 * 1024;

/**
 * Encodes a message as one JSON (control) frame.
 *
 * @param message The message (for {@linkcode jsonCodec}, an object).
 * @param codec Encodes the payload.
 * @returns The frame bytes.
 * @throws {TypeError} If the codec cannot encode `message`.
 *
 * @example Encoding a message
 * ```ts
 * import { encodeJsonFrame } from "@shoal/shoal/net";
 * const bytes = encodeJsonFrame({ type: "ping" });
 * if (bytes[0] !== 1) throw new Error("wrong kind");
 * ```
 */
export function encodeJsonFrame(
  message: unknown,
  codec: Codec = jsonCodec,
): Uint8Array {
  const body = codec.encode(message);
  const out = new Uint8Array(FRAME_HEADER_SIZE + body.length);
  out[0] = FRAME_JSON;
  new DataView(out.buffer).setUint32(1, body.length);
  out.set(body, FRAME_HEADER_SIZE);
  return out;
}

/**
 * Encodes the header of a data frame (kind, length, request id). Send the
 * bytes right after it; keeping them separate avoids copying a large chunk.
 *
 * @param rid Request id the data answers (uint32).
 * @param byteLength Number of data bytes that follow.
 * @returns The 9 header bytes.
 *
 * @example Header for 3 bytes
 * ```ts
 * import { encodeDataHeader } from "@shoal/shoal/net";
 * const header = encodeDataHeader(7, 3);
 * if (header.length !== 9) throw new Error("bad header");
 * ```
 */
export function encodeDataHeader(rid: number, byteLength: number): Uint8Array {
  const out = new Uint8Array(DATA_HEADER_SIZE);
  const view = new DataView(out.buffer);
  out[0] = FRAME_DATA;
  view.setUint32(1, byteLength + 4);
  view.setUint32(5, rid >>> 0);
  return out;
}

/**
 * Encodes any frame to bytes (one copy of the data; for large chunks prefer
 * {@linkcode encodeDataHeader} followed by the bytes). A JSON frame's message
 * is encoded with {@linkcode jsonCodec}; for another codec use
 * {@linkcode encodeJsonFrame} or {@linkcode FrameEncoderStream} with `codec`.
 * (One parameter, so `frames.map(encodeFrame)` works.)
 *
 * @param frame The frame to encode.
 * @returns The frame bytes.
 *
 * @example Round trip
 * ```ts
 * import { encodeFrame, FrameDecoder } from "@shoal/shoal/net";
 * const bytes = encodeFrame({ kind: "data", rid: 1, bytes: new Uint8Array([9]) });
 * const [frame] = new FrameDecoder().push(bytes);
 * if (frame?.kind !== "data" || frame.bytes[0] !== 9) throw new Error("lost");
 * ```
 */
export function encodeFrame(frame: Frame): Uint8Array {
  if (frame.kind === "json") return encodeJsonFrame(frame.message);
  const header = encodeDataHeader(frame.rid, frame.bytes.length);
  const out = new Uint8Array(header.length + frame.bytes.length);
  out.set(header);
  out.set(frame.bytes, header.length);
  return out;
}

/**
 * Incremental frame parser: an explicit state machine that is fed bytes as
 * they arrive (any splitting or coalescing) and returns the complete frames.
 * It buffers at most one header and one payload of at most `maxFrameSize`.
 *
 * @example Feeding a frame one byte at a time
 * ```ts
 * import { encodeJsonFrame, FrameDecoder } from "@shoal/shoal/net";
 * const decoder = new FrameDecoder();
 * const frames = [];
 * for (const byte of encodeJsonFrame({ type: "ping" })) {
 *   frames.push(...decoder.push(new Uint8Array([byte])));
 * }
 * if (frames.length !== 1) throw new Error("expected one frame");
 * ```
 */
export class FrameDecoder {
  readonly #maxFrameSize: number;
  // Room for a data frame's request id after the 5-byte header.
  readonly #header = new Uint8Array(FRAME_HEADER_SIZE + 4);
  #headerFilled = 0;
  #headerNeeded = FRAME_HEADER_SIZE;
  #kind = 0;
  #frameLength = 0;
  #rid = 0;
  readonly #allocate: (size: number) => Uint8Array;
  #payload: Uint8Array | null = null;
  #payloadLength = 0;
  #payloadFilled = 0;
  readonly #allowData: boolean;
  readonly #codec: Codec;
  #failed = false;

  /**
   * Creates a decoder.
   *
   * @param options Limits and the codec.
   */
  constructor(options: FrameDecoderOptions = {}) {
    const max = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    if (!Number.isSafeInteger(max) || max < 16 || max > 0xffffffff) {
      throw new RangeError(
        `Cannot create frame decoder: maxFrameSize ${max} is not between 16 and 4294967295`,
      );
    }
    this.#maxFrameSize = max;
    this.#allowData = options.allowData ?? true;
    this.#allocate = options.allocate ?? ((size) => new Uint8Array(size));
    this.#codec = options.codec ?? jsonCodec;
  }

  /** Bytes held for an incomplete frame (for tests of bounded buffering). */
  get bufferedBytes(): number {
    return this.#headerFilled + this.#payloadFilled;
  }

  /**
   * The unfilled part of the payload being received, if any: a caller may
   * read from the socket straight into it (no copy) and then call
   * {@linkcode FrameDecoder.commit}.
   *
   * @returns The region to fill, or `null` while waiting for a header.
   */
  pendingPayload(): Uint8Array | null {
    if (this.#failed || this.#payload === null) return null;
    if (this.#payloadFilled === this.#payload.length) {
      this.#reserve(this.#payloadFilled + 1);
    }
    return this.#payload.subarray(this.#payloadFilled);
  }

  /**
   * Records that `n` bytes were written into {@linkcode pendingPayload}.
   *
   * @param n Bytes written.
   * @returns The completed frame, if those bytes finished it.
   * @throws {ProtocolError} If the completed frame is invalid.
   */
  commit(n: number): Frame | undefined {
    const payload = this.#payload;
    if (
      payload === null || n < 0 || this.#payloadFilled + n > payload.length
    ) {
      throw new RangeError(
        `Cannot commit ${n} bytes: no room in the pending payload`,
      );
    }
    this.#payloadFilled += n;
    if (this.#payloadFilled < this.#payloadLength) return undefined;
    try {
      return this.#finish();
    } catch (error) {
      this.#failed = true;
      throw error;
    }
  }

  /** True when no partial frame is pending (a clean place for the stream to end). */
  get idle(): boolean {
    return this.#headerFilled === 0 && this.#payload === null;
  }

  /**
   * Consumes bytes and returns every frame they complete.
   *
   * @param bytes The next bytes from the stream.
   * @returns Completed frames, in order.
   * @throws {ProtocolError} On an unknown kind, an oversized length or a
   *   payload the codec refuses. The decoder is then unusable.
   */
  push(bytes: Uint8Array): Frame[] {
    if (this.#failed) {
      throw new ProtocolError("Cannot decode: the stream already failed");
    }
    const frames: Frame[] = [];
    let offset = 0;
    try {
      while (offset < bytes.length) {
        if (this.#payload === null) {
          const take = Math.min(
            this.#headerNeeded - this.#headerFilled,
            bytes.length - offset,
          );
          this.#header.set(
            bytes.subarray(offset, offset + take),
            this.#headerFilled,
          );
          this.#headerFilled += take;
          offset += take;
          if (this.#headerFilled < this.#headerNeeded) break;
          if (this.#headerNeeded === FRAME_HEADER_SIZE) {
            this.#checkHeader();
            // A data frame's request id is read as part of its header.
            if (this.#kind === FRAME_DATA) {
              this.#headerNeeded += 4;
              continue;
            }
          }
          if (this.#startPayload() === 0) frames.push(this.#finish());
          continue;
        }
        const take = Math.min(
          this.#payloadLength - this.#payloadFilled,
          bytes.length - offset,
        );
        this.#reserve(this.#payloadFilled + take);
        this.#payload.set(
          bytes.subarray(offset, offset + take),
          this.#payloadFilled,
        );
        this.#payloadFilled += take;
        offset += take;
        if (this.#payloadFilled === this.#payloadLength) {
          frames.push(this.#finish());
        }
      }
    } catch (error) {
      this.#failed = true;
      throw error;
    }
    return frames;
  }

  #checkHeader(): void {
    const kind = this.#header[0]!;
    const length = new DataView(this.#header.buffer).getUint32(1);
    if (kind !== FRAME_JSON && kind !== FRAME_DATA) {
      throw new ProtocolError(
        `Cannot accept frame: unknown kind ${kind} (expected 1 or 2)`,
      );
    }
    if (length > this.#maxFrameSize) {
      throw new ProtocolError(
        `Cannot accept frame: length ${length} exceeds the ${this.#maxFrameSize}-byte limit`,
      );
    }
    if (kind === FRAME_DATA && length < 4) {
      throw new ProtocolError(
        `Cannot accept data frame: length ${length} is shorter than its 4-byte request id`,
      );
    }
    if (kind === FRAME_DATA && !this.#allowData) {
      throw new ProtocolError(
        "Cannot accept data frame: this side takes only JSON requests",
      );
    }
    this.#kind = kind;
    this.#frameLength = length;
  }

  #startPayload(): number {
    if (this.#kind === FRAME_DATA) {
      this.#rid = new DataView(this.#header.buffer).getUint32(5);
      this.#payloadLength = this.#frameLength - 4;
      const buffer = this.#allocate(this.#payloadLength);
      if (buffer.length < this.#payloadLength) {
        throw new RangeError(
          `Cannot decode: allocate(${this.#payloadLength}) returned ${buffer.length} bytes`,
        );
      }
      this.#payload = buffer.subarray(0, this.#payloadLength);
    } else {
      this.#payloadLength = this.#frameLength;
      this.#payload = new Uint8Array(
        Math.min(this.#payloadLength, JSON_INITIAL_CAPACITY),
      );
    }
    this.#payloadFilled = 0;
    return this.#payloadLength;
  }

  /** Grows a JSON payload buffer to hold at least `needed` bytes. */
  #reserve(needed: number): void {
    const payload = this.#payload!;
    if (needed <= payload.length) return;
    const grown = new Uint8Array(
      Math.min(this.#payloadLength, Math.max(needed, payload.length * 2)),
    );
    grown.set(payload.subarray(0, this.#payloadFilled));
    this.#payload = grown;
  }

  #finish(): Frame {
    const payload = this.#payload!;
    const kind = this.#kind;
    this.#payload = null;
    this.#payloadFilled = 0;
    this.#headerFilled = 0;
    this.#headerNeeded = FRAME_HEADER_SIZE;
    if (kind === FRAME_DATA) {
      return { kind: "data", rid: this.#rid, bytes: payload };
    }
    let message: unknown;
    try {
      message = this.#codec.decode(payload);
    } catch (cause) {
      if (cause instanceof ProtocolError) throw cause;
      // A codec's own failure is still the remote side's bad input.
      throw new ProtocolError(
        `Cannot accept ${this.#codec.name} frame: ${
          String((cause as Error)?.message ?? cause).split("\n")[0]
        }`,
        { cause },
      );
    }
    return { kind: "json", message };
  }
}

/**
 * A `TransformStream` from raw bytes to {@linkcode Frame}s. Errors the stream
 * with a {@linkcode ProtocolError} on bad input, and if the input ends in the
 * middle of a frame.
 *
 * @example Decoding a byte stream
 * ```ts
 * import { encodeJsonFrame, FrameDecoderStream } from "@shoal/shoal/net";
 * const bytes = encodeJsonFrame({ type: "ping" });
 * const frames = await Array.fromAsync(
 *   ReadableStream.from([bytes.subarray(0, 3), bytes.subarray(3)])
 *     .pipeThrough(new FrameDecoderStream()),
 * );
 * if (frames.length !== 1) throw new Error("expected one frame");
 * ```
 */
export class FrameDecoderStream extends TransformStream<Uint8Array, Frame> {
  /**
   * Creates the stream.
   *
   * @param options Limits and the codec.
   */
  constructor(options: FrameDecoderOptions = {}) {
    const decoder = new FrameDecoder(options);
    super({
      transform(chunk, controller) {
        for (const frame of decoder.push(chunk)) controller.enqueue(frame);
      },
      flush() {
        if (!decoder.idle) {
          throw new ProtocolError(
            `Cannot accept stream: it ended inside a frame (${decoder.bufferedBytes} bytes pending)`,
          );
        }
      },
    });
  }
}

/**
 * A `TransformStream` from {@linkcode Frame}s to bytes.
 *
 * @example Encoding frames
 * ```ts
 * import { FrameEncoderStream } from "@shoal/shoal/net";
 * const chunks = await Array.fromAsync(
 *   ReadableStream.from([{ kind: "json" as const, message: { type: "ping" } }])
 *     .pipeThrough(new FrameEncoderStream()),
 * );
 * if (chunks.length !== 1) throw new Error("expected one chunk");
 * ```
 */
export class FrameEncoderStream extends TransformStream<Frame, Uint8Array> {
  /**
   * Creates the stream.
   *
   * @param options The codec.
   */
  constructor(options: FrameEncoderOptions = {}) {
    const codec = options.codec ?? jsonCodec;
    super({
      transform(frame, controller) {
        if (frame.kind === "json") {
          controller.enqueue(encodeJsonFrame(frame.message, codec));
        } else {
          controller.enqueue(encodeDataHeader(frame.rid, frame.bytes.length));
          controller.enqueue(frame.bytes);
        }
      },
    });
  }
}
