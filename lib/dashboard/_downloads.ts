/**
 * Private: the downloads a dashboard started, each with its own abort signal,
 * live progress and a readable outcome, kept for display after they end.
 *
 * @module
 */
import { HttpError } from "./_http.ts";
import type {
  DashboardBatch,
  DashboardDownload,
  DashboardSwarm,
} from "./types.ts";
import { pageSwarm } from "./_swarm.ts";
import { isContentId } from "../content/manifest.ts";
import type { ListedFile } from "../protocol/messages.ts";
import type { Peer } from "../peer/node.ts";
import {
  type DownloadProgress,
  UnverifiedSourceError,
} from "../download/transfer.ts";
import {
  type BatchProgress,
  type BatchResult,
  isBatchTarget,
} from "../download/batch.ts";

/** Per-file outcomes a batch row keeps. */
const MAX_BATCH_RESULTS = 1000;

/**
 * An error as the dashboard says it: one line, in the page's terms (its
 * buttons, not command-line flags), never "Cannot download x: Cannot…",
 * with the action the page offers for it.
 */
export function dashboardError(
  error: unknown,
  name: string,
): { message: string; action: "resume" | "retry" | "replace" } {
  if (error instanceof Deno.errors.AlreadyExists) {
    return {
      message:
        `A different file named ${name} is already in the download folder: choose Replace to overwrite it, or move it away and choose Retry`,
      action: "replace",
    };
  }
  if (error instanceof UnverifiedSourceError) {
    return {
      message:
        `Cannot download ${name}: only seed-protocol peers have it, and their bytes cannot be verified (the dashboard takes verified files only)`,
      action: "retry",
    };
  }
  let line = (error instanceof Error ? error.message : String(error))
    .split("\n")[0]!;
  if (line.length > 300) line = line.slice(0, 300) + "…";
  if (!/^Cannot /.test(line)) line = `Cannot download ${name}: ${line}`;
  const kept = /verified (chunks are|part is) kept|run the download again/
    .test(line);
  return {
    message: line.replace(
      /,? ?(run the download again to resume|\(?run the download again to resume\)?)/,
      kept ? "; choose Resume to continue" : "",
    ).replace(/; \)/, ")"),
    action: kept ? "resume" : "retry",
  };
}

const batchFields = (p: BatchProgress) => ({
  size: p.size,
  bytes: p.bytes,
  rate: p.rate,
  eta: Number.isFinite(p.eta) ? p.eta : null,
  sources: p.sources,
});

interface Tracked {
  view: DashboardDownload;
  controller: AbortController;
  settled: Promise<void>;
  running: boolean;
  /** The swarm when it ended, once the peer may have forgotten it. */
  lastSwarm: DashboardSwarm | null;
}

/** Ended downloads that carry their swarm (the newest ones). */
const ENDED_WITH_SWARM = 8;

/** Waits for `promise`, at most `ms` milliseconds. */
async function settleWithin(promise: Promise<unknown>, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    promise,
    new Promise((resolve) => timer = setTimeout(resolve, ms)),
  ]);
  clearTimeout(timer);
}

const progressFields = (p: DownloadProgress) => ({
  name: p.name,
  id: p.id,
  size: p.size,
  bytes: p.bytes,
  chunksDone: p.chunksDone,
  chunks: p.chunks,
  rate: p.rate,
  eta: Number.isFinite(p.eta) ? p.eta : null,
  sources: p.sources,
});

/** The dashboard's downloads: started, cancelled and listed by key. */
export class DownloadBoard {
  readonly #peer: Peer;
  readonly #keepFinished: number;
  readonly #changed: (urgent: boolean) => void;
  readonly #downloads = new Map<string, Tracked>();
  readonly #names = new Map<string, string>(); // content id -> listed name
  #nextKey = 1;

  /**
   * @param peer The peer that downloads.
   * @param keepFinished Finished entries kept for display.
   * @param changed Called on every change (`urgent` for starts and ends).
   */
  constructor(
    peer: Peer,
    keepFinished: number,
    changed: (urgent: boolean) => void,
  ) {
    this.#peer = peer;
    this.#keepFinished = keepFinished;
    this.#changed = changed;
  }

