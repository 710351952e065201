/**
 * The tracker service: keeps the live peers and what they share, and answers
 * both Shoal's framed protocol and the seed's JSON-line protocol on one port.
 *
 * @module
 */
import { RateLimiter } from "./_request_rate.ts";
import { serverRequests, validateSecret } from "../protocol/auth.ts";
import { ConnectionServer } from "../net/_server.ts";
import {
  formatHostPort,
  FrameConnection,
  parseHostPort,
  writeAll,
} from "../net/connection.ts";
import {
  encodeLine,
  readLine,
  refusePrivateSwarm,
  validateLegacyRequest,
} from "../protocol/legacy.ts";
import {
  DEFAULT_MAX_FILES_PER_PEER,
  isHostName,
  type TrackerRequest,
  validateTrackerRequest,
} from "../protocol/messages.ts";
import {
  type ApplyChangesResult,
  DEFAULT_MAX_FILES_PER_ADDRESS,
  DEFAULT_MAX_LIST_EXAMINED,
  DEFAULT_MAX_PEERS_PER_ADDRESS,
  Registry,
} from "./registry.ts";
import { DEFAULT_MAX_FRAME_SIZE, ProtocolError } from "../net/wire.ts";

/** Most bytes of names in a framed `list` reply (it says `truncated`). */
const MAX_LIST_REPLY_BYTES = 4 * 1024 * 1024;
/** Names a `list` may examine per rate-limit token beyond its first. */
const NAMES_PER_TOKEN = 1000;
/** Most holders per name in a seed-protocol `list` reply. */
const SEED_HOLDERS_PER_NAME = 20;
/**
 * Most bytes of a seed-protocol `list` reply: under the 1 MiB line limit of
 * seed clients (`DEFAULT_MAX_LINE_BYTES`), whatever the registry holds.
 */
const MAX_SEED_REPLY_BYTES = 960 * 1024;

/** Options for {@linkcode startTracker}. */
export interface TrackerOptions {
  /** Port to listen on (0 picks a free one). @default {9000} */
  port?: number;
  /** Address to bind. @default {"0.0.0.0"} */
  hostname?: string;
  /** Heartbeat interval told to peers, ms. @default {30000} */
  heartbeatIntervalMs?: number;
  /**
   * A peer silent for this long disappears, ms.
   *
   * @default {3 * heartbeatIntervalMs}
   */
  expiryMs?: number;
  /** Most files one peer may announce. @default {10000} */
  maxFilesPerPeer?: number;
  /**
   * Most peers (ports) registered from one IP address (an IPv6 address
   * counts for its /64); more registrations are refused.
   *
   * @default {DEFAULT_MAX_PEERS_PER_ADDRESS}
   */
  maxPeersPerAddress?: number;
  /**
   * Most files all peers registered from one IP address (IPv6: /64) may
   * announce together; announcements beyond it are refused.
   *
   * @default {DEFAULT_MAX_FILES_PER_ADDRESS}
   */
  maxFilesPerAddress?: number;
  /**
   * Use the host a peer advertises instead of the source address of its
   * connection (NAT and development setups). Off by default, so nobody can
   * register someone else's host.
   *
   * @default {false}
   */
  trustAdvertisedAddress?: boolean;
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
   * Sustained requests per second accepted from one remote IP; more are
   * answered with a `rate_limited` error. 0 disables the limit.
   *
   * @default {100}
   */
  maxRequestsPerSecond?: number;
  /**
   * Requests one remote IP may make in a burst above the sustained rate.
   *
   * @default {1000}
   */
  requestBurst?: number;
  /**
   * Shared secret of a private swarm (16 to 1024 bytes). Every framed
   * connection must first pass the challenge–response of
   * `acceptAuthentication` within `readTimeoutMs`; seed-protocol
   * clients are refused. Without it the tracker is open to anyone.
   *
   * @default {undefined}
   */
  secret?: string;
  /** Closes the tracker when aborted. */
  signal?: AbortSignal;
}

