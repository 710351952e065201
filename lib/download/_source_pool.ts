/**
 * The sources of a download: one connection per holder with its chunk map
 * and strikes, and the pool that connects new holders, backs off from
 * addresses that failed, and drops or bans bad ones.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { RpcClient, type RpcClientOptions } from "../protocol/rpc.ts";
import { type PeerInfo, peerReplies } from "../protocol/messages.ts";
import { ProtocolError } from "../net/wire.ts";
import { keyFromHex } from "../net/identity.ts";
import { KeyMismatchError } from "../net/secure.ts";

/** What a long-poll `have` learnt of a source. */
export type HaveUpdate =
  | { kind: "complete" }
  | { kind: "map"; bitfield: Uint8Array }
  | { kind: "added"; added: number[] };

/** One holder the download is connected to. */
export class Source {
  /** Stable id within the download. */
  readonly key: string;
  /** What the tracker said of it. */
  readonly info: PeerInfo;
  /** The connection. */
  readonly client: RpcClient;
  /** `null` when it holds every chunk, else its last known map. */
  bitfield: Uint8Array | null = null;
  /**
   * The version of its map (it pushes new chunks: long-poll `have`), or
   * `undefined` for an older peer whose map is polled.
   */
  version: number | undefined;
  /** Whether a long poll of its map runs. */
  watching = false;
  /** Not asked for chunks before this time (`performance.now()`): choked. */
  chokedUntil = 0;
  /**
   * Whether its last answer was `choked`: until a chunk comes, one request
   * at a time asks again (a probe) instead of every lane.
   */
  choked = false;
  /** Settles when the probe in flight ends, if one is. */
  probe: Promise<void> | undefined;
  /** Whether it was dropped. */
  dropped = false;
  /** Bad chunks it sent. */
  strikes = 0;
  /** When its map was last asked for (`performance.now()`). */
  lastHave = 0;
  /** Its requests in flight, by chunk index. */
  readonly inflight: Map<number, AbortController> = new Map();

  /**
   * Wraps a connected holder.
   *
   * @param key Stable id within the download.
   * @param info The holder.
   * @param client Its connection.
   */
  constructor(key: string, info: PeerInfo, client: RpcClient) {
    this.key = key;
    this.info = info;
    this.client = client;
  }

  /**
   * Asks the holder which chunks of `id` it has, and keeps the answer.
   *
   * @param id Content id.
   * @param chunks Number of chunks.
   * @returns Its map, or `null` when it holds everything.
   * @throws {ProtocolError} If the map has the wrong size.
   */
  async refreshHave(id: string, chunks: number): Promise<Uint8Array | null> {
    this.lastHave = performance.now();
    const reply = await this.client.ask(peerReplies, { type: "have", id });
    this.version = reply.version;
    if (reply.complete === true) {
      this.bitfield = null;
      return null;
    }
    if (!("bitfield" in reply)) {
      throw new ProtocolError(
        "Cannot accept have reply: a map was asked for, not the chunks added",
      );
    }
    this.bitfield = decodeBitfield(reply.bitfield, chunks);
    return this.bitfield;
  }

  /**
   * Waits (long poll) for the chunks of `id` the holder verifies after the
   * version last seen, and keeps them.
   *
   * @param id Content id.
   * @param chunks Number of chunks.
   * @param waitMs Longest the holder may wait before answering.
   * @param timeoutMs Bound on the whole request.
   * @param signal Cancels the wait.
   * @returns What changed: it completed, a whole new map, or the chunks
   *   added (maybe none).
   * @throws {ProtocolError} If the reply is malformed.
   */
  async watchHave(
    id: string,
    chunks: number,
    waitMs: number,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<HaveUpdate> {
    const reply = await this.client.ask(
      peerReplies,
      { type: "have", id, after: this.version ?? 0, waitMs },
      { timeoutMs, signal },
    );
    this.lastHave = performance.now();
    if (reply.version !== undefined) this.version = reply.version;
    if (reply.complete === true) {
      this.bitfield = null;
      return { kind: "complete" };
    }
    if ("bitfield" in reply) {
      this.bitfield = decodeBitfield(reply.bitfield, chunks);
      return { kind: "map", bitfield: this.bitfield };
    }
    const added = reply.added.filter((i) => i < chunks);
    const bitfield = this.bitfield;
    if (bitfield) {
      for (const i of added) bitfield[i >>> 3]! |= 0x80 >>> (i & 7);
    }
    return { kind: "added", added };
  }
}

/** Decodes a base64 map of `chunks` chunks, checking its size. */
function decodeBitfield(text: string, chunks: number): Uint8Array {
  const expected = Math.ceil(chunks / 8);
  const bitfield = text.length <= Math.ceil(expected / 3) * 4 + 4
    ? new Uint8Array(Buffer.from(text, "base64"))
    : undefined;
  if (!bitfield || bitfield.length !== expected) {
    throw new ProtocolError(
      `Cannot accept have reply: expected a ${expected}-byte bitfield`,
    );
  }
  return bitfield;
}

/** How a {@linkcode SourcePool} connects. */
export interface SourcePoolOptions {
  /** Content id the holders must hold. */
  id: string;
  /** Most sources at once. */
  maxPeers: number;
  /** Options of each connection (timeouts, buffers, secret, transport). */
  connect: RpcClientOptions;
}

/**
 * The sources of one download. Addresses that failed (refused, silent,
 * wrong answers) wait before they are tried again, longer each time, so
 * holders listed after them get their turn: a list led by dead addresses
 * cannot eclipse a live one.
 */
export class SourcePool {
  /** Every source connected so far, dropped ones included. */
  readonly sources: Source[] = [];
  /** Addresses banned for bad chunks. */
  readonly banned: Set<string> = new Set();
  /** What went wrong, most recent last. */
  readonly errors: string[] = [];
  readonly #options: SourcePoolOptions;
  readonly #attempts = new Map<string, { failures: number; retryAt: number }>();
  #count = 0;

