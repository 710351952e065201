/**
 * Framed connections over TCP: reading frames with bounded buffers and read
 * timeouts, serialised writes, and request/response matching by request id.
 *
 * @module
 */
import { authenticate } from "../protocol/auth.ts";
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
import { formatHostPort } from "./address.ts";
import { type Duplex, tcpTransport } from "./transport.ts";
export { TimeoutError } from "../errors.ts";
export { formatHostPort, type HostPort, parseHostPort } from "./address.ts";

/** Size of the buffer each connection reads into: large reads, few calls. */
const READ_BUFFER_SIZE = 256 * 1024;
/** Most frames waiting to be written before the connection is dropped. */
const MAX_QUEUED_WRITES = 1024;
/** Payload remainders at least this large are read without a copy. */
const DIRECT_READ_MIN = 16 * 1024;

/**
 * An error reported by the remote side in an `error` reply
 * (`{ type: "error", code, message }`).
 *
 * @example Telling "not found" apart
 * ```ts
 * import { RemoteError } from "./connection.ts";
 * const error = new RemoteError("not_found", "No such file");
 * if (error.code !== "not_found") throw new Error("wrong code");
 * ```
 */
export class RemoteError extends Error {
  /** Machine-readable code, e.g. `not_found`, `unknown_peer`, `bad_request`. */
  readonly code: string;
  /**
   * Creates the error.
   *
   * @param code Machine-readable code.
   * @param message Human-readable text from the remote side.
   */
  constructor(code: string, message: string) {
    super(message);
    this.name = "RemoteError";
    this.code = code;
  }
}

/**
 * Opens a TCP connection with a time limit.
 *
 * @param address `host:port`.
 * @param timeoutMs Give up after this many milliseconds.
 * @returns The connection.
 * @throws {TimeoutError} If the connection is not made in time.
 * @deprecated Dial through a {@linkcode Transport} (`tcpTransport.dial`).
 */
export function connectWithTimeout(
  address: string,
  timeoutMs: number,
): Promise<Duplex> {
  return tcpTransport.dial(address, { timeoutMs });
}

