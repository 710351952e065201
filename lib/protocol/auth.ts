/**
 * Private swarms: the key a secure (Noise `XXpsk3`) handshake binds
 * ({@linkcode swarmKey}), and for plaintext connections (`encryption:
 * false`) a mutual HMAC-SHA256 challenge–response on the framed protocol, so
 * only holders of a shared secret can talk to a tracker or peer. The secret
 * itself never crosses the wire.
 *
 * The exchange, each message a JSON frame matched by `rid` like any request:
 *
 * ```text
 * client → {type:"hello", nonce: Nc}
 * server → {type:"challenge", nonce: Ns, proof: HMAC(K, "shoal-server" ‖ Nc ‖ Ns)}
 * client → {type:"auth", proof: HMAC(K, "shoal-client" ‖ Ns ‖ Nc)}
 * server → {type:"welcome"}
 * ```
 *
 * `Nc` and `Ns` are random 32-byte nonces (64 hex digits on the wire) and
 * `K = scrypt(secret)`, derived once per process, so that a guess of the
 * secret checked against a recorded handshake costs an scrypt run.
 *
 * @module
 */
import {
  createHmac,
  randomBytes,
  scryptSync,
  timingSafeEqual,
} from "node:crypto";
import { Buffer } from "node:buffer";
import { type FrameConnection, writeAll } from "../net/connection.ts";
import { encodeJsonFrame, type Frame, FrameDecoder } from "../net/wire.ts";
import type { DialOptions, Duplex, Transport } from "../net/transport.ts";
import { SecureDuplex } from "../net/secure.ts";
import { ProtocolError, RemoteError, TimeoutError } from "../errors.ts";

/** Bytes in each handshake nonce. */
export const NONCE_BYTES = 32;
/** Shortest secret accepted, in UTF-8 bytes. */
export const MIN_SECRET_BYTES = 16;
/** Longest secret accepted, in UTF-8 bytes. */
export const MAX_SECRET_BYTES = 1024;
/** Environment variable the command-line programs read the secret from. */
export const SECRET_ENV = "SHOAL_SECRET";
/**
 * Status a private server answers a seed-protocol (JSON-line) request with:
 * that protocol has no way to authenticate.
 */
export const PRIVATE_SWARM_STATUS =
  "error: this swarm is private; a secret is required";

const SCRYPT_SALT = "shoal-swarm-secret-v1";
const HEX_NONCE = /^[0-9a-f]{64}$/;
const keys = new Map<string, Buffer>();

/**
 * A handshake that failed on the client side: the server could not prove it
 * knows the secret (wrong secret), answered like a server without one, or
 * sent a malformed challenge.
 *
 * @example Recognising a wrong secret
 * ```ts
 * import { AuthenticationError } from "@shoal/shoal";
 * const error = new AuthenticationError("Cannot authenticate with a:1: wrong secret");
 * if (!(error instanceof AuthenticationError)) throw new Error("unreachable");
 * ```
 */
