/**
 * Encrypted, authenticated connections: a Noise handshake
 * (`Noise_XX_25519_ChaChaPoly_SHA256`, or `XXpsk3` with a private swarm's
 * key) and then a stream of ChaCha20-Poly1305 records, as a
 * {@linkcode Duplex} the framed protocol runs over unchanged.
 *
 * On the wire the initiator first sends an 8-byte preamble, `00 "shoal" 01`
 * and a mode byte (0 open, 1 private), so a server tells it apart from a
 * framed (`01`/`02`) or seed-protocol (`{`) connection by its first byte. The
 * preamble is the Noise prologue, so changing it breaks the handshake. Every
 * handshake and transport message is a 2-byte big-endian length and the
 * message (at most 65535 bytes). A server that refuses the handshake sends a
 * zero length and a reason byte, then closes.
 *
 * @module
 */
import { type DhKeyPair, dhKeyPair, HandshakeState } from "./_noise.ts";
import type { DialOptions, Duplex, Transport } from "./transport.ts";
import { ProtocolError, TimeoutError } from "../errors.ts";
import { formatHostPort } from "./address.ts";
import { SecureDuplex } from "./secure_duplex.ts";
import { ephemeralIdentity, type Identity, peerIdOf } from "./identity.ts";

export { SecureDuplex };

/** The first byte of a Noise connection (frames start 1 or 2, text ≥ 0x20). */
export const SECURE_MARKER = 0x00;
const PREAMBLE_BYTES = 8;
const MODE_OPEN = 0;
const MODE_PRIVATE = 1;
const EMPTY = new Uint8Array(0);

/** Why a server refused a handshake (the byte after a zero length). */
const REFUSAL = {
  /** The server is private; the client has no secret. */
  secretRequired: 1,
  /** The server is open; the client has a secret. */
  noSecret: 2,
  /** The client's secret differs from the server's. */
  wrongSecret: 3,
} as const;

/** Options of both sides of a secure connection. */
export interface SecureOptions {
  /**
   * This side's long-lived key pair.
   *
   * @default {ephemeralIdentity()}
   */
  identity?: Identity;
  /**
   * The private swarm's 32-byte key (derived from its secret, see
   * `swarmKey` in `@shoal/shoal/protocol`): both sides must have the same
   * one, or both none.
   *
   * @default {undefined}
   */
  psk?: Uint8Array;
  /** The handshake must finish within this many ms. @default {10000} */
  timeoutMs?: number;
}

/** Options of {@linkcode secureConnect}. */
export interface SecureConnectOptions extends SecureOptions {
  /**
   * The public key the server must prove (e.g. as listed by the tracker);
   * any other is refused with a {@linkcode KeyMismatchError}.
   *
   * @default {undefined (any key)}
   */
  remoteKey?: Uint8Array;
}

/**
 * A secure handshake that failed: the remote side does not know the swarm's
 * secret, runs without one while this side has one, or the reverse.
 *
 * @example Telling a refusal apart
 * ```ts
 * import { HandshakeError } from "@shoal/shoal/net";
 * const error = new HandshakeError("Cannot authenticate with a:1: wrong secret", "wrong_secret");
 * if (error.reason !== "wrong_secret") throw new Error();
 * ```
 */
export class HandshakeError extends ProtocolError {
  /** Why: `wrong_secret`, `secret_required` or `no_secret`. */
  readonly reason: "wrong_secret" | "secret_required" | "no_secret";

  /**
   * Creates the error.
   *
   * @param message What failed, naming the remote side.
   * @param reason Why.
   */
  constructor(message: string, reason: HandshakeError["reason"]) {
    super(message);
    this.name = "HandshakeError";
    this.reason = reason;
  }
}

/**
 * The remote side proved a key other than the one expected: the address was
 * taken over, or someone sits in the middle.
 *
 * @example Recognising a refused holder
 * ```ts
 * import { KeyMismatchError } from "@shoal/shoal/net";
 * const error = new KeyMismatchError("Cannot trust a:1: wrong key");
 * if (!(error instanceof KeyMismatchError)) throw new Error();
 * ```
 */
