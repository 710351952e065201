/**
 * Downloading in detail: the single-file {@linkcode download}, the swarm
 * engine that fetches chunks from many sources at once, and the chunk picker
 * that decides which chunk to ask of which source.
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
  UnverifiedSourceError,
} from "./transfer.ts";
export {
  ChunkVerificationError,
  runSwarm,
  type SwarmOptions,
} from "./swarm.ts";
export {
  ChunkPicker,
  hasBit,
  packBitfield,
  type Pick,
  type SourceView,
} from "./scheduler.ts";
