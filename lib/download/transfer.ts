/**
 * Chunked, verified downloads: fetch a manifest, request chunks by index from
 * every available source with several requests in flight, verify each chunk's
 * SHA-256 before writing it into a partial file named by the content id
 * (`<name>.<id prefix>.part`, locked while the download runs), and rename
 * into place only when every chunk verified. Restarting a download resumes
 * from the verified chunks already in the partial file.
 *
 * @module
 */
import { dirname } from "node:path";
import { RpcClient } from "../protocol/rpc.ts";
import { legacyDownload } from "../protocol/legacy.ts";
import {
  chunkCount,
  chunkLength,
  hashFile,
  isContentId,
  type Manifest,
  validateManifest,
} from "../content/manifest.ts";
import type { PeerInfo } from "../protocol/messages.ts";
import {
  PART_SUFFIX,
  resolveForWrite,
  validateName,
} from "../content/names.ts";
import type { TokenBucket } from "../net/rate_limit.ts";
import { packBitfield } from "./scheduler.ts";
import { runSwarm } from "./swarm.ts";
import { checkFreeSpace, PartFile, partPaths } from "./part_file.ts";
import type { DownloadStrategy } from "./strategy.ts";
import type { Transport } from "../net/transport.ts";
import { TrackerClient } from "../tracker/client.ts";
import { ProtocolError } from "../net/wire.ts";

export { partPaths, STATE_SUFFIX } from "./part_file.ts";

/** Largest file a download accepts unless told otherwise: 1 TiB. */
export const DEFAULT_MAX_FILE_SIZE = 2 ** 40;

/** How long a download waits for a verified chunk before it gives up. */
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;

/** Live progress of a download. */
export interface DownloadProgress {
  /** Content id (`null` for a seed-protocol whole-file download). */
  id: string | null;
  /** Name the file is saved under. */
  name: string;
  /** Total bytes. */
  size: number;
  /** Verified bytes on disk (resumed ones included). */
  bytes: number;
  /** Bytes received in this run. */
  received: number;
  /** Verified chunks. */
  chunksDone: number;
  /** Total chunks. */
  chunks: number;
  /** Receive rate over this run, bytes/s. */
  rate: number;
  /** Seconds left at the current rate (`Infinity` when unknown). */
  eta: number;
  /** Sources currently used. */
  sources: number;
}

/** What a finished download did. */
export interface DownloadResult {
  /** Content id (`null` for a seed-protocol whole-file download). */
  id: string | null;
  /** Name saved under. */
  name: string;
  /** Final path on disk. */
  path: string;
  /** Size in bytes. */
  size: number;
  /** Bytes received over the network in this run. */
  received: number;
  /** Chunks that were already verified on disk (resume). */
  resumedChunks: number;
  /**
   * `true` when every byte was checked against the content id; `false` for
   * a seed-protocol source, of which only the size was checked.
   */
  verified: boolean;
  /** `true` if the file was already complete and nothing was fetched. */
  alreadyComplete: boolean;
  /** Wall time, ms. */
  elapsedMs: number;
  /** The manifest (absent for a seed-protocol download). */
  manifest?: Manifest;
}

