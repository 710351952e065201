/**
 * The multi-source engine of a download: one connection per holder, several
 * chunk requests in flight on each, chunks chosen by a
 * {@linkcode DownloadStrategy}, every chunk verified before it is written,
 * bad senders struck off, silent ones timed out, and the tracker asked again
 * when sources run out.
 *
 * @module
 */
import { RemoteError } from "../errors.ts";
import { ChunkBuffers } from "./_chunk_buffers.ts";
import { chunkLength, type Manifest, sha256Hex } from "../content/manifest.ts";
import type { PeerInfo } from "../protocol/messages.ts";
import type { TokenBucket } from "../net/rate_limit.ts";
import type { Transport } from "../net/transport.ts";
import { ChunkBoard } from "./scheduler.ts";
import {
  type ChunkChooser,
  defaultStrategy,
  type DownloadStrategy,
} from "./strategy.ts";
import { ByteBudget } from "./_byte_budget.ts";
import { type Source, SourcePool } from "./_source_pool.ts";
import { ProtocolError } from "../net/wire.ts";

/**
 * A chunk whose bytes do not match the manifest's SHA-256.
 *
 * @example Inspecting a verification failure
 * ```ts
 * import { ChunkVerificationError } from "@shoal/shoal";
 * const error = new ChunkVerificationError(3, "127.0.0.1:10001", "bad hash");
 * if (error.index !== 3) throw new Error("wrong index");
 * ```
 */
export class ChunkVerificationError extends Error {
  /** Index of the chunk that failed. */
  readonly index: number;
  /** Address of the peer that sent it. */
  readonly source: string;
  /**
   * Creates the error.
   *
   * @param index Chunk index.
   * @param source Sender's address.
   * @param detail What did not match.
   */
  constructor(index: number, source: string, detail: string) {
    super(`Chunk ${index} from ${source} failed verification: ${detail}`);
    this.name = "ChunkVerificationError";
    this.index = index;
    this.source = source;
  }
}

/** Where verified chunks are written (a {@linkcode PartFile} is one). */
export interface ChunkSink {
  /**
   * Writes `bytes` at `offset`; writes may be queued but land in order.
   *
   * @param offset Byte offset.
   * @param bytes The verified chunk.
   * @returns When written.
   */
  writeAt(offset: number, bytes: Uint8Array): Promise<void>;
}

/** Limits and hooks of a swarm run. */
export interface SwarmOptions {
  /** The verified manifest. */
  manifest: Manifest;
  /** `1` per chunk already verified on disk; updated as chunks verify. */
  have: Uint8Array;
  /** Where verified chunks go: the `.part` file, already sized. */
  file: ChunkSink;
  /** Holders known at the start. */
  holders: PeerInfo[];
  /** Asks the tracker (and others) for holders again. */
  findHolders: () => Promise<PeerInfo[]>;
  /** Which chunk to ask which source for. @default {defaultStrategy} */
  strategy?: DownloadStrategy;
  /** How sources are dialled. @default {tcpTransport} */
  transport?: Transport;
  /** Requests in flight per source. */
  maxInFlightPerPeer: number;
  /** Most sources at once. */
  maxPeers: number;
  /** Bound on each request, ms. */
  requestTimeoutMs: number;
  /** Bad chunks before a source is dropped. */
  maxStrikes: number;
  /** How often to look for new holders, ms. */
  refreshIntervalMs: number;
  /** Give up when no chunk verified for this long, ms. */
  stallTimeoutMs: number;
  /** Most chunk bytes requested but not yet written. */
  maxInFlightBytes: number;
  /** Shared download rate cap. */
  limiter?: TokenBucket;
  /** Cancels the run. */
  signal?: AbortSignal;
  /** Shared secret of a private swarm: sources are authenticated with it. */
  secret?: string;
  /** Called after each verified, written chunk, with the source's address. */
  onChunk: (
    index: number,
    length: number,
    activeSources: number,
    source: string,
  ) => void;
}

/**
 * Fetches every missing chunk of `manifest` into `file`.
 *
 * @param options Manifest, file, holders and limits.
 * @returns Bytes received and the addresses that were banned.
 * @throws {ChunkVerificationError} If sources ran out after bad chunks.
 * @throws {Deno.errors.NotFound} If sources ran out otherwise.
 * @throws {Deno.errors.TimedOut} If no chunk verified for
 *   `stallTimeoutMs`.
 *
 * @example Filling a partial file from known holders
 * ```ts ignore
 * import { runSwarm } from "@shoal/shoal/download";
 * declare const options: import("@shoal/shoal/download").SwarmOptions;
 * const { received } = await runSwarm(options);
 * ```
 */
