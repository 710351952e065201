/**
 * Downloading in detail: the single-file {@linkcode download}, a folder or
 * glob of files ({@linkcode downloadBatch}), the swarm
 * engine that fetches chunks from many sources at once, the download
 * strategy that decides which chunk to ask of which source (the seam for
 * chunk scheduling), and the partial file a download writes.
 *
 * @example Reading which chunks a source holds
 * ```ts
 * import { hasBit, packBitfield } from "@shoal/shoal/download";
 *
 * const have = packBitfield(new Uint8Array([1, 0, 1]));
 * if (!hasBit(have, 2) || hasBit(have, 1)) throw new Error("wrong bits");
 * ```
 *
 * @module
 */
export {
  type ActiveDownload,
  download,
  type DownloadOptions,
  type DownloadProgress,
  type DownloadResult,
  type SourceTally,
  UnverifiedSourceError,
} from "./transfer.ts";
export {
  type BatchFileResult,
  type BatchOptions,
  type BatchProgress,
  type BatchResult,
  DEFAULT_MAX_BATCH_FILES,
  downloadBatch,
  isBatchTarget,
  selectBatch,
  validateBatchTarget,
} from "./batch.ts";
export {
  type ChunkSink,
  ChunkVerificationError,
  runSwarm,
  type SwarmOptions,
} from "./swarm.ts";
export { ChunkBoard, hasBit, packBitfield, type Pick } from "./scheduler.ts";
export {
  type ChunkChooser,
  defaultStrategy,
  type DownloadStrategy,
  rarestFirst,
  type RarestFirstOptions,
} from "./strategy.ts";
export {
  checkFreeSpace,
  PartFile,
  partPaths,
  STATE_SUFFIX,
} from "./part_file.ts";