/**
 * Writes all bytes to a connection or file (a single `write` may be partial).
 *
 * @param writer The connection or file.
 * @param bytes The bytes to write.
 *
 * @example Writing to a connection
 * ```ts
 * import { writeAll } from "./connection.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener.accept();
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * await writeAll(conn, new Uint8Array([1, 2, 3]));
 * conn.close();
 * (await accepted).close();
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
}

/**
 * A TCP connection that carries frames: an async iterator of incoming frames
 * (bounded: one frame at a time) and serialised frame writes.
 *
 * @example Exchanging a frame
 * ```ts
 * import { FrameConnection } from "./connection.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener.accept();
 * const client = new FrameConnection(
 *   await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
 * );
 * const server = new FrameConnection(await accepted);
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
  #closed = false;

  /**
   * Wraps a connection.
   *
   * @param conn The TCP connection (owned from now on).
   * @param options Limits and sniffed prefix.
   */
  constructor(conn: Duplex, options: FrameConnectionOptions = {}) {
    this.conn = conn;
    // Frames are written whole; Nagle's algorithm would only add latency.
    (conn as Partial<Deno.TcpConn>).setNoDelay?.(true);
    this.#decoder = new FrameDecoder({
      maxFrameSize: options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE,
      allowData: options.allowData ?? true,
      ...(options.allocate ? { allocate: options.allocate } : {}),
    });
    this.#readTimeoutMs = options.readTimeoutMs ?? 30_000;
    this.#writeTimeoutMs = options.writeTimeoutMs ?? 30_000;
    this.#readBufferSize = options.readBufferSize ?? READ_BUFFER_SIZE;
    this.#prefix = options.prefix;
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
    if (this.#prefix) {
      const prefix = this.#prefix;
      this.#prefix = undefined;
      yield* this.#decoder.push(prefix);
    }
    const buffer = new Uint8Array(this.#readBufferSize);
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
      yield* this.#decoder.push(buffer.subarray(0, n));
    }
  }

  async #readWithTimeout(buffer: Uint8Array): Promise<number | null> {
    if (this.#closed) return null;
    if (this.#readTimeoutMs <= 0) return await this.#read(buffer);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.close();
    }, this.#readTimeoutMs);
    try {
      return await this.#read(buffer);
    } finally {
      clearTimeout(timer);
      if (timedOut) {
        // deno-lint-ignore no-unsafe-finally
        throw new TimeoutError(
          `Cannot read from ${
            describe(this.conn)
          }: idle for ${this.#readTimeoutMs} ms`,
        );
      }
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
   * Sends a JSON message as one frame. Writes are queued, never interleaved.
   *
   * @param message The message object.
   */
  send(message: unknown): Promise<void> {
    return this.#enqueue([encodeJsonFrame(message)]);
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
      const timer = this.#writeTimeoutMs > 0
        ? setTimeout(() => this.close(), this.#writeTimeoutMs)
        : undefined;
      try {
        for (const part of parts) await writeAll(this.conn, part);
      } finally {
        clearTimeout(timer);
      }
    }).finally(() => this.#queuedWrites--);
    this.#writeChain = next.catch(() => {});
    return next;
  }

  /** Closes the connection (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
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

/** A reply to a request: a JSON object or a data frame's bytes. */
export type Reply = Record<string, unknown> | Uint8Array;

/** Options for {@linkcode RpcClient}. */
export interface RpcClientOptions extends FrameConnectionOptions {
  /** Receives the bytes of a data reply nobody waits for any more. */
  discard?: (bytes: Uint8Array) => void;
  /**
   * How long a request waits for its reply.
   *
   * @default {10000}
   */
  requestTimeoutMs?: number;
  /**
   * Shared secret of a private swarm: {@linkcode RpcClient.connect} runs the
   * mutual challenge–response ({@linkcode authenticate}) before returning.
   * Without it no handshake is made (open swarms).
   *
   * @default {undefined}
   */
  secret?: string;
}

interface Pending {
  resolve(reply: Reply): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * The client side of a framed connection: sends requests tagged with a
 * request id (`rid`) and matches replies, so many requests can be in flight
 * on one connection (pipelining).
 *
 * @example Asking a peer for a chunk
 * ```ts ignore
 * import { RpcClient } from "./connection.ts";
 * await using client = await RpcClient.connect("127.0.0.1:10001");
 * const bytes = await client.request({ type: "chunk", id: "…", index: 0 });
 * ```
 */
export class RpcClient {
  /** The framed connection. */
  readonly connection: FrameConnection;
  readonly #requestTimeoutMs: number;
  readonly #discard: ((bytes: Uint8Array) => void) | undefined;
  readonly #pending = new Map<number, Pending>();
  #nextRid = 1;
  #failure: Error | undefined;
  readonly #loop: Promise<void>;

  /**
   * Wraps an open connection and starts reading replies.
   *
   * @param conn The TCP connection (owned from now on).
   * @param options Limits.
   */
  constructor(conn: Duplex, options: RpcClientOptions = {}) {
    this.connection = new FrameConnection(conn, {
      ...options,
      // Idle time between requests is fine; a stalled reply is caught by the
      // per-request timeout instead.
      readTimeoutMs: 0,
    });
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.#discard = options.discard;
    this.#loop = this.#readLoop();
  }

  /**
   * Connects to `address` and returns a client.
   *
   * @param address `host:port`.
   * @param options Limits; `requestTimeoutMs` also bounds the connect;
   *   `secret` authenticates the connection first.
   * @returns The client.
   * @throws {AuthenticationError} If `secret` is set and the server does not
   *   prove it knows it.
   */
  static async connect(
    address: string,
    options: RpcClientOptions = {},
  ): Promise<RpcClient> {
    const conn = await connectWithTimeout(
      address,
      options.requestTimeoutMs ?? 10_000,
    );
    const client = new RpcClient(conn, options);
    if (options.secret !== undefined) {
      try {
        await authenticate(client, options.secret, address);
      } catch (error) {
        await client.close();
        throw error;
      }
    }
    return client;
  }

  async #readLoop(): Promise<void> {
    try {
      for await (const frame of this.connection.frames()) {
        let rid: unknown;
        let reply: Reply;
        if (frame.kind === "data") {
          rid = frame.rid;
          reply = frame.bytes;
        } else {
          const message = frame.message as Record<string, unknown>;
          rid = message.rid;
          reply = message;
        }
        const pending = typeof rid === "number"
          ? this.#pending.get(rid)
          : undefined;
        if (!pending) {
          // A late reply to a request that timed out or was cancelled.
          if (reply instanceof Uint8Array) this.#discard?.(reply);
          continue;
        }
        this.#pending.delete(rid as number);
        clearTimeout(pending.timer);
        if (!(reply instanceof Uint8Array) && reply.type === "error") {
          pending.reject(
            new RemoteError(
              typeof reply.code === "string"
                ? reply.code.slice(0, 64)
                : "error",
              typeof reply.message === "string"
                ? reply.message.slice(0, 512)
                : "Remote error",
            ),
          );
        } else {
          pending.resolve(reply);
        }
      }
      this.#fail(new Deno.errors.ConnectionReset("Connection closed by peer"));
    } catch (error) {
      this.#fail(error as Error);
    }
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const [rid, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.reject(this.#failure);
      this.#pending.delete(rid);
    }
    this.connection.close();
  }

  /**
   * Sends a request and waits for its reply.
   *
   * @param message The request (a `rid` is added).
   * @param timeoutMs Override of the request timeout.
   * @param signal Cancels the request (a `cancel` is sent to the remote).
   * @returns The reply object, or the bytes of a data reply.
   * @throws {RemoteError} If the remote side answers with an error.
   * @throws {TimeoutError} If no reply comes in time.
   */
  request(
    message: Record<string, unknown>,
    timeoutMs: number = this.#requestTimeoutMs,
    signal?: AbortSignal,
  ): Promise<Reply> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (signal?.aborted) return Promise.reject(signal.reason);
    const rid = this.#nextRid;
    this.#nextRid = this.#nextRid >= 0x7fffffff ? 1 : this.#nextRid + 1;
    return new Promise<Reply>((resolve, reject) => {
      const onAbort = () => {
        if (!this.#pending.delete(rid)) return;
        clearTimeout(timer);
        // Tell the remote side not to bother; a late reply is ignored.
        this.connection.send({ type: "cancel", target: rid }).catch(() => {});
        reject(signal!.reason);
      };
      const timer = setTimeout(() => {
        this.#pending.delete(rid);
        signal?.removeEventListener("abort", onAbort);
        this.connection.send({ type: "cancel", target: rid }).catch(() => {});
        reject(
          new TimeoutError(
            `Cannot complete ${
              String(message.type)
            } request: no reply within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#pending.set(rid, {
        resolve: (reply) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(reply);
        },
        reject: (error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
        timer,
      });
      this.connection.send({ ...message, rid }).catch((error) =>
        this.#fail(error as Error)
      );
    });
  }

  /**
   * Sends a request and expects a JSON reply of type `expected`.
   *
   * @param message The request.
   * @param expected The reply type.
   * @returns The reply object.
   * @throws {ProtocolError} If the reply has another type or is data.
   */
  async call(
    message: Record<string, unknown>,
    expected: string,
  ): Promise<Record<string, unknown>> {
    const reply = await this.request(message);
    if (reply instanceof Uint8Array) this.#discard?.(reply);
    if (reply instanceof Uint8Array || reply.type !== expected) {
      throw new ProtocolError(
        `Cannot accept reply to ${
          String(message.type)
        }: expected "${expected}"`,
      );
    }
    return reply;
  }

  /** Closes the connection and fails pending requests. */
  async close(): Promise<void> {
    this.#fail(new Deno.errors.BadResource("Connection closed"));
    await this.#loop;
  }

  /** Same as {@linkcode RpcClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
