/**
 * A client for a Shoal tracker: register, heartbeat, unregister, list and
 * getpeers over the framed protocol, one short connection per call; falls
 * back to the seed protocol when the tracker speaks only that. Given several
 * trackers (`a:9000,b:9000`), it fails over to the next when one is
 * unreachable and goes back to the first once it answers again.
 *
 * @module
 */
import { ProtocolError, RemoteError } from "../errors.ts";
import { legacyRequest } from "../protocol/legacy.ts";
import { RpcClient } from "../protocol/rpc.ts";
import { SeedTrackerClient } from "./seed_client.ts";
import type { Transport } from "../net/transport.ts";
import type { Identity } from "../net/identity.ts";
import {
  type FileAnnouncement,
  type ListedFile,
  type PeerInfo,
  type TrackerReplies,
  trackerReplies,
} from "../protocol/messages.ts";

/** Options for {@linkcode TrackerClient}. */
export interface TrackerClientOptions {
  /** Bound on connecting and on each reply, ms. @default {10000} */
  timeoutMs?: number;
  /**
   * Shared secret of a private swarm: each connection is authenticated
   * first (`RpcClientOptions.secret`).
   *
   * @default {undefined}
   */
  secret?: string;
  /** How the tracker is dialled. @default {tcpTransport} */
  transport?: Transport;
  /**
   * When the tracker closes a framed request unanswered (or answers it in
   * the seed shape) and then answers a seed-protocol `list`, it speaks only
   * the seed protocol: talk to it with a {@linkcode SeedTrackerClient} from
   * then on. Never with a `secret` (the seed protocol cannot authenticate).
   *
   * @default {true}
   */
  seedFallback?: boolean;
  /**
   * The key pair proved to the tracker: a `register` over it makes the
   * tracker list this key with the peer.
   *
   * @default {ephemeralIdentity()}
   */
  identity?: Identity;
  /**
   * Encrypt each connection (`RpcClientOptions.encryption`).
   *
   * @default {true}
   */
  encryption?: boolean;
  /**
   * With several trackers: how long one that failed is passed over before
   * it is tried first again, ms.
   *
   * @default {5000}
   */
  retryMs?: number;
}

/** Which protocol a tracker was found to speak. */
export type TrackerProtocol = "shoal" | "seed";

/** What a tracker answers to `register`. */
export interface Registration {
  /** The address the tracker will give out for this peer. */
  address: string;
  /** How often the tracker expects heartbeats, ms. */
  heartbeatIntervalMs: number;
  /** How long it keeps a silent peer, ms. */
  expiryMs: number;
  /**
   * Whether the tracker takes incremental announces
   * ({@linkcode TrackerClient.announceChanges}).
   */
  deltas: boolean;
  /**
   * The protocol the registration went over: `seed` for a tracker that
   * speaks only the seed protocol (names only, nothing verifiable).
   *
   * @default {"shoal"}
   */
  protocol?: TrackerProtocol;
}

/**
 * Talks to one tracker.
 *
 * @example Listing a tracker's files
 * ```ts
 * import { startTracker } from "@shoal/shoal";
 * import { TrackerClient } from "@shoal/shoal/tracker";
 * await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
 * const files = await new TrackerClient(tracker.address).list();
 * if (files.length !== 0) throw new Error("expected an empty network");
 * ```
 */
export class TrackerClient {
  /** Tracker `host:port`, or several separated by commas. */
  readonly address: string;
  /** With several trackers: a client for each, in order of preference. */
  readonly #members: TrackerClient[] | undefined;
  /** When each member may be tried first again (ms, `performance.now`). */
  readonly #downUntil: number[] = [];
  readonly #retryMs: number;
  readonly #timeoutMs: number;
  readonly #secret: string | undefined;
  readonly #transport: Transport | undefined;
  readonly #seedFallback: boolean;
  #protocol: TrackerProtocol | undefined;
  #seedClient: SeedTrackerClient | undefined;
  readonly #identity: Identity | undefined;
  readonly #encryption: boolean;

  /**
   * Creates a client (no connection is made until a call).
   *
   * @param address Tracker `host:port`, or several separated by commas
   *   (preferred first).
   * @param options Timeouts.
   */
  constructor(address: string, options: TrackerClientOptions = {}) {
    this.address = address;
    const addresses = address.split(",").map((a) => a.trim()).filter((a) =>
      a !== ""
    );
    this.#members = addresses.length > 1
      ? addresses.map((a) => new TrackerClient(a, options))
      : undefined;
    this.#downUntil = addresses.map(() => 0);
    this.#retryMs = options.retryMs ?? 5000;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#secret = options.secret;
    this.#transport = options.transport;
    this.#seedFallback = options.seedFallback ?? true;
    this.#identity = options.identity;
    this.#encryption = options.encryption ?? true;
  }

