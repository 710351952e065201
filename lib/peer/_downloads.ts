/**
 * Private download bookkeeping of a peer: the downloads in progress (whose
 * verified chunks are served and announced: partial seeding, with a change
 * feed each for long-poll `have`), their progress, the bytes received lately
 * per source, each download's swarm (see `_swarm.ts`), and sharing a finished file at once with its verified manifest.
 *
 * @module
 */
import { relative, sep } from "node:path";
import { isInside } from "../content/names.ts";
import type { FileAnnouncement } from "../protocol/messages.ts";
import type { ShareIndex } from "../share/share.ts";
import {
  type ActiveDownload,
  download,
  type DownloadOptions,
  type DownloadProgress,
  type DownloadResult,
} from "../download/transfer.ts";
import { ChunkNews } from "./_chunk_news.ts";
import { keyOfAddress, RecentBytes } from "./_recent_bytes.ts";
import { SwarmBook } from "./_swarm.ts";

/** The peer-wide settings every download gets. */
export interface DownloadDefaults {
  /** Tracker `host:port`. */
  tracker: string;
  /** Where downloads go unless told otherwise. */
  outDir: string;
  /** Options added to every download (secret, limiter, transport…). */
  options: Partial<DownloadOptions>;
  /** Aborted when the peer stops. */
  signal: AbortSignal;
  /** Told when what the peer announces changed (a download began or ended). */
  onChange: () => void;
  /** Told of each download's progress. */
  onProgress: (progress: DownloadProgress) => void;
  /** Runs a download. @default {download} */
  run?: typeof download;
}

/** Downloads in progress and their progress, keyed by content id and target. */
export class PeerDownloads {
  readonly #active = new Map<string, ActiveDownload>();
  readonly #news = new Map<string, ChunkNews>();
  /** Versions of a feed start above every earlier feed's. */
  #newsBase = 0;
  /** Bytes received lately per source (keyed by `addressKey`). */
  readonly received: RecentBytes = new RecentBytes();
  /** Per download, where each chunk came from; per file, whom it went to. */
  readonly swarms: SwarmBook = new SwarmBook();
  readonly #progress = new Map<string, DownloadProgress>();
  readonly #shares: ShareIndex;
  readonly #defaults: DownloadDefaults;
  /** Changes whenever a download starts or ends. */
  version = 0;

  constructor(shares: ShareIndex, defaults: DownloadDefaults) {
    this.#shares = shares;
    this.#defaults = defaults;
  }

  /** A download in progress by content id. */
  partial = (id: string): ActiveDownload | undefined => this.#active.get(id);

  /** The change feed of a download in progress by content id. */
  news = (id: string): ChunkNews | undefined => this.#news.get(id);

  /** Progress of every download in progress. */
  progress(): DownloadProgress[] {
    return [...this.#progress.values()];
  }

  /** The shared files plus the downloads in progress not shared yet. */
  announcements(): FileAnnouncement[] {
    const list = this.#shares.announcements();
    for (const d of this.#active.values()) {
      if (!this.#shares.byId(d.manifest.id)) {
        list.push({ name: d.name, id: d.manifest.id, size: d.manifest.size });
      }
    }
    return list;
  }

  /**
   * Downloads a file, serving its verified chunks meanwhile, and shares it
   * when it lands inside the shared directory.
   *
   * @param target Name or content id.
   * @param options Per-download options.
   * @returns What was done.
   */
  async download(
    target: string,
    options: Partial<DownloadOptions> = {},
  ): Promise<DownloadResult> {
    const d = this.#defaults;
    let activeId: string | undefined;
    let news: ChunkNews | undefined;
    try {
      const result = await (d.run ?? download)(target, {
        tracker: d.tracker,
        ...d.options,
        ...options,
        outDir: options.outDir ?? d.outDir,
        signal: options.signal
          ? AbortSignal.any([options.signal, d.signal])
          : d.signal,
        onStart: (active) => {
          activeId = active.manifest.id;
          news = new ChunkNews(this.#newsBase);
          this.#news.get(activeId)?.end();
          this.#news.set(activeId, news);
          this.#active.set(active.manifest.id, active);
          this.swarms.start(
            activeId,
            active.manifest.hashes.length,
            (i) => active.has(i),
          );
          this.version++;
          d.onChange();
          options.onStart?.(active);
        },
        onVerified: (index, length, source) => {
          news?.verified(index);
          this.received.add(keyOfAddress(source), length);
          if (activeId !== undefined) {
            this.swarms.verified(activeId, index, length, source);
          }
          options.onVerified?.(index, length, source);
        },
        onProgress: (p) => {
          this.#progress.set(target, p);
          d.onProgress(p);
          options.onProgress?.(p);
        },
      });
      if (await this.#share(result)) d.onChange();
      return result;
    } finally {
      this.#progress.delete(target);
      if (activeId !== undefined) {
        this.swarms.end(activeId);
        this.#active.delete(activeId);
        this.version++;
      }
      if (news) {
        this.#newsBase = Math.max(this.#newsBase, news.version + 1);
        if (this.#news.get(activeId!) === news) this.#news.delete(activeId!);
        news.end();
      }
    }
  }

  /**
   * Shares a finished file at once with the manifest already verified: no
   * rehash, no rescan. Returns whether it was inside the shared directory.
   */
  async #share(result: DownloadResult): Promise<boolean> {
    const shares = this.#shares;
    if (!result.manifest || !isInside(shares.root, result.path)) return false;
    const name = relative(shares.root, result.path).split(sep).join("/");
    const info = await Deno.stat(result.path);
    if (
      shares.isRelevant(result.path) &&
      shares.byName(name)?.id !== result.manifest.id
    ) {
      shares.add({
        ...result.manifest,
        name,
        path: result.path,
        mtime: info.mtime?.getTime() ?? 0,
      });
    }
    return true;
  }
}