export class KeyMismatchError extends ProtocolError {
  /**
   * Creates the error.
   *
   * @param message What failed, naming the remote side and both ids.
   */
  constructor(message: string) {
    super(message);
    this.name = "KeyMismatchError";
  }
}

function pairOf(identity: Identity): DhKeyPair {
  return dhKeyPair(identity.privateKey);
}

const pairs = new WeakMap<Identity, DhKeyPair>();
function cachedPair(identity: Identity): DhKeyPair {
  let pair = pairs.get(identity);
  if (!pair) {
    pair = pairOf(identity);
    pairs.set(identity, pair);
  }
  return pair;
}

function preamble(mode: number): Uint8Array {
  return Uint8Array.of(SECURE_MARKER, 0x73, 0x68, 0x6f, 0x61, 0x6c, 1, mode);
}

function lengthPrefixed(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + message.length);
  out[0] = message.length >> 8;
  out[1] = message.length & 0xff;
  out.set(message, 2);
  return out;
}

async function writeAll(conn: Duplex, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

/** Buffered exact reads during a handshake; what is left goes on. */
class HandshakeReader {
  #buffer: Uint8Array;
  #start = 0;
  #end: number;
  readonly #conn: Duplex;
  readonly #remote: string;

  constructor(conn: Duplex, remote: string, prefix: Uint8Array = EMPTY) {
    this.#conn = conn;
    this.#remote = remote;
    this.#buffer = new Uint8Array(Math.max(4096, prefix.length));
    this.#buffer.set(prefix);
    this.#end = prefix.length;
  }

  async exact(n: number): Promise<Uint8Array> {
    while (this.#end - this.#start < n) {
      if (this.#buffer.length - this.#start < n) {
        const grown = new Uint8Array(Math.max(n, this.#buffer.length * 2));
        grown.set(this.#buffer.subarray(this.#start, this.#end));
        this.#end -= this.#start;
        this.#start = 0;
        this.#buffer = grown;
      }
      const read = await this.#conn.read(this.#buffer.subarray(this.#end));
      if (read === null) {
        throw new ProtocolError(
          `Cannot finish the secure handshake with ${this.#remote}: it closed the connection`,
        );
      }
      this.#end += read;
    }
    const out = this.#buffer.subarray(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  /** A length-prefixed message, or the refusal byte after a zero length. */
  async message(): Promise<{ message: Uint8Array } | { refusal: number }> {
    const header = await this.exact(1);
    if (header[0] === 0x7b) {
      // "{": a seed-protocol server answering what it cannot parse.
      throw new ProtocolError(
        `Cannot connect securely to ${this.#remote}: it answered in the seed protocol (not a Shoal server)`,
      );
    }
    this.#start -= 1;
    const full = await this.exact(2);
    const length = (full[0]! << 8) | full[1]!;
    if (length === 0) return { refusal: (await this.exact(1))[0]! };
    return { message: (await this.exact(length)).slice() };
  }

  leftover(): Uint8Array {
    return this.#buffer.slice(this.#start, this.#end);
  }
}

/** Closes `conn` if `work` does not finish within `timeoutMs`. */
async function withDeadline<T>(
  conn: Duplex,
  timeoutMs: number,
  what: string,
  work: () => Promise<T>,
): Promise<T> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch { /* closed */ }
  }, timeoutMs);
  try {
    return await work();
  } catch (error) {
    if (timedOut) {
      throw new TimeoutError(`${what}: no handshake within ${timeoutMs} ms`);
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

function describe(conn: Duplex): string {
  return formatHostPort(conn.remoteAddr.hostname, conn.remoteAddr.port);
}

/**
 * Runs the initiator's handshake on a connection just made.
 *
 * @param conn The connection (closed by the caller on failure).
 * @param address The server's `host:port`, for messages.
 * @param options Identity, swarm key, expected server key, time limit.
 * @returns The encrypted connection.
 * @throws {HandshakeError} If the server has another swarm key, or none.
 * @throws {KeyMismatchError} If the server proves another key than
 *   `remoteKey`.
 * @throws {ProtocolError} On a malformed or tampered handshake.
 *
 * @example Connecting securely by hand
 * ```ts ignore
 * const conn = await tcpTransport.dial(address);
 * const secure = await secureConnect(conn, address);
 * console.log(peerIdOf(secure.remoteKey));
 * ```
 */
export function secureConnect(
  conn: Duplex,
  address: string,
  options: SecureConnectOptions = {},
): Promise<SecureDuplex> {
  const what = `Cannot connect securely to ${address}`;
  return withDeadline(conn, options.timeoutMs ?? 10_000, what, async () => {
    const psk = options.psk;
    const prologue = preamble(psk ? MODE_PRIVATE : MODE_OPEN);
    const state = new HandshakeState({
      pattern: psk ? "XXpsk3" : "XX",
      initiator: true,
      prologue,
      s: cachedPair(options.identity ?? ephemeralIdentity()),
      ...(psk ? { psk } : {}),
    });
    const first = lengthPrefixed(state.writeMessage());
    const hello = new Uint8Array(prologue.length + first.length);
    hello.set(prologue);
    hello.set(first, prologue.length);
    await writeAll(conn, hello);
    const reader = new HandshakeReader(conn, address);
    const refused = (code: number): never => {
      if (code === REFUSAL.secretRequired) {
        throw new HandshakeError(
          `Cannot authenticate with ${address}: this swarm is private; a secret is required (--secret or SHOAL_SECRET)`,
          "secret_required",
        );
      }
      if (code === REFUSAL.noSecret) {
        throw new HandshakeError(
          `Cannot authenticate with ${address}: it runs without a secret (not a private swarm)`,
          "no_secret",
        );
      }
      throw new HandshakeError(
        `Cannot authenticate with ${address}: wrong secret`,
        "wrong_secret",
      );
    };
    const second = await reader.message();
    if ("refusal" in second) return refused(second.refusal);
    try {
      state.readMessage(second.message);
    } catch {
      throw new ProtocolError(
        `${what}: its handshake failed authentication (tampered with on the way?)`,
      );
    }
    const remoteKey = state.remoteStatic!;
    if (options.remoteKey && !sameKey(remoteKey, options.remoteKey)) {
      throw new KeyMismatchError(
        `Cannot trust ${address}: it proved key ${
          peerIdOf(remoteKey)
        }, not the listed ${
          peerIdOf(options.remoteKey)
        } (address taken over or a man in the middle)`,
      );
    }
    await writeAll(conn, lengthPrefixed(state.writeMessage()));
    const result = state.split();
    if (psk) {
      // The server confirms it knew the key with an empty record.
      const confirm = await reader.message();
      if ("refusal" in confirm) return refused(confirm.refusal);
      try {
        result.receive.decrypt(EMPTY, confirm.message);
      } catch {
        refused(REFUSAL.wrongSecret);
      }
    }
    return new SecureDuplex(conn, result, reader.leftover());
  });
}

function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/**
 * Runs the responder's handshake on an accepted connection whose first
 * bytes (`prefix`, at least the marker byte) were already read.
 *
 * @param conn The accepted connection (closed by the caller on failure).
 * @param prefix The bytes already read.
 * @param options Identity, swarm key, time limit.
 * @returns The encrypted connection; `remoteKey` is the client's proved key.
 * @throws {ProtocolError} If the client does not complete the handshake or
 *   has another swarm key (it was told why).
 *
 * @example Accepting securely by hand
 * ```ts ignore
 * const secure = await secureAccept(conn, prefix, { identity });
 * ```
 */
export function secureAccept(
  conn: Duplex,
  prefix: Uint8Array,
  options: SecureOptions = {},
): Promise<SecureDuplex> {
  const remote = describe(conn);
  const what = `Cannot accept a secure connection from ${remote}`;
  return withDeadline(conn, options.timeoutMs ?? 10_000, what, async () => {
    const reader = new HandshakeReader(conn, remote, prefix);
    const head = await reader.exact(PREAMBLE_BYTES);
    const mode = head[7]!;
    if (
      head[0] !== SECURE_MARKER || head[1] !== 0x73 || head[6] !== 1 ||
      (mode !== MODE_OPEN && mode !== MODE_PRIVATE)
    ) {
      throw new ProtocolError(`${what}: unknown preamble`);
    }
    const psk = options.psk;
    const refuse = async (code: number, why: string): Promise<never> => {
      await writeAll(conn, Uint8Array.of(0, 0, code)).catch(() => {});
      throw new ProtocolError(`${what}: ${why}`);
    };
    if (psk && mode === MODE_OPEN) {
      return await refuse(
        REFUSAL.secretRequired,
        "it has no secret (this swarm is private)",
      );
    }
    if (!psk && mode === MODE_PRIVATE) {
      return await refuse(
        REFUSAL.noSecret,
        "it has a secret (this swarm is open)",
      );
    }
    const state = new HandshakeState({
      pattern: psk ? "XXpsk3" : "XX",
      initiator: false,
      prologue: head.slice(),
      s: cachedPair(options.identity ?? ephemeralIdentity()),
      ...(psk ? { psk } : {}),
    });
    const first = await reader.message();
    if ("refusal" in first) throw new ProtocolError(`${what}: bad message`);
    state.readMessage(first.message);
    await writeAll(conn, lengthPrefixed(state.writeMessage()));
    const third = await reader.message();
    if ("refusal" in third) throw new ProtocolError(`${what}: bad message`);
    try {
      state.readMessage(third.message);
    } catch {
      if (psk) return await refuse(REFUSAL.wrongSecret, "wrong secret");
      throw new ProtocolError(
        `${what}: its handshake failed authentication (tampered with on the way?)`,
      );
    }
    const result = state.split();
    if (psk) {
      await writeAll(conn, lengthPrefixed(result.send.encrypt(EMPTY, EMPTY)));
    }
    return new SecureDuplex(conn, result, reader.leftover());
  });
}

/**
 * Wraps a transport so every connection it dials is encrypted and
 * authenticated ({@linkcode secureConnect}); `DialOptions.remoteKey` pins
 * the server's key per dial. Listening is passed through: a server tells
 * secure connections apart by their first byte and accepts them with
 * {@linkcode secureAccept}.
 *
 * @param base The transport underneath (e.g. `tcpTransport`).
 * @param options Identity and swarm key.
 * @returns The wrapping transport.
 *
 * @example Dialling a tracker securely
 * ```ts
 * import { secureTransport, tcpTransport } from "@shoal/shoal/net";
 * import { RpcClient } from "@shoal/shoal/protocol";
 * import { startTracker } from "@shoal/shoal";
 * await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
 * await using client = await RpcClient.connect(tracker.address, {
 *   transport: secureTransport(tcpTransport),
 *   encryption: false, // the transport already encrypts
 * });
 * await client.call({ type: "list" }, "files");
 * ```
 */
export function secureTransport(
  base: Transport,
  options: SecureOptions = {},
): Transport {
  return {
    async dial(address: string, dial: DialOptions = {}): Promise<Duplex> {
      const conn = await base.dial(address, dial);
      try {
        return await secureConnect(conn, address, {
          ...options,
          ...(dial.timeoutMs !== undefined
            ? { timeoutMs: dial.timeoutMs }
            : {}),
          ...(dial.remoteKey ? { remoteKey: dial.remoteKey } : {}),
        });
      } catch (error) {
        try {
          conn.close();
        } catch { /* closed */ }
        throw error;
      }
    },
    listen: (listen) => base.listen(listen),
  };
}
