/**
 * Downloading many files at once: a folder prefix (`docs/`) or a glob
 * (`*.iso`) picks files from the network's list, and each is downloaded and
 * verified on its own, with one overall progress and a per-file outcome.
 *
 * @module
 */
import { MAX_NAME_BYTES, validateName } from "../content/names.ts";
import { ProtocolError } from "../errors.ts";
import type { ListedFile } from "../protocol/messages.ts";
import { globMatch } from "../tracker/_name_index.ts";
import { TrackerClient } from "../tracker/client.ts";
import {
  download,
  type DownloadOptions,
  type DownloadProgress,
  type DownloadResult,
} from "./transfer.ts";

/** Most files one batch downloads unless told otherwise. */
export const DEFAULT_MAX_BATCH_FILES = 1000;

/**
 * Whether `target` names many files: a folder prefix (it ends in `/`) or a
 * glob (it holds `*` or `?`).
 *
 * @param target What the user typed.
 * @returns `true` for `docs/` or `*.iso`, `false` for `docs/a.txt`.
 *
 * @example Telling a batch from a single file
 * ```ts
 * import { isBatchTarget } from "@shoal/shoal/download";
 * if (!isBatchTarget("docs/") || !isBatchTarget("*.iso")) throw new Error();
 * if (isBatchTarget("docs/a.txt")) throw new Error("one file");
 * ```
 */
export function isBatchTarget(target: string): boolean {
  return target.endsWith("/") || /[*?]/.test(target);
}

/**
 * Checks a folder prefix or glob: a folder must be a safe relative name
 * followed by `/`; a glob must be a safe relative name once its wildcards
 * are read as letters.
 *
 * @param target The folder prefix or glob.
 * @returns The target, unchanged.
 * @throws {ProtocolError} If it is not a string, too long, absolute, or
 *   holds a `..` segment, a backslash or a control character.
 *
 * @example Refusing a way out of the download directory
 * ```ts
 * import { validateBatchTarget } from "@shoal/shoal/download";
 * validateBatchTarget("docs/");
 * let refused = false;
 * try {
 *   validateBatchTarget("../*");
 * } catch {
 *   refused = true;
 * }
 * if (!refused) throw new Error("accepted ../*");
 * ```
 */
export function validateBatchTarget(target: unknown): string {
  if (typeof target !== "string") {
    throw new ProtocolError(
      `Cannot accept pattern: expected a string, got ${typeof target}`,
    );
  }
  if (target.length > MAX_NAME_BYTES) {
    throw new ProtocolError(
      `Cannot accept pattern: it is longer than ${MAX_NAME_BYTES} characters`,
    );
  }
  const shown = JSON.stringify(target.slice(0, 80));
  const stem = target.endsWith("/") ? target.slice(0, -1) : target;
  try {
    // Wildcards read as letters: what is left must be a safe relative name.
    validateName(stem.replaceAll(/[*?]/g, "x"));
  } catch (error) {
    throw new ProtocolError(
      `Cannot accept pattern ${shown}: ${
        (error as Error).message.replace(/^Cannot accept name "[^"]*": /, "")
      }`,
    );
  }
  return target;
}

/**
 * The listed files a folder prefix or glob picks: for `docs/`, every name
 * under `docs/`; for a glob, every name whose whole path or base name it
 * matches (case-insensitively, as the tracker's `list` does).
 *
 * @param target A folder prefix or glob.
 * @param files The network's list.
 * @returns The matching files, sorted by name.
 *
 * @example Picking a folder
 * ```ts
 * import { selectBatch } from "@shoal/shoal/download";
 * const files = [
 *   { name: "docs/a.txt", id: null, size: 1, holders: 1 },
 *   { name: "other/docs/b.txt", id: null, size: 1, holders: 1 },
 * ];
 * if (selectBatch("docs/", files).length !== 1) throw new Error();
 * ```
 */