export async function runSwarm(
  options: SwarmOptions,
): Promise<{ received: number; banned: string[] }> {
  const swarm = new Swarm(options);
  let stalled = false;
  try {
    stalled = await swarm.supervise();
  } finally {
    await swarm.close();
  }
  swarm.throwIfUnfinished(stalled);
  return { received: swarm.received, banned: [...swarm.pool.banned] };
}

/** One run: the board, the chooser, the sources and their lanes. */
class Swarm {
  readonly pool: SourcePool;
  received = 0;
  readonly #options: SwarmOptions;
  readonly #board: ChunkBoard;
  readonly #chooser: ChunkChooser;
  readonly #budget: ByteBudget;
  readonly #buffers: ChunkBuffers;
  readonly #stop = new AbortController();
  readonly #signal: AbortSignal;
  readonly #lanes = new Set<Promise<void>>();
  #lastVerificationError: ChunkVerificationError | undefined;

  constructor(options: SwarmOptions) {
    const { manifest } = options;
    this.#options = options;
    this.#board = new ChunkBoard(options.have);
    this.#chooser = (options.strategy ?? defaultStrategy).choose(this.#board);
    this.#budget = new ByteBudget(options.maxInFlightBytes);
    this.#buffers = new ChunkBuffers(
      manifest.chunkSize,
      Math.ceil(options.maxInFlightBytes / manifest.chunkSize) + 2,
    );
    this.#signal = options.signal
      ? AbortSignal.any([options.signal, this.#stop.signal])
      : this.#stop.signal;
    this.pool = new SourcePool({
      id: manifest.id,
      maxPeers: options.maxPeers,
      connect: {
        requestTimeoutMs: options.requestTimeoutMs,
        allocate: this.#buffers.allocate,
        discard: this.#buffers.release,
        ...(options.secret !== undefined ? { secret: options.secret } : {}),
        ...(options.transport ? { transport: options.transport } : {}),
      },
    });
  }

  /**
   * Connects sources and keeps looking for more until every chunk is done,
   * the sources run out, or nothing verified for the stall timeout.
   *
   * @returns `true` when it gave up for the stall timeout.
   */
  async supervise(): Promise<boolean> {
    const options = this.#options;
    const board = this.#board;
    const pool = this.pool;
    await this.#addSources(options.holders);
    let lastRefresh = performance.now();
    let lastProgress = performance.now();
    let lastDone = board.done;
    let emptyRounds = 0;
    let idleRounds = 0;
    while (!board.finished) {
      options.signal?.throwIfAborted();
      if (board.done !== lastDone) {
        lastDone = board.done;
        lastProgress = performance.now();
      } else if (performance.now() - lastProgress >= options.stallTimeoutMs) {
        return true;
      }
      if (pool.active() === 0) {
        // Nobody left to ask: give up soon when the tracker knows no holder
        // we may still use, else keep asking (backing off) until the stall
        // timeout.
        if (emptyRounds >= 3) break;
        await new Promise((resolve) =>
          setTimeout(resolve, Math.min(250 * 2 ** idleRounds, 4000))
        );
        idleRounds++;
      } else {
        idleRounds = 0;
        await board.changed(Math.min(500, options.refreshIntervalMs));
        if (performance.now() - lastRefresh < options.refreshIntervalMs) {
          continue;
        }
      }
      if (board.finished) break;
      lastRefresh = performance.now();
      const infos = await options.findHolders().catch(() => []);
      emptyRounds = pool.active() === 0 && !pool.usable(infos)
        ? emptyRounds + 1
        : 0;
      await this.#addSources(infos);
    }
    return false;
  }

  /** Stops every lane and waits for them and the pending writes. */
  async close(): Promise<void> {
    this.#stop.abort();
    this.#board.wake();
    await Promise.allSettled([...this.#lanes]);
    this.pool.closeAll();
  }

  /**
   * Throws why the run ended short, if it did.
   *
   * @param stalled Whether it gave up for the stall timeout.
   */
  throwIfUnfinished(stalled: boolean): void {
    const { manifest, stallTimeoutMs, signal } = this.#options;
    const board = this.#board;
    if (board.finished) return;
    signal?.throwIfAborted();
    const missing = `${
      board.total - board.done
    } of ${board.total} chunks missing`;
    const errors = this.pool.errors.slice(-3).join("; ");
    if (stalled) {
      throw new Deno.errors.TimedOut(
        `Cannot finish ${manifest.name}: no chunk verified for ${
          formatSeconds(stallTimeoutMs)
        } (${missing}; ${
          errors || "sources sent nothing"
        }); the verified chunks are kept, run the download again to resume`,
      );
    }
    if (this.#lastVerificationError) throw this.#lastVerificationError;
    throw new Deno.errors.NotFound(
      `Cannot finish ${manifest.name}: ${missing} and no source left (${
        errors || "no holders"
      })`,
    );
  }

  async #addSources(infos: PeerInfo[]): Promise<void> {
    const { maxInFlightPerPeer } = this.#options;
    const connected = await this.pool.connect(infos);
    await Promise.all(connected.map(async (source) => {
      try {
        await this.#refreshHave(source);
      } catch (error) {
        this.#drop(source, error as Error);
        return;
      }
      for (let i = 0; i < maxInFlightPerPeer; i++) {
        const task = this.#lane(source).catch((error) => {
          if (!this.#signal.aborted) this.#drop(source, error as Error);
        }).finally(() => this.#lanes.delete(task));
        this.#lanes.add(task);
      }
    }));
  }

  async #refreshHave(source: Source): Promise<void> {
    const chunks = await source.refreshHave(
      this.#options.manifest.id,
      this.#board.total,
    );
    if (!source.dropped) this.#chooser.setSource(source.key, chunks);
  }

  #drop(source: Source, error: Error): void {
    if (this.pool.drop(source, error)) this.#chooser.removeSource(source.key);
  }

  /** One request at a time from `source`, until done or dropped. */
  async #lane(source: Source): Promise<void> {
    const board = this.#board;
    while (!board.finished && !source.dropped && !this.#signal.aborted) {
      const index = this.#chooser.next(source.key);
      if (index === undefined) {
        if (
          source.bitfield !== null && performance.now() - source.lastHave > 250
        ) {
          await this.#refreshHave(source).catch((e) =>
            this.#drop(source, e as Error)
          );
        } else {
          await board.changed(250);
        }
        continue;
      }
      board.request(index, source.key);
      await this.#fetch(source, index);
    }
  }

  /** Asks `source` for chunk `index`, verifies it and writes it. */
  async #fetch(source: Source, index: number): Promise<void> {
    const { manifest, limiter, requestTimeoutMs } = this.#options;
    const length = chunkLength(manifest, index);
    const controller = new AbortController();
    source.inflight.set(index, controller);
    await this.#budget.acquire(length);
    let buffer: Uint8Array | undefined;
    try {
      await limiter?.take(length, this.#signal);
      const reply = await source.client.request(
        { type: "chunk", id: manifest.id, index },
        requestTimeoutMs,
        AbortSignal.any([controller.signal, this.#signal]),
      );
      if (!(reply instanceof Uint8Array)) {
        throw new ProtocolError(
          `Cannot accept reply to chunk ${index}: expected data`,
        );
      }
      buffer = reply;
      await this.#accept(source, index, reply);
    } catch (error) {
      this.#board.release(index, source.key);
      if (this.#signal.aborted) throw error;
      if (controller.signal.aborted) return; // Endgame duplicate cancelled.
      if (
        error instanceof RemoteError && error.code === "not_found" &&
        source.bitfield !== null
      ) {
        // A partial holder raced us; refresh its map and go on.
        await this.#refreshHave(source).catch((e) =>
          this.#drop(source, e as Error)
        );
        return;
      }
      this.#drop(source, error as Error);
    } finally {
      // Another lane may have re-picked this index meanwhile: keep its entry.
      if (source.inflight.get(index) === controller) {
        source.inflight.delete(index);
      }
      this.#budget.release(length);
      if (buffer) this.#buffers.release(buffer);
    }
  }

  /** Verifies a received chunk; writes it, or strikes its sender. */
  async #accept(source: Source, index: number, bytes: Uint8Array) {
    const { manifest, maxStrikes } = this.#options;
    const board = this.#board;
    if (board.isDone(index)) return; // Someone else was faster.
    const length = chunkLength(manifest, index);
    const expected = manifest.hashes[index]!;
    // Hashing here measured faster than on a worker thread (0.73 s against
    // 0.95 s for 512 MiB): the seeder keeps the other core busy.
    const actual = bytes.length === length ? sha256Hex(bytes) : "";
    if (actual !== expected) {
      this.#lastVerificationError = new ChunkVerificationError(
        index,
        source.info.address,
        bytes.length !== length
          ? `expected ${length} bytes, got ${bytes.length}`
          : `expected SHA-256 ${expected.slice(0, 16)}…, got ${
            actual.slice(0, 16)
          }…`,
      );
      board.release(index, source.key);
      if (++source.strikes >= maxStrikes) {
        this.pool.banned.add(source.info.address);
        this.#drop(source, this.#lastVerificationError);
      }
      return;
    }
    if (board.isDone(index)) return;
    await this.#options.file.writeAt(index * manifest.chunkSize, bytes);
    const others = board.complete(index);
    if (others === undefined) return;
    this.#options.have[index] = 1;
    this.received += length;
    for (const key of others) {
      if (key !== source.key) {
        this.pool.find(key)?.inflight.get(index)?.abort();
      }
    }
    this.#options.onChunk(
      index,
      length,
      this.pool.active(),
      source.info.address,
    );
  }
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}
