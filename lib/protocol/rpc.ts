/**
 * Requests and replies over a framed connection: a client that tags each
 * request with a request id (`rid`) and matches the replies, so many
 * requests can be in flight on one connection (pipelining).
 *
 * @module
 */
import {
  FrameConnection,
  type FrameConnectionOptions,
} from "../net/connection.ts";
import { type Duplex, tcpTransport, type Transport } from "../net/transport.ts";
import { ProtocolError, RemoteError, TimeoutError } from "../errors.ts";
import {
  AuthenticationError,
  privateSwarmTransport,
  swarmKey,
} from "./auth.ts";
import { HandshakeError, secureTransport } from "../net/secure.ts";
import type { Identity } from "../net/identity.ts";
import { MAX_RETRY_AFTER_MS, type ReplyValidators } from "./messages.ts";

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
   * Shared secret of a private swarm: {@linkcode RpcClient.connect} dials
   * through {@linkcode privateSwarmTransport}, which runs the mutual
   * challenge–response before returning. Without it no handshake is made
   * (open swarms).
   *
   * @default {undefined}
   */
  secret?: string;
  /**
   * How {@linkcode RpcClient.connect} reaches the remote side (encryption is
   * added on top unless `encryption` is `false`).
   *
   * @default {tcpTransport}
   */
  transport?: Transport;
  /**
   * Encrypt and authenticate the connection (Noise, see
   * `secureConnect`); `false` speaks the framed protocol in plaintext, with
   * the private-swarm challenge–response when `secret` is set.
   *
   * @default {true}
   */
  encryption?: boolean;
  /**
   * The key pair this side proves in the secure handshake.
   *
   * @default {ephemeralIdentity()}
   */
  identity?: Identity;
  /**
   * The public key the server must prove (e.g. as the tracker listed it);
   * a server proving another is refused with a `KeyMismatchError`.
   *
   * @default {undefined (any key)}
   */
  remoteKey?: Uint8Array;
}

interface Pending {
  resolve(reply: Reply): void;
  reject(error: Error): void;
  /** When the request times out, ms (`performance.now()`). */
  deadline: number;
  /** Rejects it with a timeout error (and tells the remote to cancel). */
  expire(): void;
}

/** Deadlines this close to the timer's are served by it, ms. */
const DEADLINE_SLACK_MS = 10;

