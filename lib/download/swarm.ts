/**
 * The multi-source engine of a download: one connection per holder, several
 * chunk requests in flight on each, chunks chosen by a
 * {@linkcode DownloadStrategy}, the maps of partial holders pushed (long-poll
 * `have`), every chunk verified before it is written, bad senders struck
 * off, silent ones timed out, choked requests asked elsewhere, and the
 * tracker asked again for new holders (every second while there is room).
 *
 * @module
 */
import { RemoteError } from "../errors.ts";
import { ChunkBuffers } from "./_chunk_buffers.ts";
import { chunkLength, type Manifest, sha256Hex } from "../content/manifest.ts";
import { type PeerInfo, peerReplies } from "../protocol/messages.ts";
import type { TokenBucket } from "../net/rate_limit.ts";
import type { Transport } from "../net/transport.ts";
import type { Identity } from "../net/identity.ts";
import { ChunkBoard } from "./scheduler.ts";
import {
  type ChunkChooser,
  defaultStrategy,
  type DownloadStrategy,
} from "./strategy.ts";
import { ByteBudget } from "./_byte_budget.ts";
import type { SourceTally } from "./options.ts";
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
  /** The key pair proved to sources. @default {ephemeralIdentity()} */
  identity?: Identity;
  /** Encrypt source connections. @default {true} */
  encryption?: boolean;
  /** The port this side's peer serves on, told to each source (`hello`). */
  servingPort?: number;
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
 * @returns Bytes received, what came from whom, and the addresses that
 *   were banned.
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
): Promise<{ received: number; sources: SourceTally[]; banned: string[] }> {
  const swarm = new Swarm(options);
  let stalled = false;
  try {
    stalled = await swarm.supervise();
  } finally {
    await swarm.close();
  }
  swarm.throwIfUnfinished(stalled);
  return {
    received: swarm.received,
    sources: swarm.tally(),
    banned: [...swarm.pool.banned],
  };
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
  /** Every chunk request in flight (an endgame duplicate included). */
  readonly #requests = new Set<AbortController>();
  readonly #tally = new Map<string, SourceTally>();
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
    // Ending the swarm aborts every request in flight (one listener here
    // instead of a combined signal made for every chunk request).
    this.#signal.addEventListener("abort", () => {
      for (const request of this.#requests) request.abort(this.#signal.reason);
    }, { once: true });
    this.pool = new SourcePool({
      id: manifest.id,
      maxPeers: options.maxPeers,
      connect: {
        requestTimeoutMs: options.requestTimeoutMs,
        allocate: this.#buffers.allocate,
        discard: this.#buffers.release,
        ...(options.secret !== undefined ? { secret: options.secret } : {}),
        ...(options.transport ? { transport: options.transport } : {}),
        ...(options.identity ? { identity: options.identity } : {}),
        ...(options.encryption === false ? { encryption: false } : {}),
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
        // While there is room for more sources, look every second: the
        // peers of a flash crowd find each other at once.
        const interval = pool.active() < options.maxPeers
          ? Math.min(DISCOVERY_INTERVAL_MS, options.refreshIntervalMs)
          : options.refreshIntervalMs;
        await board.changed(Math.min(500, interval));
        if (performance.now() - lastRefresh < interval) continue;
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

  /**
   * What each source sent, most bytes first.
   *
   * @returns One tally per source address.
   */
  tally(): SourceTally[] {
    return [...this.#tally.values()].map((t) => ({ ...t }))
      .sort((a, b) => b.bytes - a.bytes);
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
    const { maxInFlightPerPeer, servingPort } = this.#options;
    // This side's own peer may be listed (its partial download is
    // announced): no use asking it.
    // Each source starts as soon as its handshake is done: a holder slow to
    // answer one does not hold the others back.
    const started: Promise<void>[] = [];
    await this.pool.connect(
      infos.filter((info) => !isSelf(info.address, servingPort)),
      (source) => started.push(this.#startSource(source, maxInFlightPerPeer)),
    );
    await Promise.all(started);
  }

  /** Greets a connected source, learns its map and starts its lanes. */
  async #startSource(
    source: Source,
    maxInFlightPerPeer: number,
  ): Promise<void> {
    const { servingPort } = this.#options;
    try {
      if (servingPort !== undefined) {
        // Who we are, for reciprocity; an older peer answers an error.
        await source.client.ask(peerReplies, {
          type: "hello",
          port: servingPort,
        }).catch((error) => {
          if (!(error instanceof RemoteError)) throw error;
        });
      }
      await this.#refreshHave(source);
    } catch (error) {
      this.#drop(source, error as Error);
      return;
    }
    if (source.bitfield !== null && source.version !== undefined) {
      this.#spawn(source, () => this.#watch(source));
    }
    for (let i = 0; i < maxInFlightPerPeer; i++) {
      this.#spawn(source, () => this.#lane(source));
    }
  }

  /** Runs `task` for `source` until it ends; a failure drops the source. */
  #spawn(source: Source, task: () => Promise<void>): void {
    const run = task().catch((error) => {
      if (!this.#signal.aborted) this.#drop(source, error as Error);
    }).finally(() => this.#lanes.delete(run));
    this.#lanes.add(run);
  }

  /**
   * Follows a partial holder's map as it grows (long-poll `have`), until it
   * completes, is dropped, or the download ends.
   */
  async #watch(source: Source): Promise<void> {
    const { manifest, requestTimeoutMs } = this.#options;
    const board = this.#board;
    source.watching = true;
    try {
      while (
        source.bitfield !== null && !source.dropped && !board.finished &&
        !this.#signal.aborted
      ) {
        const asked = performance.now();
        const update = await source.watchHave(
          manifest.id,
          board.total,
          HAVE_WAIT_MS,
          HAVE_WAIT_MS + requestTimeoutMs,
          this.#signal,
        );
        if (source.dropped) return;
        if (update.kind === "complete") {
          this.#chooser.setSource(source.key, null);
        } else if (update.kind === "map") {
          this.#chooser.setSource(source.key, update.bitfield);
        } else {
          for (const i of update.added) this.#chooser.addChunk(source.key, i);
          if (
            update.added.length === 0 && performance.now() - asked < 250
          ) {
            // A holder that answers at once with nothing new: do not spin.
            await sleep(250, this.#signal);
          }
          if (update.added.length === 0) continue;
        }
        board.wake();
        // Let news gather before asking again: one reply then carries the
        // chunks of a few hundred ms instead of one reply per chunk, which
        // with many neighbours was a large share of a peer's CPU.
        await sleep(HAVE_BATCH_MS, this.#signal);
      }
    } finally {
      source.watching = false;
    }
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
      const choked = source.chokedUntil - performance.now();
      if (choked > 0) {
        await sleep(choked, this.#signal);
        continue;
      }
      if (source.probe) {
        // A choking source is asked by one lane at a time: the others wait
        // for its answer instead of each hearing `choked` again.
        await source.probe;
        continue;
      }
      const index = this.#chooser.next(source.key);
      if (index === undefined) {
        if (
          source.bitfield !== null && !source.watching &&
          performance.now() - source.lastHave > 250
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
      if (!source.choked) {
        await this.#fetch(source, index);
        continue;
      }
      let probed!: () => void;
      source.probe = new Promise((resolve) => probed = resolve);
      try {
        await this.#fetch(source, index);
      } finally {
        source.probe = undefined;
        probed();
      }
    }
  }

  /** Asks `source` for chunk `index`, verifies it and writes it. */
  async #fetch(source: Source, index: number): Promise<void> {
    const { manifest, limiter, requestTimeoutMs } = this.#options;
    const length = chunkLength(manifest, index);
    const controller = new AbortController();
    if (this.#signal.aborted) controller.abort(this.#signal.reason);
    this.#requests.add(controller);
    source.inflight.set(index, controller);
    await this.#budget.acquire(length);
    let buffer: Uint8Array | undefined;
    try {
      await limiter?.take(length, this.#signal);
      const reply = await source.client.request(
        { type: "chunk", id: manifest.id, index },
        requestTimeoutMs,
        controller.signal,
      );
      if (!(reply instanceof Uint8Array)) {
        throw new ProtocolError(
          `Cannot accept reply to chunk ${index}: expected data`,
        );
      }
      buffer = reply;
      source.choked = false;
      await this.#accept(source, index, reply);
    } catch (error) {
      this.#board.release(index, source.key);
      if (this.#signal.aborted) throw error;
      if (controller.signal.aborted) return; // Endgame duplicate cancelled.
      if (error instanceof RemoteError && error.code === "choked") {
        // Not now from this source: the chunk goes to another one, and this
        // source is asked again when it says.
        source.choked = true;
        source.chokedUntil = performance.now() +
          (error.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS);
        return;
      }
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
      this.#requests.delete(controller);
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
    const address = source.info.address;
    const tally = this.#tally.get(address) ??
      { address, bytes: 0, chunks: 0 };
    tally.bytes += length;
    tally.chunks++;
    this.#tally.set(address, tally);
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

/** How long a partial holder may hold a `have` long poll, ms. */
const HAVE_WAIT_MS = 2000;

/** How long a have watcher lets news gather between long polls, ms. */
const HAVE_BATCH_MS = 200;

/** How often to look for holders while there is room for more, ms. */
const DISCOVERY_INTERVAL_MS = 1000;

/** How long a choked source rests when it does not say, ms. */
const DEFAULT_RETRY_AFTER_MS = 1000;

/** Whether `address` is this host's own peer serving on `port`. */
function isSelf(address: string, port: number | undefined): boolean {
  if (port === undefined) return false;
  const match = /^\[?(.*?)\]?:(\d+)$/.exec(address);
  return match !== null && Number(match[2]) === port &&
    /^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(match[1]!);
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}