  /**
   * Creates an empty pool.
   *
   * @param options What to connect to and how.
   */
  constructor(options: SourcePoolOptions) {
    this.#options = options;
  }

  /**
   * Sources not dropped.
   *
   * @returns Their number.
   */
  active(): number {
    return this.sources.filter((s) => !s.dropped).length;
  }

  /**
   * The source with `key`.
   *
   * @param key Source key.
   * @returns It, if any.
   */
  find(key: string): Source | undefined {
    return this.sources.find((s) => s.key === key);
  }

  /**
   * Whether `infos` list a holder that may still be used.
   *
   * @param infos Holders.
   * @returns `true` if one holds the content and is not banned.
   */
  usable(infos: PeerInfo[]): boolean {
    return infos.some((info) =>
      info.protocol === "shoal" && info.id === this.#options.id &&
      !this.banned.has(info.address)
    );
  }

  /**
   * Connects to new holders among `infos`, up to the source limit: untried
   * addresses first, then those that failed least, random among equals.
   *
   * @param infos Holders.
   * @param onConnected Told of each source as soon as it is connected.
   * @returns The sources connected now.
   */
  async connect(
    infos: PeerInfo[],
    onConnected?: (source: Source) => void,
  ): Promise<Source[]> {
    const failures = (info: PeerInfo) =>
      this.#attempts.get(info.address)?.failures ?? 0;
    const fresh = this.#candidates(infos)
      .map((info) => ({ info, order: failures(info) + Math.random() }))
      .sort((a, b) => a.order - b.order)
      .map(({ info }) => info)
      .slice(0, Math.max(0, this.#options.maxPeers - this.active()));
    const connected = await Promise.all(fresh.map(async (info) => {
      try {
        // A holder must prove the key the tracker listed for it.
        const client = await RpcClient.connect(info.address, {
          ...this.#options.connect,
          ...(info.key ? { remoteKey: keyFromHex(info.key) } : {}),
        });
        const source = new Source(
          `${info.address}#${this.#count++}`,
          info,
          client,
        );
        this.sources.push(source);
        onConnected?.(source);
        return source;
      } catch (error) {
        this.#failed(info.address);
        // Not who the tracker said: never asked again in this download.
        if (error instanceof KeyMismatchError) this.banned.add(info.address);
        this.errors.push(`${info.address}: ${(error as Error).message}`);
        return undefined;
      }
    }));
    return connected.filter((s) => s !== undefined);
  }

  /**
   * Drops a source: its requests are cancelled, its connection closed and
   * its address backed off.
   *
   * @param source The source.
   * @param error Why.
   * @returns `false` if it was dropped already.
   */
  drop(source: Source, error: Error): boolean {
    if (source.dropped) return false;
    source.dropped = true;
    this.#failed(source.info.address);
    this.errors.push(`${source.info.address}: ${error.message}`);
    for (const controller of source.inflight.values()) controller.abort();
    void source.client.close();
    return true;
  }

  /** Closes every connection. */
  closeAll(): void {
    for (const source of this.sources) void source.client.close();
  }

  #candidates(infos: PeerInfo[]): PeerInfo[] {
    const now = performance.now();
    const seen = new Set<string>();
    return infos.filter((info) => {
      if (info.protocol !== "shoal" || info.id !== this.#options.id) {
        return false;
      }
      if (this.banned.has(info.address) || seen.has(info.address)) {
        return false;
      }
      seen.add(info.address);
      if ((this.#attempts.get(info.address)?.retryAt ?? 0) > now) return false;
      return !this.sources.some((s) =>
        !s.dropped && s.info.address === info.address
      );
    });
  }

  #failed(address: string): void {
    const entry = this.#attempts.get(address) ?? { failures: 0, retryAt: 0 };
    entry.failures++;
    entry.retryAt = performance.now() +
      Math.min(250 * 2 ** entry.failures, 15_000);
    this.#attempts.set(address, entry);
  }
}