/**
 * The client side of a framed connection: sends requests tagged with a
 * request id (`rid`) and matches replies, so many requests can be in flight
 * on one connection (pipelining).
 *
 * @example Asking a peer for a chunk
 * ```ts ignore
 * import { RpcClient } from "@shoal/shoal/protocol";
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
  /** One timer for every pending request's deadline (see `#arm`). */
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  readonly #loop: Promise<void>;

  /**
   * Wraps an open connection and starts reading replies.
   *
   * @param conn The connection (owned from now on).
   * @param options Limits.
   */
  constructor(conn: Duplex, options: RpcClientOptions = {}) {
    const {
      secret: _secret,
      transport: _transport,
      encryption: _encryption,
      identity: _identity,
      remoteKey: _remoteKey,
      ...frameOptions
    } = options;
    this.connection = new FrameConnection(conn, {
      ...frameOptions,
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
   * @param options Limits; `requestTimeoutMs` also bounds the connect (and
   *   the handshake); `transport` dials; `secret` authenticates first.
   * @returns The client.
   * @throws {AuthenticationError} If `secret` is set and the server does not
   *   prove it knows it.
   */
  static async connect(
    address: string,
    options: RpcClientOptions = {},
  ): Promise<RpcClient> {
    const base = options.transport ?? tcpTransport;
    const { secret } = options;
    let transport: Transport;
    if (options.encryption === false) {
      transport = secret === undefined
        ? base
        : privateSwarmTransport(base, secret);
    } else {
      transport = secureTransport(base, {
        ...(options.identity ? { identity: options.identity } : {}),
        ...(secret !== undefined ? { psk: swarmKey(secret) } : {}),
      });
    }
    let conn: Duplex;
    try {
      conn = await transport.dial(address, {
        timeoutMs: options.requestTimeoutMs ?? 10_000,
        ...(options.remoteKey ? { remoteKey: options.remoteKey } : {}),
      });
    } catch (error) {
      if (error instanceof HandshakeError) {
        // A private server refusing a client without the secret answers
        // like a plaintext one: an `auth_required` error.
        if (error.reason === "secret_required") {
          throw new RemoteError("auth_required", error.message);
        }
        throw new AuthenticationError(error.message, { cause: error });
      }
      throw error;
    }
    return new RpcClient(conn, options);
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
        // The timer stays armed while idle: a connection asked one request
        // after another (a download lane) then sets about one timer per
        // timeout period, not one per request. It fires once, finds nothing
        // due, and is not set again until the next request.
        if (!(reply instanceof Uint8Array) && reply.type === "error") {
          pending.reject(
            new RemoteError(
              typeof reply.code === "string"
                ? reply.code.slice(0, 64)
                : "error",
              typeof reply.message === "string"
                ? reply.message.slice(0, 512)
                : "Remote error",
              typeof reply.retryAfterMs === "number" && reply.retryAfterMs >= 0
                ? Math.min(reply.retryAfterMs, MAX_RETRY_AFTER_MS)
                : undefined,
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
      pending.reject(this.#failure);
      this.#pending.delete(rid);
    }
    this.#disarmIfIdle();
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
        this.#disarmIfIdle();
        // Tell the remote side not to bother; a late reply is ignored.
        this.connection.send({ type: "cancel", target: rid }).catch(() => {});
        reject(signal!.reason);
      };
      const expire = () => {
        signal?.removeEventListener("abort", onAbort);
        this.connection.send({ type: "cancel", target: rid }).catch(() => {});
        reject(
          new TimeoutError(
            `Cannot complete ${
              String(message.type)
            } request: no reply within ${timeoutMs} ms`,
          ),
        );
      };
      const deadline = performance.now() + timeoutMs;
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
        deadline,
        expire,
      });
      this.#arm(deadline);
      this.connection.send({ ...message, rid }).catch((error) =>
        this.#fail(error as Error)
      );
    });
  }

  /**
   * Makes sure the client's one timer fires by `deadline`. Requests mostly
   * share one timeout, so a new request's deadline is later than the armed
   * one and costs no timer: a busy connection sets about one timer per
   * timeout period instead of one per request.
   */
  #arm(deadline: number): void {
    if (this.#timer !== undefined && this.#timerAt <= deadline) return;
    clearTimeout(this.#timer);
    this.#timerAt = deadline;
    this.#timer = setTimeout(
      this.#expire,
      Math.max(0, deadline - performance.now()),
    );
  }

  /** Times out the requests whose deadline passed; waits for the rest. */
  #expire = (): void => {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = performance.now() + DEADLINE_SLACK_MS;
    let next = Infinity;
    for (const [rid, pending] of this.#pending) {
      if (pending.deadline <= now) {
        this.#pending.delete(rid);
        pending.expire();
      } else next = Math.min(next, pending.deadline);
    }
    if (next < Infinity) this.#arm(next);
  };

  /** Drops the timer once no request is pending. */
  #disarmIfIdle(): void {
    if (this.#pending.size > 0 || this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
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

  /**
   * Sends a request and returns its reply, validated and typed by a reply
   * map (`peerReplies` or `trackerReplies`): no `reply.type` checks.
   *
   * @param replies Validators per request type.
   * @param message The request; its `type` picks the validator.
   * @param options Time limit and cancellation.
   * @returns The validated reply.
   * @throws {RemoteError} If the remote side answers with an error.
   * @throws {ProtocolError} If the reply does not fit the request.
   *
   * @example Pinging a peer
   * ```ts ignore
   * import { peerReplies, RpcClient } from "@shoal/shoal/protocol";
   * await using rpc = await RpcClient.connect("127.0.0.1:10001");
   * const pong = await rpc.ask(peerReplies, { type: "ping" });
   * ```
   */
  async ask<M, K extends keyof M & string>(
    replies: ReplyValidators<M>,
    message: { type: K } & Record<string, unknown>,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<M[K]> {
    const reply = await this.request(
      message,
      options.timeoutMs ?? this.#requestTimeoutMs,
      options.signal,
    );
    try {
      return replies[message.type](reply);
    } catch (error) {
      if (reply instanceof Uint8Array) this.#discard?.(reply);
      throw error;
    }
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
