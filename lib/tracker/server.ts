/**
 * The tracker server: accepts connections on one port, reads Shoal's framed
 * requests and the seed's JSON lines, and writes the replies a
 * {@linkcode TrackerService} gives over its {@linkcode TrackerStore}.
 *
 * @module
 */
import type { TypedEventTarget } from "../events.ts";
import { serverRequests, swarmKey, validateSecret } from "../protocol/auth.ts";
import { SecureDuplex } from "../net/secure.ts";
import { generateIdentity, type Identity, keyToHex } from "../net/identity.ts";
import { type ConnectionHandler, ConnectionServer } from "../net/_server.ts";
import { FrameConnection, writeAll } from "../net/connection.ts";
import { formatHostPort } from "../net/address.ts";
import {
  encodeLine,
  readLine,
  refusePrivateSwarm,
} from "../protocol/legacy.ts";
import { DEFAULT_MAX_FRAME_SIZE, ProtocolError } from "../net/wire.ts";
import { MemoryStore } from "./memory_store.ts";
import {
  type SeedReply,
  type TrackerEmit,
  type TrackerEventMap,
  TrackerService,
  type TrackerServiceOptions,
} from "./service.ts";
import type { Clock, TrackerStore } from "./store.ts";
import { parseRedisUrl } from "./_redis_url.ts";
import type { Transport } from "../net/transport.ts";

export type { TrackerEventMap } from "./service.ts";

/**
 * Options for {@linkcode startTracker}: the request logic's
 * ({@linkcode TrackerServiceOptions}) and the server's.
 */
export interface TrackerOptions extends Omit<TrackerServiceOptions, "emit"> {
  /** Port to listen on (0 picks a free one). @default {9000} */
  port?: number;
  /** Address to bind. @default {"0.0.0.0"} */
  hostname?: string;
  /** A connection idle this long is closed, ms. @default {10000} */
  readTimeoutMs?: number;
  /**
   * A reply whose write makes no progress for this long (the client stopped
   * reading) is abandoned and its connection closed, ms.
   *
   * @default {readTimeoutMs}
   */
  writeTimeoutMs?: number;
  /** Largest framed message, bytes. @default {DEFAULT_MAX_FRAME_SIZE} */
  maxFrameSize?: number;
  /** Most open connections. @default {1024} */
  maxConnections?: number;
  /** Most open connections per remote IP. @default {64} */
  maxConnectionsPerAddress?: number;
  /**
   * Shared secret of a private swarm (16 to 1024 bytes). Every framed
   * connection must first pass the challenge–response of
   * `acceptAuthentication` within `readTimeoutMs`; seed-protocol
   * clients are refused. Without it the tracker is open to anyone.
   *
   * @default {undefined}
   */
  secret?: string;
  /**
   * Where peers and their files are kept: `"memory"` (this process), a
   * Redis URL shared by several trackers (`redis://HOST:PORT[/DB]`, or
   * `redis-cluster://HOST:PORT[,HOST:PORT…]` for a Redis Cluster), or a
   * store object. A store made from a name or URL gets `expiryMs`, the
   * clock and the per-address limits, and closes with the tracker; a store
   * object passed in is not closed, and its own expiry must match
   * `expiryMs`. Loading the Redis client needs `--allow-env`.
   *
   * @default {"memory"}
   */
  store?: TrackerStore | string;
  /**
   * The clock of the default store's expiry and of the rate limit.
   *
   * @default {Date.now for expiry, performance.now for the rate limit}
   */
  clock?: Clock;
  /**
   * How connections are accepted (a test passes an in-memory one).
   *
   * @default {tcpTransport}
   */
  transport?: Transport;
  /**
   * The key pair the tracker proves in secure handshakes.
   *
   * @default {a new one at each start}
   */
  identity?: Identity;
  /**
   * Also serve framed connections without encryption (Shoal's own clients
   * always encrypt unless told not to).
   *
   * @default {true}
   */
  plaintext?: boolean;
  /**
   * Answer seed-protocol (plaintext JSON-line) clients; `false` closes
   * their connections unanswered.
   *
   * @default {true}
   */
  seedProtocol?: boolean;
  /** Closes the tracker when aborted. */
  signal?: AbortSignal;
}