/** Options for {@linkcode download}. */
export interface DownloadOptions {
  /** Tracker `host:port` used to find holders. */
  tracker?: string;
  /** Extra holders to use, besides the tracker's. */
  sources?: PeerInfo[];
  /** Directory to save into. */
  outDir: string;
  /** Save under this relative name instead of the network name. */
  saveAs?: string;
  /** Replace an existing different file at the destination. @default {false} */
  overwrite?: boolean;
  /** Requests in flight per source. @default {4} */
  maxInFlightPerPeer?: number;
  /** Most sources used at once. @default {8} */
  maxPeers?: number;
  /** Bound on each request, ms. @default {15000} */
  requestTimeoutMs?: number;
  /** Bad chunks a source may send before it is dropped. @default {3} */
  maxStrikes?: number;
  /** How often to ask the tracker for new holders, ms. @default {3000} */
  refreshIntervalMs?: number;
  /**
   * Most chunk bytes requested but not yet written: the download's memory
   * bound.
   *
   * @default {33554432}
   */
  maxInFlightBytes?: number;
  /**
   * Which chunk to ask which source for next (see `strategy.ts`): rarest
   * first, in order while every source holds everything, and endgame.
   *
   * @default {defaultStrategy}
   */
  strategy?: DownloadStrategy;
  /**
   * How the tracker-found sources are dialled (the manifest request and
   * every chunk connection).
   *
   * @default {tcpTransport}
   */
  transport?: Transport;
  /** Shared cap on the download rate (see {@linkcode TokenBucket}). */
  limiter?: TokenBucket;
  /**
   * Flush the file to stable storage before renaming it into place, so a
   * power cut cannot leave an incomplete file under the final name. A
   * crash of the process never can, with or without this.
   *
   * @default {false}
   */
  fsync?: boolean;
  /**
   * Largest file accepted: a manifest claiming more is refused before
   * anything is created on disk.
   *
   * @default {1099511627776}
   */
  maxFileSize?: number;
  /**
   * Give up when no chunk verified for this long (ms): the sources are
   * unreachable, silent or lying. The partial file is kept for a resume.
   *
   * @default {30000}
   */
  stallTimeoutMs?: number;
  /**
   * Accept seed-protocol sources when no Shoal peer has the file. Their
   * bytes cannot be verified (only the size is checked), so this is never
   * done unless asked for.
   *
   * @default {false}
   */
  allowUnverified?: boolean;
  /**
   * Shared secret of a private swarm: the tracker and every source are
   * authenticated with it (mutually); seed-protocol sources, which cannot
   * authenticate, are not used.
   *
   * @default {undefined}
   */
  secret?: string;
  /** Called with progress after each verified chunk. */
  onProgress?: (progress: DownloadProgress) => void;
  /** Called once the manifest is known and the `.part` file is open. */
  onStart?: (download: ActiveDownload) => void;
  /** Cancels the download; the `.part` file is kept for a resume. */
  signal?: AbortSignal;
}

/** A download in progress, as seen by the peer that serves its chunks. */
export interface ActiveDownload {
  /** The verified manifest. */
  readonly manifest: Manifest;
  /** Name it is being saved under. */
  readonly name: string;
  /** Path of the `.part` file. */
  readonly partPath: string;
  /** Whether chunk `index` is verified and written. */
  has(index: number): boolean;
  /** The verified chunks as a bitfield (most significant bit first). */
  bitfield(): Uint8Array;
}

/**
 * Downloads a file by name or content id.
 *
 * @param target A content id (64 hex digits) or a file name.
 * @param options Where to save, where to look, limits.
 * @returns What was done.
 * @throws {ChunkVerificationError} If no honest source is left after bad
 *   chunks.
 * @throws {Deno.errors.AlreadyExists} If a different file is at the
 *   destination and `overwrite` is off.
 * @throws {Deno.errors.NotFound} If nobody holds the file.
 *
 * @example Downloading from a tracker's network
 * ```ts ignore
 * import { download } from "./transfer.ts";
 * const result = await download("docs/a.txt", {
 *   tracker: "127.0.0.1:9000",
 *   outDir: "./downloads",
 * });
 * console.log(result.path, result.size);
 * ```
 */
export async function download(
  target: string,
  options: DownloadOptions,
): Promise<DownloadResult> {
  const started = performance.now();
  // Before any network traffic: a download that cannot be saved fails now.
  await checkWritable(options.outDir);
  const client = options.tracker
    ? new TrackerClient(
      options.tracker,
      options.secret !== undefined ? { secret: options.secret } : {},
    )
    : undefined;
  const ask = async (
    query: { id: string } | { name: string },
  ): Promise<PeerInfo[]> => {
    const found = (options.sources ?? []).filter((s) =>
      "name" in query || s.id === null || s.id === query.id
    );
    if (client) found.push(...await client.getPeers(query));
    return found;
  };
  let id: string | undefined;
  let requestedName: string | undefined;
  if (isContentId(target)) id = target;
  else requestedName = validateName(target);

  if (id === undefined) {
    // By name: the verified (Shoal) holders must agree on one content id.
    // Seed-protocol holders are never used silently: their bytes cannot be
    // verified, so a flood of them must not win over one honest holder.
    const holders = await ask({ name: requestedName! });
    const ids = new Set<string>();
    for (const holder of holders) {
      if (holder.protocol === "shoal" && holder.id !== null) ids.add(holder.id);
    }
    if (ids.size > 1) {
      throw new RangeError(
        `Cannot download ${requestedName}: ${ids.size} different files have that name (ids ${
          [...ids].map((i) => i.slice(0, 12) + "…").join(", ")
        }); download by content id instead`,
      );
    }
    id = [...ids][0];
    if (id === undefined) {
      const legacy = holders.filter((h) => h.protocol === "legacy");
      if (legacy.length === 0) {
        throw new Deno.errors.NotFound(
          `Cannot download ${target}: no peer on the network has it`,
        );
      }
      if (options.secret !== undefined) {
        throw new Deno.errors.NotFound(
          `Cannot download ${target}: only seed-protocol peers have it, and a private swarm does not use them`,
        );
      }
      if (!options.allowUnverified) {
        throw new UnverifiedSourceError(
          `Cannot download ${target}: only seed-protocol peers have it, and their bytes cannot be verified; allow unverified sources (--unverified) to take it anyway`,
        );
      }
      return await downloadLegacy(requestedName!, legacy, options, started);
    }
  }
  const contentId = id;
  const findHolders = () => ask({ id: contentId });
  const holders = (await findHolders()).filter((h) =>
    h.protocol === "shoal" && h.id === contentId
  );
  if (holders.length === 0) {
    throw new Deno.errors.NotFound(
      `Cannot download ${target}: no live peer holds content ${
        contentId.slice(0, 12)
      }…`,
    );
  }
  const manifest = await fetchManifest(holders, contentId, options);
  const name = options.saveAs !== undefined
    ? validateName(options.saveAs)
    : requestedName ?? manifest.name;
  return await fetchChunks(
    manifest,
    name,
    holders,
    options,
    findHolders,
    started,
  );
}

