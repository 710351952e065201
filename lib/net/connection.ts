/**
 * Framed connections over any {@linkcode Duplex}: reading frames with bounded
 * buffers and read timeouts, and serialised writes.
 *
 * @module
 */
import {
  DATA_HEADER_SIZE,
  DEFAULT_MAX_FRAME_SIZE,
  encodeDataHeader,
  encodeJsonFrame,
  type Frame,
  FrameDecoder,
  ProtocolError,
} from "./wire.ts";
import { TimeoutError } from "../errors.ts";
import { type Codec, jsonCodec } from "./codec.ts";
import { formatHostPort } from "./address.ts";
import type { Duplex } from "./transport.ts";

/** Size of the buffer each connection reads into: large reads, few calls. */
const READ_BUFFER_SIZE = 256 * 1024;
/** Most frames waiting to be written before the connection is dropped. */
const MAX_QUEUED_WRITES = 1024;
/** Payload remainders at least this large are read without a copy. */
const DIRECT_READ_MIN = 16 * 1024;

/**
 * Writes all bytes to a connection or file (a single `write` may be partial).
 *
 * @param writer The connection or file.
 * @param bytes The bytes to write.
 *
 * @example Writing to a connection
 * ```ts
 * import { tcpTransport, writeAll } from "@shoal/shoal/net";
 * const listener = tcpTransport.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener[Symbol.asyncIterator]().next();
 * const conn = await tcpTransport.dial(`127.0.0.1:${listener.addr.port}`);
 * await writeAll(conn, new Uint8Array([1, 2, 3]));
 * conn.close();
 * (await accepted).value?.close();
 * listener.close();
 * ```
 */
export async function writeAll(
  writer: Writer,
  bytes: Uint8Array,
): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await writer.write(bytes.subarray(offset));
  }
}

/** Anything with a `write` that may write fewer bytes than given. */
export interface Writer {
  /** Writes some of `p`, returning how many bytes were written. */
  write(p: Uint8Array): Promise<number>;
}

/** Options for {@linkcode FrameConnection}. */
export interface FrameConnectionOptions {
  /**
   * Largest frame payload accepted.
   *
   * @default {DEFAULT_MAX_FRAME_SIZE}
   */
  maxFrameSize?: number;
  /**
   * Close the connection if no byte arrives for this long while a frame is
   * expected (0 disables).
   *
   * @default {30000}
   */
  readTimeoutMs?: number;
  /**
   * Accept data frames (servers that take only JSON requests say no).
   *
   * @default {true}
   */
  allowData?: boolean;
  /**
   * Close the connection if one frame cannot be written within this long
   * (the remote side stopped reading; 0 disables).
   *
   * @default {30000}
   */
  writeTimeoutMs?: number;
  /** Provides buffers for data frames (reuse; see `FrameDecoderOptions`). */
  allocate?: (size: number) => Uint8Array;
  /** Bytes already read from the connection (protocol sniffing). */
  prefix?: Uint8Array;
  /**
   * Size of the buffer reads go into. Large for downloads (few calls per
   * chunk); servers that only receive small requests use a small one so many
   * open connections cost little memory.
   *
   * @default {1048576}
   */
  readBufferSize?: number;
  /**
   * Encodes sent messages and decodes received JSON (control) frames; data
   * frames never pass through it. Both sides must use the same one.
   *
   * @default {jsonCodec}
   */
  codec?: Codec;
}

/**
 * A connection that carries frames: an async iterator of incoming frames
 * (bounded: one frame at a time) and serialised frame writes.
 *
 * @example Exchanging a frame
 * ```ts
 * import { FrameConnection, tcpTransport } from "@shoal/shoal/net";
 * const listener = tcpTransport.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener[Symbol.asyncIterator]().next();
 * const client = new FrameConnection(
 *   await tcpTransport.dial(`127.0.0.1:${listener.addr.port}`),
 * );
 * const server = new FrameConnection((await accepted).value!);
 * listener.close();
 * await client.send({ type: "ping" });
 * const frame = (await server.frames().next()).value;
 * if (frame?.kind !== "json") throw new Error("expected json");
 * client.close();
 * server.close();
 * ```
 */
