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
import {
  chunkCount,
  chunkLength,
  isContentId,
  type Manifest,
} from "../content/manifest.ts";
import type { PeerInfo } from "../protocol/messages.ts";
import { validateName } from "../content/names.ts";
import { packBitfield } from "./scheduler.ts";
import { runSwarm } from "./swarm.ts";
import { checkFreeSpace, PartFile, partPaths } from "./part_file.ts";
import { TrackerClient } from "../tracker/client.ts";
import { checkWritable, prepareDestination } from "./_destination.ts";
import { fetchManifest } from "./_manifest_fetch.ts";
import { downloadLegacy } from "./_legacy_download.ts";
import { MIN_ID_PREFIX, resolveTarget, shownIds } from "./_target.ts";
import {
  DEFAULT_STALL_TIMEOUT_MS,
  type DownloadOptions,
  type DownloadResult,
  type SourceTally,
} from "./options.ts";

export {
  type ActiveDownload,
  DEFAULT_MAX_FILE_SIZE,
  DEFAULT_STALL_TIMEOUT_MS,
  type DownloadOptions,
  type DownloadProgress,
  type DownloadResult,
  type SourceTally,
} from "./options.ts";
export { partPaths, STATE_SUFFIX } from "./part_file.ts";

/**
 * Downloads a file by name or content id.
 *
 * @param target A content id (64 hex digits), a unique start of one (8 or
 *   more hex digits), or a file name.
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
 * import { download } from "@shoal/shoal";
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
    ? new TrackerClient(options.tracker, {
      ...(options.secret !== undefined ? { secret: options.secret } : {}),
      ...(options.transport ? { transport: options.transport } : {}),
      ...(options.identity ? { identity: options.identity } : {}),
      ...(options.encryption === false ? { encryption: false } : {}),
    })
    : undefined;
  const ask = async (
    query: { id: string } | { name: string },
  ): Promise<PeerInfo[]> => {
    const found = (options.sources ?? []).filter((s) =>
      "name" in query || s.id === null || s.id === query.id
    );
    if (client) found.push(...await client.getPeers(query));
    // The caller's own peer may be listed (its partial download is
    // announced): it is never a source of its own download.
    const own = options.isOwnAddress;
    return own ? found.filter((holder) => !own(holder.address)) : found;
  };
  let id: string | undefined;
  let requestedName: string | undefined;
  // A unique id prefix (8+ hex digits) stands for its id.
  const resolved = client
    ? await resolveTarget(target, (query) => client.list(query))
    : isContentId(target)
    ? { id: target }
    : { name: target };
  if ("id" in resolved) id = resolved.id;
  else requestedName = validateName(resolved.name);

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
          shownIds([...ids].sort())
        }); download one by its id (its first ${MIN_ID_PREFIX} or more characters)`,
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
          `Cannot download ${target}: ${
            client?.protocol === "seed"
              ? `the tracker ${client.address} speaks only the seed protocol, so the bytes it points to`
              : "only seed-protocol peers have it, and their bytes"
          } cannot be verified; allow unverified sources (--unverified) to take it anyway`,
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
      }…${
        client?.protocol === "seed"
          ? ` (the tracker ${client.address} speaks only the seed protocol, which knows names, not content ids: download by name)`
          : ""
      }`,
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
 * import { UnverifiedSourceError } from "@shoal/shoal";
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
      elapsedMs: Math.round(performance.now() - started),
      manifest,
      sources: [],
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
  const { sources } = await runSwarm({
    manifest,
    have,
    file: part,
    holders,
    findHolders,
    ...(options.strategy ? { strategy: options.strategy } : {}),
    ...(options.transport ? { transport: options.transport } : {}),
    maxInFlightPerPeer: options.maxInFlightPerPeer ?? 4,
    maxPeers: options.maxPeers ?? 16,
    requestTimeoutMs: options.requestTimeoutMs ?? 15_000,
    maxStrikes: options.maxStrikes ?? 3,
    refreshIntervalMs: options.refreshIntervalMs ?? 3000,
    maxInFlightBytes: options.maxInFlightBytes ?? 32 * 1024 * 1024,
    stallTimeoutMs: options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
    ...(options.limiter ? { limiter: options.limiter } : {}),
    ...(options.secret !== undefined ? { secret: options.secret } : {}),
    ...(options.identity ? { identity: options.identity } : {}),
    ...(options.encryption === false ? { encryption: false } : {}),
    ...(options.servingPort !== undefined
      ? { servingPort: options.servingPort }
      : {}),
    signal: options.signal
      ? AbortSignal.any([options.signal, part.failed])
      : part.failed,
    onChunk: (index, length, active, source) => {
      options.onVerified?.(index, length, source);
      progress.chunk(index, length, active, source);
    },
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
    elapsedMs: Math.round(performance.now() - started),
    manifest,
    sources,
  };
}

/** Counts what a download verified and reports progress. */
class ProgressReporter {
  received = 0;
  #done = 0;
  #bytesDone = 0;
  readonly #perSource = new Map<string, SourceTally>();
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

  /** Counts chunk `index` of `length` bytes from `source`, then reports. */
  chunk(index: number, length: number, active: number, source: string): void {
    this.#done++;
    this.#bytesDone += length;
    this.received += length;
    const tally = this.#perSource.get(source) ??
      { address: source, bytes: 0, chunks: 0 };
    tally.bytes += length;
    tally.chunks++;
    this.#perSource.set(source, tally);
    this.report(active, { index, source });
  }

  /** Reports progress with `sources` in use, after chunk `last`. */
  report(sources: number, last?: { index: number; source: string }): void {
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
      ...(last ? { last } : {}),
      perSource: [...this.#perSource.values()].map((t) => ({ ...t }))
        .sort((a, b) => b.bytes - a.bytes),
    });
  }
}