/**
 * A file only seed-protocol peers hold, whose bytes therefore cannot be
 * verified, asked for without {@linkcode DownloadOptions.allowUnverified}.
 *
 * @example Telling an unverifiable file apart
 * ```ts
 * import { UnverifiedSourceError } from "./transfer.ts";
 * const error = new UnverifiedSourceError("Cannot download a.txt: …");
 * if (!(error instanceof Error)) throw new Error("not an Error");
 * ```
 */
export class UnverifiedSourceError extends Error {
  /**
   * Creates the error.
   *
   * @param message What could not be downloaded and why.
   */
  constructor(message: string) {
    super(message);
    this.name = "UnverifiedSourceError";
  }
}

/** Holders asked for the manifest at once. */
const MANIFEST_CONCURRENCY = 4;

/**
 * Asks holders for the manifest of `id`, a few at a time in random order
 * (dead or silent addresses listed first cannot hold the download up), and
 * returns the first one that matches the id. Bounded by the stall timeout.
 */
async function fetchManifest(
  holders: PeerInfo[],
  id: string,
  options: DownloadOptions,
): Promise<Manifest> {
  const errors: string[] = [];
  const queue = shuffle([...holders]);
  const found = new AbortController();
  const deadline = AbortSignal.timeout(
    options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
  );
  const signal = AbortSignal.any([
    found.signal,
    deadline,
    ...(options.signal ? [options.signal] : []),
  ]);
  let manifest: Manifest | undefined;
  let fatal: unknown;
  const worker = async () => {
    for (let holder = queue.shift(); holder; holder = queue.shift()) {
      if (signal.aborted) return;
      try {
        const candidate = await askManifest(holder, id, options, signal);
        manifest ??= candidate;
        found.abort();
        return;
      } catch (error) {
        if (error instanceof RangeError) {
          fatal ??= error;
          found.abort();
          return;
        }
        if (!signal.aborted) {
          errors.push(`${holder.address}: ${(error as Error).message}`);
        }
      }
    }
  };
  await Promise.all(
    Array.from({ length: MANIFEST_CONCURRENCY }, () => worker()),
  );
  if (fatal) throw fatal;
  if (manifest) return manifest;
  options.signal?.throwIfAborted();
  if (deadline.aborted) errors.push("no holder answered in time");
  throw new Deno.errors.NotFound(
    `Cannot fetch the manifest of ${
      id.slice(0, 12)
    }… from any of ${holders.length} holders (${errors.slice(-3).join("; ")})`,
  );
}