  /**
   * The protocol the tracker answered in: `undefined` before the first
   * answer, `seed` once it was found to speak only the seed protocol.
   */
  get protocol(): TrackerProtocol | undefined {
    return this.#members?.[this.#current]?.protocol ?? this.#protocol;
  }

  /** The member that answered last. */
  #current = 0;

  /**
   * Asks the trackers in order, those that failed lately last: one that
   * cannot be reached, or whose store is unavailable, hands the call to the
   * next one.
   */
  async #failover<T>(
    members: TrackerClient[],
    call: (client: TrackerClient) => Promise<T>,
  ): Promise<T> {
    const now = performance.now();
    const order = members.map((_, i) => i);
    const up = order.filter((i) => this.#downUntil[i]! <= now);
    const down = order.filter((i) => this.#downUntil[i]! > now)
      .sort((a, b) => this.#downUntil[a]! - this.#downUntil[b]!);
    let last: unknown;
    for (const i of [...up, ...down]) {
      try {
        const result = await call(members[i]!);
        this.#downUntil[i] = 0;
        this.#current = i;
        return result;
      } catch (error) {
        const handOver = !(error instanceof RemoteError) ||
          error.code === "store_unavailable";
        if (!handOver) throw error;
        this.#downUntil[i] = performance.now() + this.#retryMs;
        last = error;
      }
    }
    throw last;
  }

  /**
   * Runs `framed`, or `seed` against a seed-protocol tracker: once one was
   * detected, and when this call is what detects it.
   */
  async #call<T>(
    framed: () => Promise<T>,
    seed: (client: SeedTrackerClient) => Promise<T>,
  ): Promise<T> {
    if (this.#seedClient) return await seed(this.#seedClient);
    try {
      const result = await framed();
      this.#protocol = "shoal";
      return result;
    } catch (error) {
      if (!await this.#speaksOnlySeed(error)) throw error;
      if (this.#secret !== undefined) {
        throw new ProtocolError(
          `Cannot use tracker ${this.address}: it speaks only the seed protocol, which has no private swarms (use a Shoal tracker, or no secret)`,
        );
      }
      this.#protocol = "seed";
      this.#seedClient = new SeedTrackerClient(this.address, {
        timeoutMs: this.#timeoutMs,
        ...(this.#transport ? { transport: this.#transport } : {}),
      });
      return await seed(this.#seedClient);
    }
  }

  /**
   * Whether a failed framed call met a seed-only tracker: the connection was
   * closed without a reply, or answered with something that is not a frame,
   * by a tracker that then answers a seed-protocol `list` with `ok` and does
   * not say it is a Shoal tracker. A Shoal tracker that dropped one
   * connection (a restart, an overload, a cap) says so, and the failure
   * stays a failure: one lost connection never turns a client to plaintext.
   */
  async #speaksOnlySeed(error: unknown): Promise<boolean> {
    if (!this.#seedFallback || this.#protocol === "shoal") return false;
    const closed = error instanceof Deno.errors.ConnectionReset ||
      error instanceof Deno.errors.BrokenPipe ||
      error instanceof Deno.errors.UnexpectedEof ||
      // A frame header that is not one (a seed reply starts with "{"),
      // or a handshake cut short; not a refusal to authenticate.
      (error instanceof ProtocolError &&
        !/secret|proof|authentication|refused/i.test(error.message));
    if (!closed) return false;
    try {
      const reply = await legacyRequest(this.address, { command: "list" }, {
        timeoutMs: this.#timeoutMs,
        ...(this.#transport ? { transport: this.#transport } : {}),
      });
      return reply.status === "ok" && reply.shoal === undefined;
    } catch {
      return false;
    }
  }

  async #ask<K extends keyof TrackerReplies & string>(
    message: { type: K } & Record<string, unknown>,
  ): Promise<TrackerReplies[K]> {
    await using client = await RpcClient.connect(this.address, {
      requestTimeoutMs: this.#timeoutMs,
      // One short exchange per connection: no need for a 1 MiB read buffer.
      readBufferSize: 64 * 1024,
      ...(this.#secret !== undefined ? { secret: this.#secret } : {}),
      ...(this.#transport ? { transport: this.#transport } : {}),
      ...(this.#identity ? { identity: this.#identity } : {}),
      encryption: this.#encryption,
    });
    return await client.ask(trackerReplies, message);
  }

  /**
   * Registers a peer serving on `port` with its full file list.
   *
   * @param port The peer's serving port.
   * @param files Everything it shares.
   * @param host Advertised host (used only by trusting trackers).
   * @returns The tracker's view of the registration.
   */
  async register(
    port: number,
    files: FileAnnouncement[],
    host?: string,
  ): Promise<Registration> {
    if (this.#members) {
      return await this.#failover(
        this.#members,
        (c) => c.register(port, files, host),
      );
    }
    return await this.#call<Registration>(
      async () => {
        const reply = await this.#ask({
          type: "register",
          port,
          files,
          ...(host ? { host } : {}),
        });
        return {
          address: reply.address,
          heartbeatIntervalMs: reply.heartbeatIntervalMs ?? 30_000,
          expiryMs: reply.expiryMs ?? 90_000,
          deltas: reply.deltas === true,
          protocol: "shoal",
        };
      },
      async (seed) => ({
        ...await seed.register(port, files, host),
        protocol: "seed",
      }),
    );
  }

  /**
   * Sends a heartbeat, optionally with a new full file list.
   *
   * @param port The peer's serving port.
   * @param files The new list, if it changed.
   * @param host Advertised host.
   * @throws {RemoteError} With code `unknown_peer` if the tracker forgot the
   *   peer (register again).
   */
  async heartbeat(
    port: number,
    files?: FileAnnouncement[],
    host?: string,
  ): Promise<void> {
    if (this.#members) {
      return await this.#failover(
        this.#members,
        (c) => c.heartbeat(port, files, host),
      );
    }
    await this.#call(
      async () => {
        await this.#ask({
          type: "heartbeat",
          port,
          ...(files ? { files } : {}),
          ...(host ? { host } : {}),
        });
      },
      (seed) => seed.heartbeat(port, files, host),
    );
  }

  /**
   * Sends a heartbeat carrying only what changed since the last announce.
   *
   * @param port The peer's serving port.
   * @param seq This announce's number: one more than the last one the
   *   tracker applied (a full list resets it to 0).
   * @param added Files new or changed by name.
   * @param removed Names no longer shared.
   * @param host Advertised host.
   * @throws {RemoteError} With code `resync` if the tracker missed an
   *   announce (send the full list with {@linkcode TrackerClient.heartbeat}),
   *   or `unknown_peer` if it forgot the peer (register again).
   */
  async announceChanges(
    port: number,
    seq: number,
    added: FileAnnouncement[],
    removed: string[],
    host?: string,
  ): Promise<void> {
    if (this.#members) {
      return await this.#failover(
        this.#members,
        (c) => c.announceChanges(port, seq, added, removed, host),
      );
    }
    await this.#call(
      async () => {
        await this.#ask({
          type: "heartbeat",
          port,
          seq,
          added,
          removed,
          ...(host ? { host } : {}),
        });
      },
      (seed) => seed.announceChanges(),
    );
  }

  /**
   * Leaves the network.
   *
   * @param port The peer's serving port.
   * @param host Advertised host.
   */
  async unregister(port: number, host?: string): Promise<void> {
    if (this.#members) {
      return await this.#failover(
        this.#members,
        (c) => c.unregister(port, host),
      );
    }
    await this.#call(
      async () => {
        await this.#ask({
          type: "unregister",
          port,
          ...(host ? { host } : {}),
        });
      },
      (seed) => seed.unregister(),
    );
  }

  /**
   * Lists files on the network.
   *
   * @param query Substring or glob (`*`, `?`).
   * @returns The files with holder counts.
   */
  async list(query?: string): Promise<ListedFile[]> {
    if (this.#members) {
      return await this.#failover(this.#members, (c) => c.list(query));
    }
    return await this.#call(
      async () => {
        const reply = await this.#ask({
          type: "list",
          ...(query ? { query } : {}),
        });
        return reply.files;
      },
      (seed) => seed.list(query),
    );
  }

  /**
   * Finds live holders of a content id or of a name.
   *
   * @param query `{ id }` or `{ name }`.
   * @returns The holders.
   */
  async getPeers(
    query: { id: string } | { name: string },
  ): Promise<PeerInfo[]> {
    if (this.#members) {
      return await this.#failover(this.#members, (c) => c.getPeers(query));
    }
    return await this.#call(
      async () => (await this.#ask({ type: "getpeers", ...query })).peers,
      (seed) => seed.getPeers(query),
    );
  }
}