export class FrameConnection {
  /** The underlying connection. */
  readonly conn: Duplex;
  readonly #decoder: FrameDecoder;
  readonly #readTimeoutMs: number;
  readonly #readBufferSize: number;
  #prefix: Uint8Array | undefined;
  #writeChain: Promise<void> = Promise.resolve();
  #queuedWrites = 0;
  readonly #writeTimeoutMs: number;
  readonly #codec: Codec;
  #closed = false;
  /** When the pending read times out (`Infinity`: no read pending). */
  #readDeadline = Infinity;
  /** When the frame being written times out (`Infinity`: none). */
  #writeDeadline = Infinity;
  #readTimedOut = false;
  /** Frames are being read (another read follows this one). */
  #reading = false;
  /** The one deadline timer (see `#arm`). */
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Wraps a connection.
   *
   * @param conn The TCP connection (owned from now on).
   * @param options Limits, codec and sniffed prefix.
   */
  constructor(conn: Duplex, options: FrameConnectionOptions = {}) {
    this.conn = conn;
    // Frames are written whole; Nagle's algorithm would only add latency.
    (conn as Partial<Deno.TcpConn>).setNoDelay?.(true);
    this.#codec = options.codec ?? jsonCodec;
    this.#decoder = new FrameDecoder({
      maxFrameSize: options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE,
      allowData: options.allowData ?? true,
      codec: this.#codec,
      ...(options.allocate ? { allocate: options.allocate } : {}),
    });
    this.#readTimeoutMs = options.readTimeoutMs ?? 30_000;
    this.#writeTimeoutMs = options.writeTimeoutMs ?? 30_000;
    this.#readBufferSize = options.readBufferSize ?? READ_BUFFER_SIZE;
    this.#prefix = options.prefix;
  }

  /** The codec of this connection's JSON (control) frames. */
  get codec(): Codec {
    return this.#codec;
  }

  /** True once {@linkcode FrameConnection.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Yields incoming frames until the remote side closes.
   *
   * @returns The frames, in order.
   * @throws {ProtocolError} On a malformed frame or a stream ending mid-frame.
   * @throws {TimeoutError} If a read stalls longer than the read timeout.
   */
  async *frames(): AsyncGenerator<Frame, void, void> {
    this.#reading = true;
    try {
      yield* this.#frames();
    } finally {
      this.#reading = false;
      this.#readDeadline = Infinity;
      this.#disarmIfIdle();
    }
  }

  async *#frames(): AsyncGenerator<Frame, void, void> {
    if (this.#prefix) {
      const prefix = this.#prefix;
      this.#prefix = undefined;
      yield* this.#decoder.push(prefix);
    }
    // Small at first (most connections carry a request or two), doubled
    // while reads fill it, up to the configured size.
    let buffer = new Uint8Array(Math.min(this.#readBufferSize, 4096));
    while (true) {
      // Large payloads are read straight into their own buffer: no copy.
      const target = this.#decoder.pendingPayload();
      if (target !== null && target.length >= DIRECT_READ_MIN) {
        const n = await this.#readWithTimeout(target);
        if (n === null) {
          throw new ProtocolError(
            `Cannot accept stream: it ended inside a frame (${this.#decoder.bufferedBytes} bytes pending)`,
          );
        }
        const frame = this.#decoder.commit(n);
        if (frame) yield frame;
        continue;
      }
      const n = await this.#readWithTimeout(buffer);
      if (n === null) {
        if (!this.#decoder.idle) {
          throw new ProtocolError(
            `Cannot accept stream: it ended inside a frame (${this.#decoder.bufferedBytes} bytes pending)`,
          );
        }
        return;
      }
      const full = n === buffer.length;
      yield* this.#decoder.push(buffer.subarray(0, n));
      if (full && buffer.length < this.#readBufferSize) {
        // The decoder copied what it keeps: the old buffer is free.
        buffer = new Uint8Array(
          Math.min(this.#readBufferSize, buffer.length * 2),
        );
      }
    }
  }

  async #readWithTimeout(buffer: Uint8Array): Promise<number | null> {
    if (this.#closed) return null;
    if (this.#readTimeoutMs <= 0) return await this.#read(buffer);
    this.#readDeadline = performance.now() + this.#readTimeoutMs;
    this.#arm();
    try {
      return await this.#read(buffer);
    } finally {
      // The timer stays for the next read (see `#arm`).
      this.#readDeadline = Infinity;
      if (this.#readTimedOut) {
        // deno-lint-ignore no-unsafe-finally
        throw new TimeoutError(
          `Cannot read from ${
            describe(this.conn)
          }: idle for ${this.#readTimeoutMs} ms`,
        );
      }
    }
  }

  /**
   * Makes sure the connection's one deadline timer is pending while a read or
   * write has a deadline. The timer is not moved on every operation: when it
   * fires early (the operation it was set for finished) it is set again for
   * the earliest deadline then pending, so a busy connection costs about one
   * timer per timeout period instead of one per read and write.
   */
  #arm(): void {
    if (this.#timer !== undefined || this.#closed) return;
    const due = Math.min(this.#readDeadline, this.#writeDeadline);
    if (due === Infinity) return;
    this.#timer = setTimeout(
      this.#onTimer,
      Math.max(0, due - performance.now()),
    );
  }

  #onTimer = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    if (this.#readDeadline <= now) {
      this.#readTimedOut = true;
      this.close();
    } else if (this.#writeDeadline <= now) {
      // The remote side stopped reading: close rather than hold the
      // connection forever.
      this.close();
    } else {
      this.#arm();
    }
  };

  /** Drops the deadline timer once no more reads or writes are coming. */
  #disarmIfIdle(): void {
    if (
      this.#timer !== undefined && !this.#reading &&
      this.#writeDeadline === Infinity
    ) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  async #read(buffer: Uint8Array): Promise<number | null> {
    try {
      return await this.conn.read(buffer);
    } catch (error) {
      if (this.#closed || isDisconnect(error)) return null;
      throw error;
    }
  }

  /**
   * Sends a message as one JSON (control) frame, encoded by the connection's
   * codec. Writes are queued, never interleaved.
   *
   * @param message The message object.
   * @throws {TypeError} If the codec cannot encode `message`.
   */
  send(message: unknown): Promise<void> {
    return this.#enqueue([encodeJsonFrame(message, this.#codec)]);
  }

  /**
   * Sends data bytes answering request `rid`, without copying them.
   *
   * @param rid Request id.
   * @param bytes The data.
   */
  sendData(rid: number, bytes: Uint8Array): Promise<void> {
    const header = encodeDataHeader(rid, bytes.length);
    if (bytes.length > 64 * 1024) return this.#enqueue([header, bytes]);
    // Small payloads: one write, one segment.
    const frame = new Uint8Array(header.length + bytes.length);
    frame.set(header);
    frame.set(bytes, header.length);
    return this.#enqueue([frame]);
  }

  /**
   * Sends a data frame answering request `rid` in one write, without
   * copying: `frame` holds {@linkcode DATA_HEADER_SIZE} spare bytes, which
   * receive the header, followed by the data.
   *
   * @param rid Request id.
   * @param frame Room for the header, then the data.
   * @throws {RangeError} If `frame` is shorter than the header.
   */
  sendDataFrame(rid: number, frame: Uint8Array): Promise<void> {
    if (frame.length < DATA_HEADER_SIZE) {
      throw new RangeError(
        `Cannot send a data frame of ${frame.length} bytes: it needs ${DATA_HEADER_SIZE} bytes of header room`,
      );
    }
    frame.set(encodeDataHeader(rid, frame.length - DATA_HEADER_SIZE));
    return this.#enqueue([frame]);
  }

  #enqueue(parts: Uint8Array[]): Promise<void> {
    if (this.#queuedWrites >= MAX_QUEUED_WRITES) {
      // The remote side keeps asking but does not read its answers.
      this.close();
      return Promise.reject(
        new ProtocolError(
          `Cannot write: ${this.#queuedWrites} frames are waiting for the remote side to read`,
        ),
      );
    }
    this.#queuedWrites++;
    const next = this.#writeChain.then(async () => {
      if (this.#closed) {
        throw new Deno.errors.BadResource("Cannot write: connection closed");
      }
      // A frame that cannot be written within this long means the remote
      // side stopped reading: close rather than hold the connection forever.
      if (this.#writeTimeoutMs > 0) {
        this.#writeDeadline = performance.now() + this.#writeTimeoutMs;
        this.#arm();
      }
      try {
        for (const part of parts) await writeAll(this.conn, part);
      } finally {
        this.#writeDeadline = Infinity;
        if (this.#queuedWrites <= 1) this.#disarmIfIdle();
      }
    }).finally(() => this.#queuedWrites--);
    this.#writeChain = next.catch(() => {});
    return next;
  }

  /** Closes the connection (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      this.conn.close();
    } catch {
      // Already closed by the runtime.
    }
  }
}

/** Whether an error means the remote side went away. */
export function isDisconnect(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.UnexpectedEof;
}

function describe(conn: Duplex): string {
  const addr = conn.remoteAddr;
  return formatHostPort(addr.hostname, addr.port);
}
