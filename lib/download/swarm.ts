/**
 * The multi-source engine of a download: one connection per holder, several
 * chunk requests in flight on each, chunks chosen by {@linkcode ChunkPicker},
 * every chunk verified before it is written, bad senders struck off, silent
 * ones timed out, and the tracker asked again when sources run out.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { RemoteError, writeAll } from "../net/connection.ts";
import { RpcClient } from "../protocol/rpc.ts";
import { ChunkBuffers } from "./_chunk_buffers.ts";
import { chunkLength, type Manifest, sha256Hex } from "../content/manifest.ts";
import type { PeerInfo } from "../protocol/messages.ts";
import type { TokenBucket } from "../net/rate_limit.ts";
import { ChunkPicker, type SourceView } from "./scheduler.ts";
import { ProtocolError } from "../net/wire.ts";

/**
 * A chunk whose bytes do not match the manifest's SHA-256.
 *
 * @example Inspecting a verification failure
 * ```ts
 * import { ChunkVerificationError } from "./swarm.ts";
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

/** Limits and hooks of a swarm run. */
export interface SwarmOptions {
  /** The verified manifest. */
  manifest: Manifest;
  /** `1` per chunk already verified on disk; updated as chunks verify. */
  have: Uint8Array;
  /** The `.part` file, already sized. */
  file: Deno.FsFile;
  /** Holders known at the start. */
  holders: PeerInfo[];
  /** Asks the tracker (and others) for holders again. */
  findHolders: () => Promise<PeerInfo[]>;
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
  /** Called after each verified, written chunk. */
  onChunk: (index: number, length: number, activeSources: number) => void;
}

interface Source extends SourceView {
  key: string;
  info: PeerInfo;
  client: RpcClient;
  bitfield: Uint8Array | null;
  dropped: boolean;
  strikes: number;
  lastHave: number;
  inflight: Map<number, AbortController>;
}