export function selectBatch(target: string, files: ListedFile[]): ListedFile[] {
  let pick: (name: string) => boolean;
  if (!/[*?]/.test(target)) {
    pick = (name) => name.startsWith(target) && name.length > target.length;
  } else {
    const pattern = target.endsWith("/") ? `${target}*` : target;
    const lower = pattern.toLowerCase();
    pick = (name) => {
      const text = name.toLowerCase();
      return globMatch(lower, text) ||
        (!pattern.includes("/") &&
          globMatch(lower, text, text.lastIndexOf("/") + 1));
    };
  }
  return files.filter((f) => pick(f.name))
    .sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** Live progress of a batch: one line's worth. */
export interface BatchProgress {
  /** The folder prefix or glob. */
  target: string;
  /** Files picked. */
  files: number;
  /** Files ended (downloaded, already there, or failed). */
  filesDone: number;
  /** Files that failed so far. */
  failed: number;
  /** Total bytes of the picked files (seed-protocol files count as 0). */
  size: number;
  /** Verified bytes on disk over all picked files. */
  bytes: number;
  /** Receive rate over the batch, bytes/s. */
  rate: number;
  /** Seconds left at the current rate (`Infinity` when unknown). */
  eta: number;
  /** Sources in use by the files in flight. */
  sources: number;
  /** Names being downloaded now. */
  current: string[];
}

/** How one file of a batch ended. */
export interface BatchFileResult {
  /** Its name on the network (and under the download directory). */
  name: string;
  /** Its content id (`null` for a seed-protocol file). */
  id: string | null;
  /** Whether it is on disk, verified (or, for a seed-protocol file, size-checked). */
  ok: boolean;
  /** What the download did, when it succeeded. */
  result?: DownloadResult;
  /** Why it failed, one line. */
  error?: string;
  /** The error it failed with (to tell its kind, e.g. `AlreadyExists`). */
  cause?: unknown;
}

/** What a batch did. */
export interface BatchResult {
  /** The folder prefix or glob. */
  target: string;
  /** Each picked file's outcome, in name order. */
  files: BatchFileResult[];
  /** Files that failed. */
  failed: number;
  /** Bytes received over the network. */
  received: number;
  /** Wall time, whole milliseconds. */
  elapsedMs: number;
}

/** Options for {@linkcode downloadBatch}. */
export interface BatchOptions extends DownloadOptions {
  /**
   * Most files picked: a pattern matching more is refused before anything
   * is downloaded.
   *
   * @default {1000}
   */
  maxFiles?: number;
  /** Files downloaded at once. @default {2} */
  concurrency?: number;
  /** Lists the network (by default, the tracker's `list`). */
  list?: (query: string) => Promise<ListedFile[]>;
  /** Downloads one file. @default {download} */
  run?: (
    target: string,
    options: DownloadOptions,
  ) => Promise<DownloadResult>;
  /** Called with the overall progress. */
  onBatchProgress?: (progress: BatchProgress) => void;
  /** Called once the files are picked, before any is downloaded. */
  onPicked?: (files: ListedFile[]) => void;
}

/**
 * Downloads every file a folder prefix or glob picks from the network's
 * list, each by its content id and verified, into the same relative names
 * under `outDir` (a name that would leave it is refused, as for one file).
 * A name listed with two different contents is not guessed: it fails with
 * the ids. One file failing does not stop the others.
 *
 * @param target A folder prefix (`docs/`) or a glob (`*.iso`).
 * @param options Where to look and save, limits, progress.
 * @returns Each file's outcome.
 * @throws {RangeError} If more than `maxFiles` files match.
 * @throws {Deno.errors.NotFound} If no file matches.
 * @throws {ProtocolError} If the pattern is not a safe relative one.
 *
 * @example Fetching a folder
 * ```ts ignore
 * import { downloadBatch } from "@shoal/shoal/download";
 * const batch = await downloadBatch("docs/", {
 *   tracker: "127.0.0.1:9000",
 *   outDir: "./downloads",
 * });
 * for (const f of batch.files) console.log(f.name, f.ok ? "ok" : f.error);
 * ```
 */
export async function downloadBatch(
  target: string,
  options: BatchOptions,
): Promise<BatchResult> {
  const started = performance.now();
  validateBatchTarget(target);
  const list = options.list ?? trackerList(options);
  const query = /[*?]/.test(target) ? target : target.slice(0, -1);
  const picked = selectBatch(target, await list(query));
  const maxFiles = options.maxFiles ?? DEFAULT_MAX_BATCH_FILES;
  if (picked.length === 0) {
    throw new Deno.errors.NotFound(
      `Cannot download ${target}: no file on the network matches it`,
    );
  }
  const byName = Map.groupBy(picked, (f) => f.name);
  if (byName.size > maxFiles) {
    throw new RangeError(
      `Cannot download ${target}: ${byName.size} files match, more than the limit of ${maxFiles}; narrow the pattern`,
    );
  }
  options.onPicked?.(picked);
  const run = options.run ?? download;
  const {
    maxFiles: _m,
    concurrency: _c,
    list: _l,
    run: _r,
    onBatchProgress: _b,
    onPicked: _p,
    ...single
  } = options;
  const entries = [...byName.entries()];
  const progress = new BatchMeter(target, entries, options.onBatchProgress);
  const results: BatchFileResult[] = [];
  const queue = [...entries];
  const worker = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      if (options.signal?.aborted) return;
      const [name, versions] = next;
      results.push(await fetchOne(name, versions, single, run, progress));
    }
  };
  await Promise.all(
    Array.from(
      { length: Math.max(1, Math.min(options.concurrency ?? 2, 8)) },
      worker,
    ),
  );
  if (options.signal?.aborted) {
    throw options.signal.reason ?? new DOMException("Aborted", "AbortError");
  }
  results.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return {
    target,
    files: results,
    failed: results.filter((r) => !r.ok).length,
    received: results.reduce((sum, r) => sum + (r.result?.received ?? 0), 0),
    elapsedMs: Math.round(performance.now() - started),
  };
}