/** A running tracker. */
export interface Tracker
  extends TypedEventTarget<TrackerEventMap>, AsyncDisposable {
  /** The bound port. */
  readonly port: number;
  /** `host:port` to give to peers (loopback when bound to all interfaces). */
  readonly address: string;
  /** The store the tracker keeps its peers in (passed in, or its own). */
  readonly store: TrackerStore;
  /** The tracker's public key, as proved in secure handshakes. */
  readonly publicKey: Uint8Array;
  /** Stops listening, closes every connection. */
  close(): Promise<void>;
}

/**
 * Starts a tracker.
 *
 * @param options Port, intervals, limits, and the store to keep peers in.
 * @returns The running tracker; close it or `await using` it.
 *
 * @example Starting a tracker on a free port
 * ```ts
 * import { startTracker } from "@shoal/shoal";
 * await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
 * if (tracker.port === 0) throw new Error("not bound");
 * ```
 */
export async function startTracker(
  options: TrackerOptions = {},
): Promise<Tracker> {
  const interval = options.heartbeatIntervalMs ?? 30_000;
  const expiryMs = options.expiryMs ?? 3 * interval;
  const readTimeoutMs = options.readTimeoutMs ?? 10_000;
  const secret = options.secret === undefined
    ? undefined
    : validateSecret(options.secret);
  const identity = options.identity ?? generateIdentity();
  const events = new EventTarget();
  const emit: TrackerEmit = (type, detail) =>
    events.dispatchEvent(new CustomEvent(type, { detail }));
  const given = options.store ?? "memory";
  let ownStore: (TrackerStore & { close(): Promise<void> }) | undefined;
  let store: TrackerStore;
  if (typeof given !== "string") {
    store = given;
  } else if (given === "memory") {
    store = new MemoryStore({
      expiryMs,
      ...limitOptions(options),
      ...(options.clock ? { clock: options.clock } : {}),
      // Its own store tells of each expiry at once.
      onExpire: (address) => emit("unregister", { address }),
    });
  } else {
    if (!/^redis(-cluster)?:/.test(given)) {
      throw new TypeError(
        `Invalid store "${given}": use memory, redis://HOST:PORT[/DB] or redis-cluster://HOST:PORT[,HOST:PORT…]`,
      );
    }
    parseRedisUrl(given); // a bad URL fails here, before loading the client
    const { RedisStore } = await import("./redis_store.ts");
    try {
      store = ownStore = await RedisStore.connect({
        url: given,
        expiryMs,
        ...limitOptions(options),
        ...(options.clock ? { clock: options.clock } : {}),
      }, 2000);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotCapable)) throw error;
      throw new Error(
        `Cannot load the Redis client for ${given}: it reads the environment (run with --allow-env)`,
        { cause: error },
      );
    }
  }
  const service = new TrackerService(store, {
    heartbeatIntervalMs: interval,
    expiryMs,
    ...limitOptions(options),
    ...(options.maxFilesPerPeer !== undefined
      ? { maxFilesPerPeer: options.maxFilesPerPeer }
      : {}),
    ...(options.trustAdvertisedAddress !== undefined
      ? { trustAdvertisedAddress: options.trustAdvertisedAddress }
      : {}),
    ...(options.maxRequestsPerSecond !== undefined
      ? { maxRequestsPerSecond: options.maxRequestsPerSecond }
      : {}),
    ...(options.requestBurst !== undefined
      ? { requestBurst: options.requestBurst }
      : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    emit,
  });
  const connection = {
    service,
    secret,
    readTimeoutMs,
    maxFrameSize: options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE,
    emit,
  };
  let server: ConnectionServer;
  try {
    server = ConnectionServer.listen(
      {
        hostname: options.hostname ?? "0.0.0.0",
        port: options.port ?? 9000,
        ...(options.transport ? { transport: options.transport } : {}),
        ...(options.maxConnections
          ? { maxConnections: options.maxConnections }
          : {}),
        ...(options.maxConnectionsPerAddress
          ? { maxConnectionsPerAddress: options.maxConnectionsPerAddress }
          : {}),
        firstByteTimeoutMs: readTimeoutMs,
        writeTimeoutMs: options.writeTimeoutMs ?? readTimeoutMs,
        secure: {
          identity,
          ...(secret !== undefined ? { psk: swarmKey(secret) } : {}),
        },
        plaintext: options.plaintext ?? true,
      },
      {
        framed: (conn, prefix, remote) =>
          serveFramed(connection, conn, prefix, remote),
        ...(options.seedProtocol === false ? {} : {
          legacy: (conn: Accepted, prefix: Uint8Array, remote: string) =>
            serveSeed(connection, conn, prefix, remote),
        }),
        // A failed secure handshake is reported like a bad request.
        error: (error, remote) => {
          if (error instanceof ProtocolError) {
            emit("protocol-error", { remote, message: error.message });
          }
        },
        dropped: (remote, message) =>
          emit("protocol-error", { remote, message }),
      },
    );
  } catch (error) {
    await ownStore?.close();
    throw error;
  }
  server.start();

  // Each sweep reports the peers it drops; a failing store is tried again
  // at the next one.
  const sweeper = setInterval(
    () => void service.sweep().catch(() => {}),
    Math.max(1000, Math.min(expiryMs, 60_000)),
  );

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      clearInterval(sweeper);
      options.signal?.removeEventListener("abort", onAbort);
      await server.close();
      await ownStore?.close();
    })();
    return closing;
  };
  const onAbort = () => void close();
  options.signal?.addEventListener("abort", onAbort, { once: true });

  const hostname = server.listener.addr.hostname;
  const tracker = Object.assign(events, {
    port: server.port,
    address: formatHostPort(
      hostname === "0.0.0.0" || hostname === "::" ? "127.0.0.1" : hostname,
      server.port,
    ),
    store,
    publicKey: identity.publicKey,
    close,
    [Symbol.asyncDispose]: close,
  });
  return tracker;
}