/** Events a tracker emits. */
export interface TrackerEventMap {
  /** A peer registered (detail: its address). */
  register: CustomEvent<{ address: string; files: number }>;
  /** A peer left or expired (detail: its address). */
  unregister: CustomEvent<{ address: string }>;
  /**
   * A connection was dropped for a protocol violation, or because it stopped
   * reading its reply.
   */
  "protocol-error": CustomEvent<{ remote: string; message: string }>;
}

/** A running tracker. */
export interface Tracker extends EventTarget, AsyncDisposable {
  /** The bound port. */
  readonly port: number;
  /** `host:port` to give to peers (loopback when bound to all interfaces). */
  readonly address: string;
  /** The live registry (read it; the tracker writes it). */
  readonly registry: Registry;
  /** Stops listening, closes every connection. */
  close(): Promise<void>;
}

/**
 * Starts a tracker.
 *
 * @param options Port, intervals and limits.
 * @returns The running tracker; close it or `await using` it.
 *
 * @example Starting a tracker on a free port
 * ```ts
 * import { startTracker } from "./server.ts";
 * await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
 * if (tracker.port === 0) throw new Error("not bound");
 * ```
 */
export function startTracker(options: TrackerOptions = {}): Promise<Tracker> {
  const interval = options.heartbeatIntervalMs ?? 30_000;
  const expiryMs = options.expiryMs ?? 3 * interval;
  const maxFiles = options.maxFilesPerPeer ?? DEFAULT_MAX_FILES_PER_PEER;
  const readTimeoutMs = options.readTimeoutMs ?? 10_000;
  const writeTimeoutMs = options.writeTimeoutMs ?? readTimeoutMs;
  const maxPeersPerAddress = options.maxPeersPerAddress ??
    DEFAULT_MAX_PEERS_PER_ADDRESS;
  const maxFilesPerAddress = options.maxFilesPerAddress ??
    DEFAULT_MAX_FILES_PER_ADDRESS;
  const trust = options.trustAdvertisedAddress ?? false;
  const secret = options.secret === undefined
    ? undefined
    : validateSecret(options.secret);
  const events = new EventTarget();
  const emit = <K extends keyof TrackerEventMap>(
    type: K,
    detail: TrackerEventMap[K]["detail"],
  ) => events.dispatchEvent(new CustomEvent(type, { detail }));
  const registry = new Registry({
    expiryMs,
    maxPeersPerAddress,
    maxFilesPerAddress,
    onExpire: (address) => emit("unregister", { address }),
  });
  const limiter = new RateLimiter({
    requestsPerSecond: options.maxRequestsPerSecond ?? 100,
    burst: options.requestBurst ?? 1000,
  });
  const rateLimited = (remoteIp: string) =>
    `Cannot serve ${remoteIp}: more than ${
      options.maxRequestsPerSecond ?? 100
    } requests per second (slow down)`;
  /** Why a registration or announce was refused, for its reply. */
  const refusal = (address: string, result: ApplyChangesResult) =>
    result === "too_many_peers"
      ? `Cannot register ${address}: its IP address already has ${maxPeersPerAddress} peers registered (the most allowed)`
      : `Cannot accept the files of ${address}: they would exceed ${maxFiles} files per peer or ${maxFilesPerAddress} per IP address`;

  // Only a trusting tracker uses the advertised host, and only a valid one:
  // a reply must never carry an address clients cannot parse.
  const peerAddress = (remoteIp: string, port: number, host?: string) => {
    if (trust && host !== undefined && !isHostName(host)) {
      throw new ProtocolError(
        `Cannot accept advertised host ${
          JSON.stringify((host as string).slice(0, 64))
        }: not a host name or IP address`,
      );
    }
    return formatHostPort(trust && host ? host : remoteIp, port);
  };

  const handleFramed = (
    request: TrackerRequest,
    remoteIp: string,
  ): Record<string, unknown> => {
    switch (request.type) {
      case "register": {
        const address = peerAddress(remoteIp, request.port, request.host);
        const result = registry.upsert(
          address,
          "shoal",
          request.files,
          remoteIp,
        );
        if (result !== "ok") {
          return {
            type: "error",
            code: "limit_exceeded",
            message: refusal(address, result),
          };
        }
        emit("register", { address, files: request.files.length });
        return {
          type: "registered",
          address,
          heartbeatIntervalMs: interval,
          expiryMs,
          deltas: true,
        };
      }
      case "heartbeat": {
        const address = peerAddress(remoteIp, request.port, request.host);
        if (request.seq !== undefined) {
          const result = registry.applyChanges(
            address,
            request.seq,
            request.added ?? [],
            request.removed ?? [],
            maxFiles,
          );
          switch (result) {
            case "ok":
              return { type: "ok" };
            case "resync":
              return {
                type: "error",
                code: "resync",
                message:
                  `Cannot apply announce ${request.seq} from ${address}: expected ${
                    registry.get(address)!.seq + 1
                  } (send the full list)`,
              };
            case "too_many_files":
            case "too_many_peers":
              return {
                type: "error",
                code: "limit_exceeded",
                message: refusal(address, result),
              };
          }
        }
        const result = request.files
          ? registry.replaceFiles(address, request.files)
          : registry.touch(address)
          ? "ok"
          : "unknown_peer";
        if (result === "unknown_peer") {
          return {
            type: "error",
            code: "unknown_peer",
            message:
              `Cannot refresh ${address}: not registered (register again)`,
          };
        }
        if (result !== "ok") {
          return {
            type: "error",
            code: "limit_exceeded",
            message: refusal(address, result),
          };
        }
        return { type: "ok" };
      }
      case "unregister": {
        const address = peerAddress(remoteIp, request.port, request.host);
        if (registry.remove(address)) emit("unregister", { address });
        return { type: "ok" };
      }
      case "list": {
        const { files, truncated, examined } = registry.search(request.query, {
          limit: 10_000,
          maxBytes: MAX_LIST_REPLY_BYTES,
          maxExamined: DEFAULT_MAX_LIST_EXAMINED,
        });
        // A query that had to examine many names costs more of the rate.
        limiter.charge(remoteIp, Math.floor(examined / NAMES_PER_TOKEN));
        return { type: "files", files, ...(truncated ? { truncated } : {}) };
      }
      case "getpeers":
        return {
          type: "peers",
          peers: registry.getPeers(
            request.id !== undefined
              ? { id: request.id }
              : { name: request.name! },
          ),
        };
    }
  };

  const server = new ConnectionServer(
    Deno.listen({
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port ?? 9000,
    }),
    {
      framed: async (conn, prefix, remote) => {
        const connection = new FrameConnection(conn, {
          prefix,
          readTimeoutMs,
          maxFrameSize: options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE,
          // Requests are small JSON: a small buffer keeps 1,000 open
          // connections cheap.
          readBufferSize: 16 * 1024,
          allowData: false,
          // Each write must also make progress within `writeTimeoutMs`
          // (ConnectionServer), which reports the drop.
        });
        const remoteIp = conn.remoteAddr.hostname;
        try {
          const requests = serverRequests(connection, secret, {
            timeoutMs: readTimeoutMs,
            remote,
          });
          for await (const message of requests) {
            const rid = message.rid;
            let reply: Record<string, unknown>;
            try {
              if (!limiter.take(remoteIp)) {
                reply = {
                  type: "error",
                  code: "rate_limited",
                  message: rateLimited(remoteIp),
                };
                await connection.send({ ...reply, rid });
                continue;
              }
              reply = handleFramed(
                validateTrackerRequest(message, maxFiles),
                remoteIp,
              );
            } catch (error) {
              if (!(error instanceof ProtocolError)) throw error;
              // A bad request is answered; the connection stays usable.
              reply = {
                type: "error",
                code: "bad_request",
                message: error.message,
              };
            }
            await connection.send({ ...reply, rid });
          }
        } catch (error) {
          if (error instanceof ProtocolError) {
            emit("protocol-error", { remote, message: error.message });
            return;
          }
          throw error;
        } finally {
          connection.close();
        }
      },
      legacy: async (conn, prefix, remote) => {
        if (secret !== undefined) {
          return await refusePrivateSwarm(
            conn,
            prefix,
            readTimeoutMs,
            (message) => emit("protocol-error", { remote, message }),
          );
        }
        let reply: Record<string, unknown>;
        try {
          const { line } = await readLine(
            conn,
            prefix,
            undefined,
            readTimeoutMs,
          );
          let parsed: unknown;
          try {
            parsed = JSON.parse(line);
          } catch {
            throw new ProtocolError("Cannot accept request: it is not JSON");
          }
          const remoteIp = conn.remoteAddr.hostname;
          if (!limiter.take(remoteIp)) {
            throw new ProtocolError(rateLimited(remoteIp));
          }
          const request = validateLegacyRequest(parsed);
          switch (request.command) {
            case "register":
            case "heartbeat": {
              const advertised = parseHostPort(request.address!);
              const address = peerAddress(
                remoteIp,
                advertised.port,
                advertised.hostname,
              );
              const files = request.files?.slice(0, maxFiles).map((name) => ({
                name,
                id: null,
                size: null,
              }));
              const known = registry.get(address);
              let result: ApplyChangesResult;
              if (
                request.command === "register" ||
                // Unknown: a heartbeat with files registers it again. Known
                // over Shoal: it is a seed peer from here on (its files have
                // no content ids).
                (files && known?.protocol !== "legacy")
              ) {
                result = registry.upsert(
                  address,
                  "legacy",
                  files ?? [],
                  remoteIp,
                );
                if (result === "ok" && request.command === "register") {
                  emit("register", { address, files: files?.length ?? 0 });
                }
              } else if (!known) {
                result = "unknown_peer";
              } else if (files) {
                result = registry.replaceFiles(address, files);
              } else {
                result = registry.touch(address) ? "ok" : "unknown_peer";
              }
              reply = result === "ok"
                ? { status: "ok" }
                : result === "unknown_peer"
                ? {
                  status: `error: ${address} is not registered; register first`,
                }
                : { status: `error: ${refusal(address, result)}` };
              break;
            }
            case "list": {
              // Bounded: a few holders per name, and a reply that fits the
              // seed line limit, however many names and holders there are.
              const { filemap, truncated } = registry.seedList(10_000, {
                holdersPerName: SEED_HOLDERS_PER_NAME,
                maxBytes: MAX_SEED_REPLY_BYTES,
              });
              reply = {
                status: "ok",
                filemap,
                ...(truncated ? { truncated } : {}),
              };
              break;
            }
            case "getpeers":
              reply = {
                status: "ok",
                peers: registry.getPeers({ name: request.filename! }).map((p) =>
                  p.address
                ),
              };
              break;
            default:
              reply = {
                status:
                  `error: "${request.command}" is a peer command; send it to a peer`,
              };
          }
        } catch (error) {
          if (!(error instanceof ProtocolError)) throw error;
          emit("protocol-error", { remote, message: error.message });
          reply = { status: `error: ${error.message}` };
        }
        await writeAll(conn, encodeLine(reply));
      },
      error: () => {},
      dropped: (remote, message) => emit("protocol-error", { remote, message }),
    },
    {
      ...(options.maxConnections
        ? { maxConnections: options.maxConnections }
        : {}),
      ...(options.maxConnectionsPerAddress
        ? { maxConnectionsPerAddress: options.maxConnectionsPerAddress }
        : {}),
      firstByteTimeoutMs: readTimeoutMs,
      writeTimeoutMs,
    },
  );
  server.start();

  const sweeper = setInterval(() => {
    registry.sweep(); // reports each expired peer through onExpire
    limiter.sweep();
  }, Math.max(1000, Math.min(expiryMs, 60_000)));

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      clearInterval(sweeper);
      options.signal?.removeEventListener("abort", onAbort);
      await server.close();
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
    registry,
    close,
    [Symbol.asyncDispose]: close,
  });
  return Promise.resolve(tracker);
}