/** Downloads one picked name (by content id when it has exactly one). */
async function fetchOne(
  name: string,
  versions: ListedFile[],
  options: DownloadOptions,
  run: NonNullable<BatchOptions["run"]>,
  meter: BatchMeter,
): Promise<BatchFileResult> {
  const ids = [...new Set(versions.map((v) => v.id).filter((id) => id))];
  const id = ids.length === 1 ? ids[0]! : null;
  const fail = (error: unknown): BatchFileResult => {
    meter.end(name, false);
    const line = (error instanceof Error ? error.message : String(error))
      .split("\n")[0]!;
    return { name, id, ok: false, error: line, cause: error };
  };
  try {
    validateName(name);
  } catch (error) {
    return fail(error);
  }
  if (ids.length > 1) {
    return fail(
      `Cannot download ${name}: ${ids.length} different files have that name (ids ${
        ids.map((i) => i!.slice(0, 12)).join(", ")
      }); download one by its id`,
    );
  }
  meter.begin(name);
  try {
    const result = await run(id ?? name, {
      ...options,
      ...(id ? { saveAs: name } : {}),
      onProgress: (p) => {
        meter.file(name, p);
        options.onProgress?.(p);
      },
    });
    meter.end(name, true, result.size);
    return { name, id: result.id, ok: true, result };
  } catch (error) {
    return fail(error);
  }
}

/** Sums the files' progress into one {@linkcode BatchProgress}. */
class BatchMeter {
  readonly #target: string;
  readonly #sizes = new Map<string, number>();
  readonly #bytes = new Map<string, number>();
  readonly #sources = new Map<string, number>();
  readonly #received = new Map<string, number>();
  readonly #report: ((p: BatchProgress) => void) | undefined;
  readonly #start = performance.now();
  #done = 0;
  #failed = 0;

  constructor(
    target: string,
    entries: [string, ListedFile[]][],
    report: ((p: BatchProgress) => void) | undefined,
  ) {
    this.#target = target;
    this.#report = report;
    for (const [name, versions] of entries) {
      this.#sizes.set(name, versions[0]?.size ?? 0);
    }
  }

  begin(name: string): void {
    this.#sources.set(name, 0);
    this.#publish();
  }

  file(name: string, p: DownloadProgress): void {
    this.#sizes.set(name, p.size);
    this.#bytes.set(name, p.bytes);
    this.#received.set(name, p.received);
    this.#sources.set(name, p.sources);
    this.#publish();
  }

  end(name: string, ok: boolean, size?: number): void {
    this.#done++;
    if (!ok) this.#failed++;
    if (size !== undefined) {
      this.#sizes.set(name, size);
      this.#bytes.set(name, size);
    }
    this.#sources.delete(name);
    this.#publish();
  }

  #publish(): void {
    if (!this.#report) return;
    const sum = (m: Map<string, number>) =>
      [...m.values()].reduce((a, b) => a + b, 0);
    const size = sum(this.#sizes);
    const bytes = sum(this.#bytes);
    const seconds = (performance.now() - this.#start) / 1000;
    const rate = seconds > 0 ? sum(this.#received) / seconds : 0;
    this.#report({
      target: this.#target,
      files: this.#sizes.size,
      filesDone: this.#done,
      failed: this.#failed,
      size,
      bytes,
      rate,
      eta: rate > 0 ? Math.max(0, size - bytes) / rate : Infinity,
      sources: sum(this.#sources),
      current: [...this.#sources.keys()],
    });
  }
}

/** The tracker's `list`, as the options say how to reach it. */
function trackerList(
  options: DownloadOptions,
): (query: string) => Promise<ListedFile[]> {
  if (!options.tracker) {
    throw new TypeError(
      "Cannot download a folder or glob: no tracker to list the network",
    );
  }
  const client = new TrackerClient(options.tracker, {
    ...(options.secret !== undefined ? { secret: options.secret } : {}),
    ...(options.transport ? { transport: options.transport } : {}),
  });
  return (query) => client.list(query);
}