export class AuthenticationError extends ProtocolError {
  /**
   * Creates the error.
   *
   * @param message What failed, naming the server.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AuthenticationError";
  }
}

/**
 * Checks that a secret is usable: 16 to 1024 UTF-8 bytes. Use a random one,
 * e.g. `openssl rand -hex 32`: a guessable secret can be tried offline
 * against a recorded handshake.
 *
 * @param secret The shared secret.
 * @returns The secret.
 * @throws {RangeError} If it is too short or too long.
 *
 * @example Accepting a random secret
 * ```ts
 * import { validateSecret } from "@shoal/shoal/protocol";
 * validateSecret("4f1c2a9e0b7d6e5f4f1c2a9e0b7d6e5f");
 * ```
 */
export function validateSecret(secret: string): string {
  const bytes = new TextEncoder().encode(secret).length;
  if (bytes < MIN_SECRET_BYTES || bytes > MAX_SECRET_BYTES) {
    throw new RangeError(
      `Cannot use a ${bytes}-byte secret: use ${MIN_SECRET_BYTES} to ${MAX_SECRET_BYTES} bytes (e.g. openssl rand -hex 32)`,
    );
  }
  return secret;
}

/** The HMAC key for a secret (scrypt, derived once per process). */
function keyFor(secret: string): Buffer {
  let key = keys.get(secret);
  if (!key) {
    validateSecret(secret);
    key = scryptSync(secret, SCRYPT_SALT, 32, { N: 16384, r: 8, p: 1 });
    if (keys.size >= 8) keys.clear(); // Processes use one or two secrets.
    keys.set(secret, key);
  }
  return key;
}

/**
 * The 32-byte key a private swarm's secure (Noise `XXpsk3`) handshakes use
 * as their pre-shared key: derived from the secret's scrypt hash, so a guess
 * checked against a recorded handshake still costs an scrypt run.
 *
 * @param secret The shared secret (16 to 1024 UTF-8 bytes).
 * @returns The pre-shared key.
 * @throws {RangeError} If the secret is too short or too long.
 *
 * @example Deriving the swarm key
 * ```ts
 * import { swarmKey } from "@shoal/shoal/protocol";
 * const key = swarmKey("correct horse battery staple");
 * if (key.length !== 32) throw new Error();
 * ```
 */
export function swarmKey(secret: string): Uint8Array {
  return new Uint8Array(
    createHmac("sha256", keyFor(secret)).update("shoal-noise-psk-v1")
      .digest(),
  );
}

function proof(
  secret: string,
  role: "shoal-server" | "shoal-client",
  first: Uint8Array,
  second: Uint8Array,
): Buffer {
  return createHmac("sha256", keyFor(secret)).update(role).update(first)
    .update(second).digest();
}

/** Decodes 64 lowercase hex digits, or `undefined` for anything else. */
function decodeHex(value: unknown): Buffer | undefined {
  return typeof value === "string" && HEX_NONCE.test(value)
    ? Buffer.from(value, "hex")
    : undefined;
}

/** The part of an RPC client the handshake needs. */
export interface AuthTransport {
  /** Sends a request and resolves with a JSON reply of type `expected`. */
  call(
    message: Record<string, unknown>,
    expected: string,
  ): Promise<Record<string, unknown>>;
}

function remoteCode(error: unknown): string | undefined {
  return error instanceof Error && error.name === "RemoteError"
    ? String((error as Error & { code?: unknown }).code)
    : undefined;
}

/**
 * The client side of the handshake over an RPC client. On success the
 * connection is authenticated both ways. {@linkcode privateSwarmTransport}
 * runs the same exchange on a bare connection, which is what
 * `RpcClient.connect` with a `secret` uses.
 *
 * @param client The connected client.
 * @param secret The shared secret.
 * @param address The server's `host:port`, for error messages.
 * @throws {AuthenticationError} If the server does not know the secret, has
 *   none, or answers something malformed.
 *
 * @example Authenticating to a private tracker
 * ```ts
 * import { authenticate, RpcClient } from "@shoal/shoal/protocol";
 * import { startTracker } from "@shoal/shoal";
 * const secret = "correct horse battery staple";
 * await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1", secret });
 * // Plaintext: a secure connection proves the secret in its handshake.
 * await using client = await RpcClient.connect(tracker.address, {
 *   encryption: false,
 * });
 * await authenticate(client, secret, tracker.address);
 * await client.call({ type: "list" }, "files");
 * ```
 */
export async function authenticate(
  client: AuthTransport,
  secret: string,
  address: string,
): Promise<void> {
  await handshake(
    (message, expected) => client.call(message, expected),
    secret,
    address,
  );
}

/** The client's exchange, over any way of making a call. */
async function handshake(
  call: AuthTransport["call"],
  secret: string,
  address: string,
): Promise<void> {
  const clientNonce = randomBytes(NONCE_BYTES);
  let challenge: Record<string, unknown>;
  try {
    challenge = await call(
      { type: "hello", nonce: clientNonce.toString("hex") },
      "challenge",
    );
  } catch (error) {
    if (remoteCode(error) === "bad_request") {
      throw new AuthenticationError(
        `Cannot authenticate with ${address}: it runs without a secret (not a private swarm)`,
        { cause: error },
      );
    }
    throw error;
  }
  const serverNonce = decodeHex(challenge.nonce);
  const serverProof = decodeHex(challenge.proof);
  if (!serverNonce || !serverProof) {
    throw new AuthenticationError(
      `Cannot authenticate with ${address}: its challenge is malformed`,
    );
  }
  const expected = proof(secret, "shoal-server", clientNonce, serverNonce);
  if (!timingSafeEqual(serverProof, expected)) {
    throw new AuthenticationError(
      `Cannot authenticate with ${address}: wrong secret`,
    );
  }
  try {
    await call(
      {
        type: "auth",
        proof: proof(secret, "shoal-client", serverNonce, clientNonce)
          .toString("hex"),
      },
      "welcome",
    );
  } catch (error) {
    if (remoteCode(error) === "auth_failed") {
      throw new AuthenticationError(
        `Cannot authenticate with ${address}: wrong secret`,
        { cause: error },
      );
    }
    throw error;
  }
}

/** Largest handshake frame a client accepts from the server. */
const MAX_HANDSHAKE_FRAME = 64 * 1024;

/**
 * Runs the client's handshake on a bare connection: one JSON frame out, one
 * back, per step. The server sends nothing it was not asked for, so no byte
 * past a reply is read.
 */
async function authenticateDuplex(
  conn: Duplex,
  secret: string,
  address: string,
  timeoutMs: number | undefined,
): Promise<void> {
  const decoder = new FrameDecoder({
    maxFrameSize: MAX_HANDSHAKE_FRAME,
    allowData: false,
  });
  const buffer = new Uint8Array(4096);
  let rid = 0;
  const call = async (
    message: Record<string, unknown>,
    expected: string,
  ): Promise<Record<string, unknown>> => {
    await writeAll(conn, encodeJsonFrame({ ...message, rid: ++rid }));
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) {
        throw new ProtocolError(
          `Cannot authenticate with ${address}: it closed the connection during the handshake`,
        );
      }
      const frames = decoder.push(buffer.subarray(0, n));
      if (frames.length === 0) continue;
      const frame = frames[0]!;
      if (frames.length > 1 || !decoder.idle || frame.kind !== "json") {
        throw new AuthenticationError(
          `Cannot authenticate with ${address}: it sent more than one reply`,
        );
      }
      const reply = frame.message as Record<string, unknown>;
      if (reply.type === "error") {
        throw new RemoteError(
          typeof reply.code === "string" ? reply.code.slice(0, 64) : "error",
          typeof reply.message === "string"
            ? reply.message.slice(0, 512)
            : "Remote error",
        );
      }
      if (reply.type !== expected || reply.rid !== rid) {
        throw new ProtocolError(
          `Cannot accept reply to ${
            String(message.type)
          }: expected "${expected}"`,
        );
      }
      return reply;
    }
  };
  let timedOut = false;
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
    timedOut = true;
    conn.close();
  }, timeoutMs);
  try {
    await handshake(call, secret, address);
  } catch (error) {
    if (timedOut) {
      throw new TimeoutError(
        `Cannot authenticate with ${address}: no handshake within ${timeoutMs} ms`,
      );
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Wraps a transport so every connection it dials runs the private-swarm
 * handshake first: what `dial` returns is authenticated both ways, but not
 * encrypted. This is the plaintext mode's handshake (`encryption: false`);
 * by default a connection is a secure one whose Noise handshake binds the
 * secret (see `swarmKey`). Listening
 * is passed through: a server authenticates each framed connection with
 * {@linkcode serverRequests}, after telling seed-protocol clients apart
 * (they cannot authenticate and are refused with
 * {@linkcode PRIVATE_SWARM_STATUS}).
 *
 * @param base The transport underneath (e.g. `tcpTransport`).
 * @param secret The shared secret (16 to 1024 UTF-8 bytes).
 * @returns The wrapping transport.
 * @throws {RangeError} If the secret is too short or too long.
 *
 * @example Dialling a private tracker
 * ```ts
 * import { privateSwarmTransport, RpcClient } from "@shoal/shoal/protocol";
 * import { tcpTransport } from "@shoal/shoal/net";
 * import { startTracker } from "@shoal/shoal";
 * const secret = "correct horse battery staple";
 * await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1", secret });
 * await using client = await RpcClient.connect(tracker.address, {
 *   transport: privateSwarmTransport(tcpTransport, secret),
 *   encryption: false, // this handshake is for plaintext connections
 * });
 * await client.call({ type: "list" }, "files");
 * ```
 */
export function privateSwarmTransport(
  base: Transport,
  secret: string,
): Transport {
  validateSecret(secret);
  return {
    async dial(address: string, options: DialOptions = {}): Promise<Duplex> {
      const conn = await base.dial(address, options);
      try {
        await authenticateDuplex(conn, secret, address, options.timeoutMs);
      } catch (error) {
        try {
          conn.close();
        } catch { /* closed by a timeout */ }
        throw error;
      }
      return conn;
    },
    listen: (options) => base.listen(options),
  };
}

/** Options for {@linkcode acceptAuthentication}. */
export interface AcceptAuthenticationOptions {
  /**
   * The whole handshake must finish within this time, ms.
   *
   * @default {10000}
   */
  timeoutMs?: number;
  /** The client's `host:port`, for error messages. @default {"client"} */
  remote?: string;
}

/**
 * The server side of the handshake: reads the client's first frames from
 * `frames` and answers them on `connection`. Any first message other than a
 * `hello` is answered with an `auth_required` error; a wrong proof with
 * `auth_failed`. Either way the caller must close the connection.
 *
 * @param connection The server's framed connection.
 * @param frames The connection's frame iterator (`connection.frames()`),
 *   to go on reading requests from after the handshake.
 * @param secret The shared secret.
 * @param options Time limit and the remote address.
 * @throws {ProtocolError} If the client did not authenticate (close the
 *   connection).
 *
 * @example Guarding a framed server
 * ```ts ignore
 * const frames = connection.frames();
 * await acceptAuthentication(connection, frames, secret, { remote });
 * for await (const frame of frames) serve(frame);
 * ```
 */
export async function acceptAuthentication(
  connection: FrameConnection,
  frames: AsyncIterator<Frame>,
  secret: string,
  options: AcceptAuthenticationOptions = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const remote = options.remote ?? "client";
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    connection.close();
  }, timeoutMs);
  const timeout = () =>
    new ProtocolError(
      `Cannot authenticate ${remote}: no handshake within ${timeoutMs} ms`,
    );
  const next = async (): Promise<Record<string, unknown>> => {
    let result: IteratorResult<Frame>;
    try {
      result = await frames.next();
    } catch (error) {
      if (timedOut) throw timeout();
      throw error;
    }
    if (timedOut) throw timeout();
    if (result.done) {
      throw new ProtocolError(
        `Cannot authenticate ${remote}: it closed the connection during the handshake`,
      );
    }
    if (result.value.kind !== "json") {
      throw new ProtocolError(
        `Cannot authenticate ${remote}: it sent data during the handshake`,
      );
    }
    return result.value.message as Record<string, unknown>;
  };
  const refuse = async (
    rid: unknown,
    code: string,
    message: string,
    why: string,
  ): Promise<never> => {
    await connection.send({ type: "error", code, message, rid }).catch(
      () => {},
    );
    throw new ProtocolError(`Cannot authenticate ${remote}: ${why}`);
  };
  try {
    const hello = await next();
    if (hello.type !== "hello") {
      const type = typeof hello.type === "string"
        ? JSON.stringify(hello.type.slice(0, 32))
        : "a";
      return await refuse(
        hello.rid,
        "auth_required",
        `Cannot serve ${type} request: this swarm is private; a secret is required (--secret or ${SECRET_ENV})`,
        `it sent a ${type} request instead of a hello (this swarm is private)`,
      );
    }
    const clientNonce = decodeHex(hello.nonce);
    if (!clientNonce) {
      return await refuse(
        hello.rid,
        "bad_request",
        `Cannot accept hello: the nonce must be ${
          NONCE_BYTES * 2
        } lowercase hex digits`,
        "its hello has a malformed nonce",
      );
    }
    const serverNonce = randomBytes(NONCE_BYTES);
    await connection.send({
      type: "challenge",
      nonce: serverNonce.toString("hex"),
      proof: proof(secret, "shoal-server", clientNonce, serverNonce)
        .toString("hex"),
      rid: hello.rid,
    });
    const auth = await next();
    const given = auth.type === "auth" ? decodeHex(auth.proof) : undefined;
    const expected = proof(secret, "shoal-client", serverNonce, clientNonce);
    if (!given || !timingSafeEqual(given, expected)) {
      return await refuse(
        auth.rid,
        "auth_failed",
        "wrong secret",
        "wrong secret",
      );
    }
    await connection.send({ type: "welcome", rid: auth.rid });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Yields the JSON requests a server connection receives, after the
 * private-swarm handshake when `secret` is set (shared by the tracker and the
 * peer). Data frames are refused by the connection's decoder
 * (`allowData: false`); one that still arrives is a protocol error.
 *
 * @param connection The server side of the connection.
 * @param secret The swarm secret, or `undefined` for an open swarm.
 * @param options Handshake timeout and the remote address for messages.
 * @returns The request objects, in order.
 * @throws {ProtocolError} On a failed handshake or a data frame.
 */
export async function* serverRequests(
  connection: FrameConnection,
  secret: string | undefined,
  options: AcceptAuthenticationOptions = {},
): AsyncGenerator<Record<string, unknown>, void, void> {
  const frames = connection.frames();
  // A secure connection proved the swarm key in its handshake already.
  if (secret !== undefined && !(connection.conn instanceof SecureDuplex)) {
    await acceptAuthentication(connection, frames, secret, options);
  }
  for await (const frame of frames) {
    if (frame.kind !== "json") {
      throw new ProtocolError(
        "Cannot accept data frame: this side takes only JSON requests",
      );
    }
    yield frame.message as Record<string, unknown>;
  }
}