/** Counts bytes in flight and makes requesters wait for room. */
class ByteBudget {
  #used = 0;
  #waiters: (() => void)[] = [];
  constructor(readonly max: number) {}
  async acquire(bytes: number): Promise<void> {
    while (this.#used > 0 && this.#used + bytes > this.max) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    this.#used += bytes;
  }
  release(bytes: number): void {
    this.#used -= bytes;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
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
 */
export async function runSwarm(
  options: SwarmOptions,
): Promise<{ received: number; banned: string[] }> {
  const { manifest, file, have } = options;
  const picker = new ChunkPicker(have);
  const sources: Source[] = [];
  const banned = new Set<string>();
  // Addresses that failed (refused, silent, wrong answers) wait before they
  // are tried again, longer each time, so holders listed after them get
  // their turn: a list led by dead addresses cannot eclipse a live one.
  const attempts = new Map<string, { failures: number; retryAt: number }>();
  const failed = (address: string) => {
    const entry = attempts.get(address) ?? { failures: 0, retryAt: 0 };
    entry.failures++;
    entry.retryAt = performance.now() +
      Math.min(250 * 2 ** entry.failures, 15_000);
    attempts.set(address, entry);
  };
  const errors: string[] = [];
  const budget = new ByteBudget(options.maxInFlightBytes);
  const buffers = new ChunkBuffers(
    manifest.chunkSize,
    Math.ceil(options.maxInFlightBytes / manifest.chunkSize) + 2,
  );

  const stop = new AbortController();
  const signal = options.signal
    ? AbortSignal.any([options.signal, stop.signal])
    : stop.signal;
  const lanes = new Set<Promise<void>>();
  let lastVerificationError: ChunkVerificationError | undefined;
  let received = 0;

  let writeChain = Promise.resolve();
  const writeChunk = (index: number, bytes: Uint8Array) => {
    const next = writeChain.then(async () => {
      // A seek is one quick syscall: made here, not on a blocking thread.
      file.seekSync(index * manifest.chunkSize, Deno.SeekMode.Start);
      await writeAll(file, bytes);
    });
    writeChain = next.catch(() => {});
    return next;
  };

  const active = () => sources.filter((s) => !s.dropped).length;

  const drop = (source: Source, error: Error) => {
    if (source.dropped) return;
    source.dropped = true;
    failed(source.info.address);
    errors.push(`${source.info.address}: ${error.message}`);
    for (const controller of source.inflight.values()) controller.abort();
    void source.client.close();
  };

  const refreshHave = async (source: Source) => {
    source.lastHave = performance.now();
    const reply = await source.client.call(
      { type: "have", id: manifest.id },
      "have",
    );
    if (reply.complete === true) {
      source.bitfield = null;
      return;
    }
    const expected = Math.ceil(have.length / 8);
    const bitfield = typeof reply.bitfield === "string" &&
        reply.bitfield.length <= Math.ceil(expected / 3) * 4 + 4
      ? new Uint8Array(Buffer.from(reply.bitfield, "base64"))
      : undefined;
    if (!bitfield || bitfield.length !== expected) {
      throw new ProtocolError(
        `Cannot accept have reply: expected a ${expected}-byte bitfield`,
      );
    }
    source.bitfield = bitfield;
  };

  const fetchOne = async (source: Source, index: number, length: number) => {
    const controller = new AbortController();
    source.inflight.set(index, controller);
    await budget.acquire(length);
    let buffer: Uint8Array | undefined;
    try {
      await options.limiter?.take(length, signal);
      const reply = await source.client.request(
        { type: "chunk", id: manifest.id, index },
        options.requestTimeoutMs,
        AbortSignal.any([controller.signal, signal]),
      );
      if (!(reply instanceof Uint8Array)) {
        throw new ProtocolError(
          `Cannot accept reply to chunk ${index}: expected data`,
        );
      }
      buffer = reply;
      if (picker.isDone(index)) return; // Someone else was faster.
      const expected = manifest.hashes[index]!;
      // Hashing on this thread measured faster than a worker thread here:
      // with the seeder on the other core there is no idle core to use.
      // Hashing here measured faster than on a worker thread (0.73 s against
      // 0.95 s for 512 MiB): the seeder keeps the other core busy.
      const actual = reply.length === length ? sha256Hex(reply) : "";
      if (actual !== expected) {
        lastVerificationError = new ChunkVerificationError(
          index,
          source.info.address,
          reply.length !== length
            ? `expected ${length} bytes, got ${reply.length}`
            : `expected SHA-256 ${expected.slice(0, 16)}…, got ${
              actual.slice(0, 16)
            }…`,
        );
        picker.release(index, source.key);
        if (++source.strikes >= options.maxStrikes) {
          banned.add(source.info.address);
          drop(source, lastVerificationError);
        }
        return;
      }
      if (picker.isDone(index)) return;
      await writeChunk(index, reply);
      const others = picker.complete(index);
      if (others === undefined) return;
      have[index] = 1;
      received += length;
      for (const key of others) {
        if (key !== source.key) {
          sources.find((s) => s.key === key)?.inflight.get(index)?.abort();
        }
      }
      options.onChunk(index, length, active());
    } catch (error) {
      picker.release(index, source.key);
      if (signal.aborted) throw error;
      if (controller.signal.aborted) return; // Endgame duplicate cancelled.
      if (
        error instanceof RemoteError && error.code === "not_found" &&
        source.bitfield !== null
      ) {
        // A partial holder raced us; refresh its map and go on.
        await refreshHave(source).catch((e) => drop(source, e as Error));
        return;
      }
      drop(source, error as Error);
    } finally {
      // Another lane may have re-picked this index meanwhile: keep its entry.
      if (source.inflight.get(index) === controller) {
        source.inflight.delete(index);
      }
      budget.release(length);
      if (buffer) buffers.release(buffer);
    }
  };

  const lane = async (source: Source) => {
    while (!picker.finished && !source.dropped && !signal.aborted) {
      const pick = picker.pick(source, sources);
      if (!pick) {
        if (
          source.bitfield !== null && performance.now() - source.lastHave > 250
        ) {
          await refreshHave(source).catch((e) => drop(source, e as Error));
        } else {
          await picker.changed(250);
        }
        continue;
      }
      await fetchOne(source, pick.index, chunkLength(manifest, pick.index));
    }
  };

  const addSources = async (infos: PeerInfo[]) => {
    const now = performance.now();
    const seen = new Set<string>();
    const candidates = infos.filter((info) => {
      if (info.protocol !== "shoal" || info.id !== manifest.id) return false;
      if (banned.has(info.address) || seen.has(info.address)) return false;
      seen.add(info.address);
      if ((attempts.get(info.address)?.retryAt ?? 0) > now) return false;
      return !sources.some((s) =>
        !s.dropped && s.info.address === info.address
      );
    });
    // Untried addresses first, then those that failed least; random among
    // equals, so no fixed set of addresses is always asked first.
    const failures = (info: PeerInfo) =>
      attempts.get(info.address)?.failures ?? 0;
    const fresh = candidates
      .map((info) => ({ info, order: failures(info) + Math.random() }))
      .sort((a, b) => a.order - b.order)
      .map(({ info }) => info)
      .slice(0, Math.max(0, options.maxPeers - active()));
    await Promise.all(fresh.map(async (info) => {
      let client: RpcClient;
      try {
        client = await RpcClient.connect(info.address, {
          requestTimeoutMs: options.requestTimeoutMs,
          allocate: buffers.allocate,
          discard: buffers.release,
          ...(options.secret !== undefined ? { secret: options.secret } : {}),
        });
      } catch (error) {
        failed(info.address);
        errors.push(`${info.address}: ${(error as Error).message}`);
        return;
      }
      const source: Source = {
        key: `${info.address}#${sources.length}`,
        info,
        client,
        bitfield: null,
        dropped: false,
        strikes: 0,
        lastHave: 0,
        inflight: new Map(),
      };
      sources.push(source);
      try {
        await refreshHave(source);
      } catch (error) {
        drop(source, error as Error);
        return;
      }
      for (let i = 0; i < options.maxInFlightPerPeer; i++) {
        const task = lane(source).catch((error) => {
          if (!signal.aborted) drop(source, error as Error);
        }).finally(() => lanes.delete(task));
        lanes.add(task);
      }
    }));
  };

  let stalled = false;
  try {
    await addSources(options.holders);
    let lastRefresh = performance.now();
    let lastProgress = performance.now();
    let lastDone = picker.done;
    let emptyRounds = 0;
    let idleRounds = 0;
    while (!picker.finished) {
      options.signal?.throwIfAborted();
      if (picker.done !== lastDone) {
        lastDone = picker.done;
        lastProgress = performance.now();
      } else if (performance.now() - lastProgress >= options.stallTimeoutMs) {
        stalled = true;
        break;
      }
      if (active() === 0) {
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
        await picker.changed(Math.min(500, options.refreshIntervalMs));
        if (performance.now() - lastRefresh < options.refreshIntervalMs) {
          continue;
        }
      }
      if (picker.finished) break;
      lastRefresh = performance.now();
      const infos = await options.findHolders().catch(() => []);
      const usable = infos.some((info) =>
        info.protocol === "shoal" && info.id === manifest.id &&
        !banned.has(info.address)
      );
      emptyRounds = active() === 0 && !usable ? emptyRounds + 1 : 0;
      await addSources(infos);
    }
  } finally {
    stop.abort();
    picker.wake();
    await Promise.allSettled([...lanes]);
    for (const source of sources) void source.client.close();
    await writeChain;
  }
  if (!picker.finished) {
    options.signal?.throwIfAborted();
    if (stalled) {
      throw new Deno.errors.TimedOut(
        `Cannot finish ${manifest.name}: no chunk verified for ${
          formatSeconds(options.stallTimeoutMs)
        } (${picker.total - picker.done} of ${picker.total} chunks missing; ${
          errors.slice(-3).join("; ") || "sources sent nothing"
        }); the verified chunks are kept, run the download again to resume`,
      );
    }
    if (lastVerificationError) throw lastVerificationError;
    throw new Deno.errors.NotFound(
      `Cannot finish ${manifest.name}: ${
        picker.total - picker.done
      } of ${picker.total} chunks missing and no source left (${
        errors.slice(-3).join("; ") || "no holders"
      })`,
    );
  }
  return { received, banned: [...banned] };
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}