async function askManifest(
  holder: PeerInfo,
  id: string,
  options: DownloadOptions,
  signal: AbortSignal,
): Promise<Manifest> {
  await using rpc = await RpcClient.connect(holder.address, {
    requestTimeoutMs: options.requestTimeoutMs ?? 15_000,
    ...(options.secret !== undefined ? { secret: options.secret } : {}),
    ...(options.transport ? { transport: options.transport } : {}),
  });
  const reply = await rpc.request({ type: "manifest", id }, undefined, signal);
  if (reply instanceof Uint8Array || reply.type !== "manifest") {
    throw new ProtocolError("Cannot accept reply to manifest: wrong type");
  }
  const manifest = validateManifest(reply.manifest, id);
  const limit = options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE;
  if (manifest.size > limit) {
    throw new RangeError(
      `Cannot download ${manifest.name}: its ${manifest.size} bytes exceed the ${limit}-byte limit`,
    );
  }
  return manifest;
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/**
 * Fails with a clear error if nothing can be created in `dir` (made if
 * missing): a read-only or foreign directory, or one outside the process's
 * `--allow-write`.
 */
async function checkWritable(dir: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.remove(
      await Deno.makeTempFile({ dir, prefix: ".shoal-write-check-" }),
    );
  } catch (error) {
    throw new Deno.errors.PermissionDenied(
      `Cannot download into ${dir}: the directory is not writable (${
        (error as Error).message.split("\n")[0]
      })`,
      { cause: error },
    );
  }
}

/**
 * Prepares the destination: refuses traversal and silent overwrites. An
 * existing file with the same content counts as complete.
 */
async function prepareDestination(
  outDir: string,
  name: string,
  overwrite: boolean,
  manifest?: Manifest,
): Promise<{ path: string; complete: boolean }> {
  try {
    await Deno.mkdir(outDir, { recursive: true });
  } catch (error) {
    const message = `Cannot create download directory ${outDir}: ${
      (error as Error).message
    }`;
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new Deno.errors.PermissionDenied(message);
    }
    throw new Error(message, { cause: error });
  }
  const path = await resolveForWrite(outDir, name);
  await Deno.mkdir(dirname(path), { recursive: true });
  const existing = await Deno.lstat(path).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  });
  if (existing) {
    if (existing.isFile && manifest && existing.size === manifest.size) {
      const local = await hashFile(path, name, {
        chunkSize: manifest.chunkSize,
      });
      if (local.id === manifest.id) return { path, complete: true };
    }
    if (!overwrite) {
      throw new Deno.errors.AlreadyExists(
        `Cannot save ${name}: a different file already exists at ${path} (use --overwrite to replace it)`,
      );
    }
  }
  return { path, complete: false };
}

async function fetchChunks(
  manifest: Manifest,
  name: string,
  holders: PeerInfo[],
  options: DownloadOptions,
  findHolders: () => Promise<PeerInfo[]>,
  started: number,
): Promise<DownloadResult> {
  const { path, complete } = await prepareDestination(
    options.outDir,
    name,
    options.overwrite ?? false,
    manifest,
  );
  if (complete) {
    return {
      id: manifest.id,
      name,
      path,
      size: manifest.size,
      received: 0,
      resumedChunks: chunkCount(manifest.size, manifest.chunkSize),
      verified: true,
      alreadyComplete: true,
      elapsedMs: performance.now() - started,
      manifest,
    };
  }

  const { partPath, statePath } = partPaths(path, manifest.id);
  const total = chunkCount(manifest.size, manifest.chunkSize);
  const have = new Uint8Array(total);
  await checkFreeSpace(partPath, name, manifest.size);
  await using part = await PartFile.open(partPath, name);
  // A failed write (disk full, I/O error) is not a fault of the sources: it
  // ends the download at once with a clear error, and the verified chunks
  // stay in the .part file (with its state) for a resume.
  part.describeKept(() =>
    `${have.reduce((sum, bit) => sum + bit, 0)} verified chunks are kept`
  );
  const resumedChunks = await part.resume(statePath, manifest, have);
  await part.prepare(statePath, manifest, name);
  options.onStart?.({
    manifest,
    name,
    partPath,
    has: (index) => have[index] === 1,
    bitfield: () => packBitfield(have),
  });
  const progress = new ProgressReporter(manifest, name, have, options);
  progress.report(holders.length);
  await runSwarm({
    manifest,
    have,
    file: part,
    holders,
    findHolders,
    ...(options.strategy ? { strategy: options.strategy } : {}),
    ...(options.transport ? { transport: options.transport } : {}),
    maxInFlightPerPeer: options.maxInFlightPerPeer ?? 4,
    maxPeers: options.maxPeers ?? 8,
    requestTimeoutMs: options.requestTimeoutMs ?? 15_000,
    maxStrikes: options.maxStrikes ?? 3,
    refreshIntervalMs: options.refreshIntervalMs ?? 3000,
    maxInFlightBytes: options.maxInFlightBytes ?? 32 * 1024 * 1024,
    stallTimeoutMs: options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
    ...(options.limiter ? { limiter: options.limiter } : {}),
    ...(options.secret !== undefined ? { secret: options.secret } : {}),
    signal: options.signal
      ? AbortSignal.any([options.signal, part.failed])
      : part.failed,
    onChunk: (_index, length, sources) => progress.chunk(length, sources),
  });
  // Flushing to stable storage before the rename costs a full disk
  // write of the file (about 1.5 s/GiB here), so it is opt-in.
  if (options.fsync) await part.sync();
  // Every chunk verified: move into place while the lock is still held,
  // so no other download can touch the file between the last write and
  // the rename (and none writes to it after: it is ours alone).
  await part.moveTo(path, name, options.overwrite ?? false);
  await Deno.remove(statePath).catch(() => {});
  const received = progress.received;
  return {
    id: manifest.id,
    name,
    path,
    size: manifest.size,
    received,
    resumedChunks,
    verified: true,
    alreadyComplete: false,
    elapsedMs: performance.now() - started,
    manifest,
  };
}