/** The per-address limits of the options, as given. */
function limitOptions(options: TrackerOptions): {
  maxPeersPerAddress?: number;
  maxFilesPerAddress?: number;
} {
  return {
    ...(options.maxPeersPerAddress !== undefined
      ? { maxPeersPerAddress: options.maxPeersPerAddress }
      : {}),
    ...(options.maxFilesPerAddress !== undefined
      ? { maxFilesPerAddress: options.maxFilesPerAddress }
      : {}),
  };
}

/** An accepted connection, as the accept loop hands it over. */
type Accepted = Parameters<ConnectionHandler>[0];

/** What serving one connection needs. */
interface ConnectionContext {
  service: TrackerService;
  secret: string | undefined;
  readTimeoutMs: number;
  maxFrameSize: number;
  emit: TrackerEmit;
}

/** Serves one framed connection: requests in, the service's replies out. */
async function serveFramed(
  context: ConnectionContext,
  conn: Accepted,
  prefix: Uint8Array,
  remote: string,
): Promise<void> {
  const { service, readTimeoutMs } = context;
  const connection = new FrameConnection(conn, {
    prefix,
    readTimeoutMs,
    maxFrameSize: context.maxFrameSize,
    // Requests are small JSON: a small buffer keeps 1,000 open connections
    // cheap.
    readBufferSize: 4 * 1024,
    allowData: false,
    // Each write must also make progress within `writeTimeoutMs`
    // (ConnectionServer), which reports the drop.
  });
  const remoteIp = conn.remoteAddr.hostname;
  const key = conn instanceof SecureDuplex
    ? keyToHex(conn.remoteKey)
    : undefined;
  try {
    const requests = serverRequests(connection, context.secret, {
      timeoutMs: readTimeoutMs,
      remote,
    });
    for await (const message of requests) {
      const reply = await service.message(message, remoteIp, key);
      await connection.send({ ...reply, rid: message.rid });
    }
  } catch (error) {
    if (error instanceof ProtocolError) {
      context.emit("protocol-error", { remote, message: error.message });
      return;
    }
    throw error;
  } finally {
    connection.close();
  }
}

/** Serves one seed-protocol connection: one request line, one reply line. */
async function serveSeed(
  context: ConnectionContext,
  conn: Accepted,
  prefix: Uint8Array,
  remote: string,
): Promise<void> {
  const { readTimeoutMs, emit } = context;
  if (context.secret !== undefined) {
    return await refusePrivateSwarm(
      conn,
      prefix,
      readTimeoutMs,
      (message) => emit("protocol-error", { remote, message }),
    );
  }
  let reply: SeedReply;
  try {
    const { line } = await readLine(conn, prefix, undefined, readTimeoutMs);
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new ProtocolError("Cannot accept request: it is not JSON");
    }
    reply = await context.service.seed(parsed, conn.remoteAddr.hostname);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    emit("protocol-error", { remote, message: error.message });
    reply = { status: `error: ${error.message}` };
  }
  await writeAll(conn, encodeLine(reply));
}
