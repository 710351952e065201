/**
 * The tracker service: keeps the live peers and what they share, and answers
 * both Shoal's framed protocol and the seed's JSON-line protocol on one port.
 *
 * @module
 */
import { RateLimiter } from "./_rate_limit.ts";
import { serverRequests, validateSecret } from "./auth.ts";
import { ConnectionServer } from "./_server.ts";
import {
  formatHostPort,
  FrameConnection,
  parseHostPort,
  writeAll,
} from "./connection.ts";
import {
  encodeLine,
  readLine,
  refusePrivateSwarm,
  validateLegacyRequest,
} from "./legacy.ts";
import {
  DEFAULT_MAX_FILES_PER_PEER,
  isHostName,
  type TrackerRequest,
  validateTrackerRequest,
} from "./messages.ts";
import { Registry } from "./registry.ts";
import { DEFAULT_MAX_FRAME_SIZE, ProtocolError } from "./wire.ts";

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
   * Use the host a peer advertises instead of the source address of its
   * connection (NAT and development setups). Off by default, so nobody can
   * register someone else's host.
   *
   * @default {false}
   */
  trustAdvertisedAddress?: boolean;
  /** A connection idle this long is closed, ms. @default {10000} */
  readTimeoutMs?: number;
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
  /** A connection was dropped for a protocol violation. */
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
 * import { startTracker } from "./tracker_server.ts";
 * await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
 * if (tracker.port === 0) throw new Error("not bound");
 * ```
 */
export function startTracker(options: TrackerOptions = {}): Promise<Tracker> {
  const interval = options.heartbeatIntervalMs ?? 30_000;
  const expiryMs = options.expiryMs ?? 3 * interval;
  const maxFiles = options.maxFilesPerPeer ?? DEFAULT_MAX_FILES_PER_PEER;
  const readTimeoutMs = options.readTimeoutMs ?? 10_000;
  const trust = options.trustAdvertisedAddress ?? false;
  const secret = options.secret === undefined
    ? undefined
    : validateSecret(options.secret);
  const registry = new Registry({ expiryMs });
  const limiter = new RateLimiter({
    requestsPerSecond: options.maxRequestsPerSecond ?? 100,
    burst: options.requestBurst ?? 1000,
  });
  const rateLimited = (remoteIp: string) =>
    `Cannot serve ${remoteIp}: more than ${
      options.maxRequestsPerSecond ?? 100
    } requests per second (slow down)`;
  const events = new EventTarget();
  const emit = <K extends keyof TrackerEventMap>(
    type: K,
    detail: TrackerEventMap[K]["detail"],
  ) => events.dispatchEvent(new CustomEvent(type, { detail }));

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
        registry.upsert(address, "shoal", request.files);
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
              return {
                type: "error",
                code: "bad_request",
                message:
                  `Cannot apply announce from ${address}: it would share more than ${maxFiles} files`,
              };
          }
        }
        if (!registry.touch(address, request.files)) {
          return {
            type: "error",
            code: "unknown_peer",
            message:
              `Cannot refresh ${address}: not registered (register again)`,
          };
        }
        return { type: "ok" };
      }
      case "unregister": {
        const address = peerAddress(remoteIp, request.port, request.host);
        if (registry.remove(address)) emit("unregister", { address });
        return { type: "ok" };
      }
      case "list":
        return { type: "files", files: registry.list(request.query) };
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
              if (request.command === "register") {
                registry.upsert(address, "legacy", files ?? []);
                emit("register", { address, files: files?.length ?? 0 });
                reply = { status: "ok" };
              } else if (files && registry.get(address)?.protocol === "shoal") {
                // The same address now speaks the seed protocol: it is a
                // seed peer from here on (its files have no content ids).
                registry.upsert(address, "legacy", files);
                reply = { status: "ok" };
              } else if (registry.touch(address, files)) {
                reply = { status: "ok" };
              } else if (files) {
                registry.upsert(address, "legacy", files);
                reply = { status: "ok" };
              } else {
                reply = {
                  status: `error: ${address} is not registered; register first`,
                };
              }
              break;
            }
            case "list":
              reply = { status: "ok", filemap: registry.filemap() };
              break;
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
    },
    {
      ...(options.maxConnections
        ? { maxConnections: options.maxConnections }
        : {}),
      ...(options.maxConnectionsPerAddress
        ? { maxConnectionsPerAddress: options.maxConnectionsPerAddress }
        : {}),
      firstByteTimeoutMs: readTimeoutMs,
    },
  );
  server.start();

  const sweeper = setInterval(() => {
    registry.sweep((address) => emit("unregister", { address }));
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