/** Counts what a download verified and reports progress. */
class ProgressReporter {
  received = 0;
  #done = 0;
  #bytesDone = 0;
  readonly #runStart = performance.now();

  constructor(
    readonly manifest: Manifest,
    readonly name: string,
    have: Uint8Array,
    readonly options: DownloadOptions,
  ) {
    for (let i = 0; i < have.length; i++) {
      if (!have[i]) continue;
      this.#done++;
      this.#bytesDone += chunkLength(manifest, i);
    }
  }

  /** Counts one verified chunk of `length` bytes, then reports. */
  chunk(length: number, sources: number): void {
    this.#done++;
    this.#bytesDone += length;
    this.received += length;
    this.report(sources);
  }

  /** Reports progress with `sources` in use. */
  report(sources: number): void {
    const { manifest } = this;
    const seconds = (performance.now() - this.#runStart) / 1000;
    const rate = seconds > 0 ? this.received / seconds : 0;
    this.options.onProgress?.({
      id: manifest.id,
      name: this.name,
      size: manifest.size,
      bytes: this.#bytesDone,
      received: this.received,
      chunksDone: this.#done,
      chunks: chunkCount(manifest.size, manifest.chunkSize),
      rate,
      eta: rate > 0 ? (manifest.size - this.#bytesDone) / rate : Infinity,
      sources,
    });
  }
}

async function downloadLegacy(
  name: string,
  holders: PeerInfo[],
  options: DownloadOptions,
  started: number,
): Promise<DownloadResult> {
  const saveAs = options.saveAs !== undefined
    ? validateName(options.saveAs)
    : name;
  const { path } = await prepareDestination(
    options.outDir,
    saveAs,
    options.overwrite ?? false,
  );
  // No content id to name it by: the lock alone keeps it ours.
  const partPath = `${path}.seed${PART_SUFFIX}`;
  const part = await PartFile.open(partPath, saveAs);
  const file = part.file;
  const errors: string[] = [];
  const stallMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  try {
    for (const holder of holders) {
      try {
        await file.truncate(0);
        await file.seek(0, Deno.SeekMode.Start);
        const size = await legacyDownload(holder.address, holder.name, file, {
          timeoutMs: Math.min(options.requestTimeoutMs ?? 15_000, stallMs),
          maxSize: options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE,
          ...(options.signal ? { signal: options.signal } : {}),
          onProgress: (bytes, total) =>
            options.onProgress?.({
              id: null,
              name: saveAs,
              size: total,
              bytes,
              received: bytes,
              chunksDone: 0,
              chunks: 1,
              rate: bytes / ((performance.now() - started) / 1000),
              eta: Infinity,
              sources: 1,
            }),
        });
        if (options.fsync) await file.syncData();
        const info = await file.stat();
        if (info.size !== size) {
          throw new ProtocolError(
            `Cannot accept ${name}: wrote ${info.size} bytes, expected ${size}`,
          );
        }
        await part.moveTo(path, saveAs, options.overwrite ?? false);
        return {
          id: null,
          name: saveAs,
          path,
          size,
          received: size,
          resumedChunks: 0,
          verified: false,
          alreadyComplete: false,
          elapsedMs: performance.now() - started,
        };
      } catch (error) {
        if (options.signal?.aborted) throw error;
        if (error instanceof Deno.errors.AlreadyExists) throw error;
        errors.push(`${holder.address}: ${(error as Error).message}`);
      }
    }
    await Deno.remove(partPath).catch(() => {});
  } finally {
    part.close();
  }
  throw new Deno.errors.NotFound(
    `Cannot download ${name} from any seed-protocol peer (${
      errors.slice(-3).join("; ")
    })`,
  );
}
