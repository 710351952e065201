/**
 * The options, progress and result types of a download, and their
 * defaults: what a caller of {@linkcode download} passes in and gets back.
 *
 * @module
 */
import type { Manifest } from "../content/manifest.ts";
import type { PeerInfo } from "../protocol/messages.ts";
import type { TokenBucket } from "../net/rate_limit.ts";
import type { Transport } from "../net/transport.ts";
import type { Identity } from "../net/identity.ts";
import type { DownloadStrategy } from "./strategy.ts";

/** Largest file a download accepts unless told otherwise: 1 TiB. */
export const DEFAULT_MAX_FILE_SIZE = 2 ** 40;

/** How long a download waits for a verified chunk before it gives up. */
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;

/** What one source sent a download. */
export interface SourceTally {
  /** The source's address (`host:port`). */
  address: string;
  /** Verified bytes it sent. */
  bytes: number;
  /** Verified chunks it sent. */
  chunks: number;
}

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
  /** The chunk just verified and the address of the source that sent it. */
  last?: { index: number; source: string };
  /** What each source sent so far in this run, most bytes first. */
  perSource?: SourceTally[];
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
  /** Wall time, whole milliseconds. */
  elapsedMs: number;
  /** The manifest (absent for a seed-protocol download). */
  manifest?: Manifest;
  /** What came from whom in this run, most bytes first. */
  sources: SourceTally[];
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
  /** Most sources used at once. @default {16} */
  maxPeers?: number;
  /** Bound on each request, ms. @default {15000} */
  requestTimeoutMs?: number;
  /** Bad chunks a source may send before it is dropped. @default {3} */
  maxStrikes?: number;
  /**
   * How often to ask the tracker for new holders, ms; every second while
   * the download has fewer than `maxPeers` sources (peers of a flash crowd
   * find each other at once).
   *
   * @default {3000}
   */
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
   * first among the connected sources, random among equals, and endgame.
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
  /**
   * The key pair proved to the tracker and to each source.
   *
   * @default {ephemeralIdentity()}
   */
  identity?: Identity;
  /**
   * Encrypt every connection (Noise); each source must prove the key the
   * tracker listed for it. `false` speaks plaintext (benchmarks, trusted
   * networks).
   *
   * @default {true}
   */
  encryption?: boolean;
  /** Called with progress after each verified chunk. */
  onProgress?: (progress: DownloadProgress) => void;
  /** Called once the manifest is known and the `.part` file is open. */
  onStart?: (download: ActiveDownload) => void;
  /**
   * Called once a chunk is verified and written, with its index, its length
   * and the address (`host:port`) of the source that sent it.
   */
  onVerified?: (index: number, length: number, source: string) => void;
  /** Cancels the download; the `.part` file is kept for a resume. */
  signal?: AbortSignal;
  /**
   * The port the caller's own peer serves on, when the download runs inside
   * a peer: each source is told it (`hello`), so a source that downloads
   * from that peer can reciprocate.
   *
   * @default {undefined}
   */
  servingPort?: number;
  /**
   * Whether a holder's address is the caller's own peer (as the tracker
   * gives it out), which is never used as a source: its chunks are the ones
   * this download writes.
   *
   * @default {undefined}
   */
  isOwnAddress?: (address: string) => boolean;
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
