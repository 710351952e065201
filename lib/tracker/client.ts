/**
 * A client for a Shoal tracker: register, heartbeat, unregister, list and
 * getpeers over the framed protocol, one short connection per call.
 *
 * @module
 */
import { RpcClient } from "../protocol/rpc.ts";
import type { Transport } from "../net/transport.ts";
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
}

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
  /** Tracker `host:port`. */
  readonly address: string;
  readonly #timeoutMs: number;
  readonly #secret: string | undefined;
  readonly #transport: Transport | undefined;

  /**
   * Creates a client (no connection is made until a call).
   *
   * @param address Tracker `host:port`.
   * @param options Timeouts.
   */
  constructor(address: string, options: TrackerClientOptions = {}) {
    this.address = address;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#secret = options.secret;
    this.#transport = options.transport;
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
    };
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
    await this.#ask({
      type: "heartbeat",
      port,
      ...(files ? { files } : {}),
      ...(host ? { host } : {}),
    });
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
    await this.#ask({
      type: "heartbeat",
      port,
      seq,
      added,
      removed,
      ...(host ? { host } : {}),
    });
  }

  /**
   * Leaves the network.
   *
   * @param port The peer's serving port.
   * @param host Advertised host.
   */
  async unregister(port: number, host?: string): Promise<void> {
    await this.#ask({ type: "unregister", port, ...(host ? { host } : {}) });
  }

  /**
   * Lists files on the network.
   *
   * @param query Substring or glob (`*`, `?`).
   * @returns The files with holder counts.
   */
  async list(query?: string): Promise<ListedFile[]> {
    const reply = await this.#ask({
      type: "list",
      ...(query ? { query } : {}),
    });
    return reply.files;
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
    const reply = await this.#ask({ type: "getpeers", ...query });
    return reply.peers;
  }
}