  /** Learns listed names, to label a download by id before it starts. */
  remember(files: ListedFile[]): void {
    if (this.#names.size > 10_000) this.#names.clear();
    for (const f of files) if (f.id !== null) this.#names.set(f.id, f.name);
  }

  /** Every download: others the peer runs first, then ours, newest first. */
  list(): DashboardDownload[] {
    const tracked = [...this.#downloads.values()];
    const running = new Set(
      tracked.filter((d) => d.running).flatMap((d) => [
        d.view.id,
        d.view.name,
        ...(d.view.batch?.current ?? []),
      ]),
    );
    const others = this.#peer.status().downloads
      .filter((p) => !running.has(p.id) && !running.has(p.name))
      .map((p, i): DashboardDownload => ({
        key: `peer-${i}`,
        target: p.id ?? p.name,
        ...progressFields(p),
        state: "active",
        error: null,
        action: null,
        batch: null,
        startedAt: 0,
        finishedAt: null,
        cancellable: false,
        swarm: this.#swarm(p.id),
      }));
    let ended = 0;
    const ours = tracked.reverse().map((d): DashboardDownload => {
      const withSwarm = d.running || ended++ < ENDED_WITH_SWARM;
      return {
        ...d.view,
        ...(d.view.batch
          ? {
            batch: {
              ...d.view.batch,
              current: [...d.view.batch.current],
              results: [...d.view.batch.results],
            },
          }
          : {}),
        swarm: withSwarm ? this.#swarm(d.view.id) ?? d.lastSwarm : null,
      };
    });
    return [...others, ...ours];
  }

  /** The page's swarm of a download the peer runs or ran lately. */
  #swarm(id: string | null): DashboardSwarm | null {
    const swarm = id === null ? undefined : this.#peer.swarm(id);
    return swarm ? pageSwarm(swarm) : null;
  }

  /**
   * Starts downloading a validated name, content id, folder prefix or glob.
   * An ended row of the same target (a cancelled, failed or done one) is
   * replaced: Resume and Download again never leave a stale row beside the
   * new one.
   *
   * @param target What to download.
   * @param overwrite Replace a different file at the destination.
   * @param options `stallTimeoutMs`: give up after this long without a
   *   verified chunk.
   * @throws {HttpError} 409 if the same target is already running.
   */
  start(
    target: string,
    overwrite = false,
    options: { stallTimeoutMs?: number } = {},
  ): DashboardDownload {
    let key: string | undefined;
    for (const d of this.#downloads.values()) {
      const same = d.view.target === target || d.view.id === target ||
        (d.view.id !== null && this.#idOf(target) === d.view.id);
      if (!same) continue;
      if (d.running) {
        throw new HttpError(
          409,
          `Cannot start a download of ${target}: it is already running`,
        );
      }
      key ??= d.view.key;
      this.#downloads.delete(d.view.key);
    }
    key ??= String(this.#nextKey++);
    const controller = new AbortController();
    const id = isContentId(target) ? target : null;
    const batch = isBatchTarget(target);
    const view: DashboardDownload = {
      key,
      target,
      name: (id && this.#names.get(id)) ?? target,
      id,
      state: "starting",
      size: null,
      bytes: 0,
      chunksDone: 0,
      chunks: 0,
      rate: 0,
      eta: null,
      sources: 0,
      error: null,
      action: null,
      batch: batch
        ? { files: 0, filesDone: 0, failed: 0, current: [], results: [] }
        : null,
      startedAt: Date.now(),
      finishedAt: null,
      cancellable: true,
      swarm: null,
    };
    const onProgress = (p: DownloadProgress) => {
      if (view.state === "starting") view.state = "active";
      Object.assign(view, progressFields(p));
      this.#changed(false);
    };
    const settled = (batch
      ? this.#runBatch(
        view,
        view.batch!,
        controller.signal,
        overwrite,
        options,
      )
      : this.#peer.download(target, {
        ...options,
        signal: controller.signal,
        overwrite,
        onProgress,
      }).then((result) => {
        Object.assign(view, {
          state: "done",
          name: result.name,
          id: result.id,
          size: result.size,
          bytes: result.size,
          chunksDone: view.chunks || view.chunksDone,
          rate: result.elapsedMs > 0
            ? result.received / (result.elapsedMs / 1000)
            : 0,
          eta: 0,
          sources: 0,
        });
      })).catch((error) => {
        if (controller.signal.aborted) {
          view.state = "cancelled";
          view.action = "resume";
        } else {
          view.state = "failed";
          const { message, action } = dashboardError(error, view.name);
          view.error = message;
          view.action = action;
        }
        Object.assign(view, { rate: 0, eta: null, sources: 0 });
      }).finally(() => {
        view.finishedAt = Date.now();
        view.cancellable = false;
        tracked.running = false;
        tracked.lastSwarm = this.#swarm(view.id);
        this.#prune();
        this.#changed(true);
      });
    const tracked: Tracked = {
      view,
      controller,
      settled,
      running: true,
      lastSwarm: null,
    };
    this.#downloads.set(key, tracked);
    this.#changed(true);
    return { ...view };
  }

  /** The content id a listed name stands for, if it was listed once. */
  #idOf(target: string): string | undefined {
    for (const [id, name] of this.#names) if (name === target) return id;
    return undefined;
  }

  /** Runs a folder or glob download into `view` and its `batch`. */
  async #runBatch(
    view: DashboardDownload,
    batch: DashboardBatch,
    signal: AbortSignal,
    overwrite: boolean,
    options: { stallTimeoutMs?: number },
  ): Promise<void> {
    const result: BatchResult = await this.#peer.downloadBatch(view.target, {
      ...options,
      signal,
      overwrite,
      onPicked: (files) => {
        batch.files = new Set(files.map((f) => f.name)).size;
        this.#changed(true);
      },
      onBatchProgress: (p) => {
        if (view.state === "starting") view.state = "active";
        Object.assign(view, batchFields(p));
        Object.assign(batch, {
          files: p.files,
          filesDone: p.filesDone,
          failed: p.failed,
          current: p.current,
        });
        this.#changed(false);
      },
    });
    batch.results = result.files.slice(0, MAX_BATCH_RESULTS).map((f) => ({
      name: f.name,
      ok: f.ok,
      error: f.ok ? null : dashboardError(f.cause ?? f.error, f.name).message,
    }));
    Object.assign(batch, {
      files: result.files.length,
      filesDone: result.files.length,
      failed: result.failed,
      current: [],
    });
    const size = result.files.reduce((n, f) => n + (f.result?.size ?? 0), 0);
    Object.assign(view, {
      state: result.failed === 0 ? "done" : "failed",
      size,
      bytes: size,
      rate: result.elapsedMs > 0
        ? result.received / (result.elapsedMs / 1000)
        : 0,
      eta: 0,
      sources: 0,
    });
    if (result.failed > 0) {
      view.error = `${result.failed} of ${result.files.length} files failed`;
      view.action = "retry";
    }
  }

  /**
   * Cancels a running download (shown as cancelled at once, while the
   * transfer winds down), or removes an ended one from the list.
   *
   * @throws {HttpError} 404 if there is no download `key`.
   */
  async cancel(key: string): Promise<DashboardDownload> {
    const found = this.#downloads.get(key);
    if (!found) {
      throw new HttpError(
        404,
        `Cannot cancel download ${JSON.stringify(key)}: there is none`,
      );
    }
    if (found.running) {
      found.controller.abort();
      if (found.view.state !== "done" && found.view.state !== "failed") {
        Object.assign(found.view, {
          state: "cancelled",
          action: "resume",
          cancellable: false,
          rate: 0,
          eta: null,
          sources: 0,
        });
      }
      await settleWithin(found.settled, 2000);
    } else {
      this.#downloads.delete(key);
    }
    this.#changed(true);
    return { ...found.view };
  }

  /** Cancels every running download and waits (a bounded time) for them. */
  async close(): Promise<void> {
    const all = [...this.#downloads.values()];
    for (const d of all) d.controller.abort();
    await settleWithin(Promise.all(all.map((d) => d.settled)), 5000);
  }

  #prune() {
    const ended = [...this.#downloads.values()].filter((d) => !d.running);
    const excess = Math.max(0, ended.length - this.#keepFinished);
    for (const d of ended.slice(0, excess)) {
      this.#downloads.delete(d.view.key);
    }
  }
}
