/**
 * The partial file of a download: named by the content id, locked while a
 * download writes it, checked against the free space, verified chunk by
 * chunk on resume, kept beside a small state file, and renamed into place
 * only once complete. A failed write is reported once, as an abort signal.
 *
 * @module
 */
import { statfs } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { writeAll } from "../net/connection.ts";
import {
  chunkLength,
  type Manifest,
  readFull,
  sha256Hex,
} from "../content/manifest.ts";
import { PART_SUFFIX } from "../content/names.ts";

/** Suffix of the resume state kept beside a `.part` file. */
export const STATE_SUFFIX = ".part.state";

/**
 * The partial file of a download of `id` saved at `path`, and its resume
 * state. Named by the content id, so downloads of two different files
 * under one name never share a partial file.
 *
 * @param path Final path of the download.
 * @param id Content id.
 * @returns The `.part` path and its state file's path.
 *
 * @example Where a download keeps its partial data
 * ```ts
 * import { partPaths } from "@shoal/shoal/download";
 * const { partPath } = partPaths("/tmp/a.bin", "ab".repeat(32));
 * if (!partPath.endsWith(".part")) throw new Error("expected a .part file");
 * ```
 */
export function partPaths(
  path: string,
  id: string,
): { partPath: string; statePath: string } {
  let partPath = `${path}.${id.slice(0, 16)}${PART_SUFFIX}`;
  if (new TextEncoder().encode(basename(partPath)).length > 255) {
    partPath = join(dirname(path), `${id}${PART_SUFFIX}`);
  }
  return { partPath, statePath: partPath + ".state" };
}

/**
 * Refuses a download the disk cannot hold, before anything is written: the
 * space still needed (the file's size less what the partial file already
 * takes) must be free. Skipped where free space cannot be read (no
 * `--allow-sys=statfs`).
 *
 * @param partPath The partial file (it may not exist yet).
 * @param name The name the download is saved under (for the message).
 * @param size The file's full size.
 * @returns When there is room.
 * @throws {Error} If the space needed exceeds the free space.
 *
 * @example Checking before a 1 KiB download
 * ```ts ignore
 * import { checkFreeSpace } from "@shoal/shoal/download";
 * await checkFreeSpace("/tmp/a.bin.part", "a.bin", 1024);
 * ```
 */
export async function checkFreeSpace(
  partPath: string,
  name: string,
  size: number,
): Promise<void> {
  let free: number;
  try {
    const stats = await statfs(dirname(partPath));
    free = Number(stats.bavail) * Number(stats.bsize);
  } catch {
    return;
  }
  const part = await Deno.stat(partPath).catch(() => undefined);
  const taken = !part
    ? 0
    : part.blocks !== null
    ? Math.min(part.size, part.blocks * 512)
    : part.size;
  const needed = size - taken;
  if (needed > free) {
    throw new Error(
      `Cannot download ${name}: it needs ${needed} more bytes but ${
        dirname(partPath)
      } has ${free} free; free some space and run it again`,
    );
  }
}

/**
 * An open, exclusively locked partial file. Writes go through it, one at a
 * time; the first failed write aborts {@linkcode PartFile.failed} with an
 * error saying what is kept, so the download stops at once.
 *
 * @example Writing a chunk into a partial file
 * ```ts ignore
 * import { PartFile } from "@shoal/shoal/download";
 * await using part = await PartFile.open("/tmp/a.bin.part", "a.bin");
 * await part.writeAt(0, new Uint8Array([1, 2, 3]));
 * ```
 */
export class PartFile implements AsyncDisposable {
  /** Path of the partial file. */
  readonly path: string;
  readonly #file: Deno.FsFile;
  readonly #failed = new AbortController();
  #writes: Promise<void> = Promise.resolve();
  #kept: () => string = () => "the verified chunks are kept";

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  /**
   * Opens (creating it if needed, never truncating) a partial file and takes
   * an exclusive lock on it: one download at a time writes a partial file,
   * whether the other one runs in this process or another. The lock goes
   * with the process, so a crash leaves nothing to clean up.
   *
   * @param path The partial file.
   * @param name The name the download is saved under (for messages).
   * @returns The locked file.
   * @throws {Deno.errors.Busy} If another download holds the lock.
   * @throws {Deno.errors.PermissionDenied} If it cannot be created.
   */
  static async open(path: string, name: string): Promise<PartFile> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true, write: true, create: true });
    } catch (error) {
      const message = `Cannot write ${path}: ${(error as Error).message}`;
      if (error instanceof Deno.errors.PermissionDenied) {
        throw new Deno.errors.PermissionDenied(message);
      }
      throw new Error(message, { cause: error });
    }
    let locked = false;
    try {
      locked = await file.tryLock(true);
    } catch (error) {
      file.close();
      throw new Error(
        `Cannot lock ${path}: ${(error as Error).message.split("\n")[0]}`,
        { cause: error },
      );
    }
    if (!locked) {
      file.close();
      throw new Deno.errors.Busy(
        `Cannot download ${name}: the same content is already being downloaded to that place (${path} is locked); wait for that download or cancel it`,
      );
    }
    return new PartFile(path, file);
  }

  /**
   * Aborted, with the error as its reason, when a write failed (disk full,
   * I/O error): not a fault of the sources, so the download ends at once.
   */
  get failed(): AbortSignal {
    return this.#failed.signal;
  }

  /**
   * The open file, for a whole-file writer such as the seed protocol's.
   * Its failures are the caller's to report.
   */
  get file(): Deno.FsFile {
    return this.#file;
  }

  /**
   * Sets what a write-failure message says is kept.
   *
   * @param describe Returns, e.g., `"12 verified chunks are kept"`.
   */
  describeKept(describe: () => string): void {
    this.#kept = describe;
  }

  /**
   * Writes `bytes` at `offset`, after the writes already queued.
   *
   * @param offset Byte offset in the file.
   * @param bytes The data.
   * @returns When written.
   * @throws {Error} The write's error (and {@linkcode PartFile.failed} aborts).
   */
  writeAt(offset: number, bytes: Uint8Array): Promise<void> {
    const next = this.#writes.then(async () => {
      // A seek is one quick syscall: made here, not on a blocking thread.
      this.#file.seekSync(offset, Deno.SeekMode.Start);
      try {
        await writeAll(this.#file, bytes);
      } catch (error) {
        this.#reportFailure(error);
        throw error;
      }
    });
    this.#writes = next.catch(() => {});
    return next;
  }

  /**
   * Waits for the queued writes to settle.
   *
   * @returns When no write is pending.
   */
  flushed(): Promise<void> {
    return this.#writes;
  }

  /**
   * Checks the partial file against the manifest: every chunk whose bytes
   * hash right is marked in `have`. A partial file left by other content
   * (its state file names another id) starts over.
   *
   * @param statePath The state file beside the partial file.
   * @param manifest The verified manifest.
   * @param have Set to `1` for each chunk found verified.
   * @returns How many chunks were found verified.
   */
  async resume(
    statePath: string,
    manifest: Manifest,
    have: Uint8Array,
  ): Promise<number> {
    const file = this.#file;
    const { size } = await file.stat();
    if (size === 0) return 0;
    let state: { manifest?: { id?: string } } | undefined;
    try {
      state = JSON.parse(await Deno.readTextFile(statePath));
    } catch {
      state = undefined;
    }
    if (state?.manifest?.id !== manifest.id) {
      await file.truncate(0);
      return 0;
    }
    const buffer = new Uint8Array(manifest.chunkSize);
    let count = 0;
    await file.seek(0, Deno.SeekMode.Start);
    for (let i = 0; i < have.length; i++) {
      const length = chunkLength(manifest, i);
      const filled = await readFull(file, buffer.subarray(0, length));
      if (filled < length) break;
      if (sha256Hex(buffer.subarray(0, length)) === manifest.hashes[i]) {
        have[i] = 1;
        count++;
      }
    }
    return count;
  }

  /**
   * Sizes the file for `manifest` and records the state a resume needs.
   *
   * @param statePath The state file beside the partial file.
   * @param manifest The verified manifest.
   * @param name The name the download is saved under.
   * @returns When both are written.
   */
  async prepare(
    statePath: string,
    manifest: Manifest,
    name: string,
  ): Promise<void> {
    await this.#file.truncate(manifest.size);
    await Deno.writeTextFile(
      statePath,
      JSON.stringify({ version: 1, manifest, name }),
    );
  }

  /**
   * Flushes the data to stable storage (before a rename into place).
   *
   * @returns When flushed.
   */
  async sync(): Promise<void> {
    await this.#file.syncData();
  }

  /**
   * Renames the finished partial file to its final name, while the lock is
   * still held. Without `overwrite` it never replaces a file that appeared
   * meanwhile: a hard link fails atomically if the name is taken (where
   * links are not supported, a check right before the rename narrows the
   * window).
   *
   * @param path The final path.
   * @param name The name saved under (for messages).
   * @param overwrite Whether an existing file may be replaced.
   * @returns When moved.
   * @throws {Deno.errors.AlreadyExists} If a file appeared at `path`.
   */
  async moveTo(path: string, name: string, overwrite: boolean): Promise<void> {
    const partPath = this.path;
    if (overwrite) return await Deno.rename(partPath, path);
    const taken = () =>
      new Deno.errors.AlreadyExists(
        `Cannot save ${name}: a file appeared at ${path} during the download (the verified data is kept in ${partPath})`,
      );
    try {
      await Deno.link(partPath, path);
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) throw taken();
      if (await Deno.lstat(path).then(() => true, () => false)) throw taken();
      return await Deno.rename(partPath, path);
    }
    await Deno.remove(partPath);
  }

  /** Closes the file, which releases the lock. */
  close(): void {
    this.#file.close();
  }

  /** Closes the file once the queued writes settled. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#writes;
    this.close();
  }

  #reportFailure(error: unknown): void {
    if (this.#failed.signal.aborted) return;
    this.#failed.abort(
      new Error(
        `Cannot write ${this.path}: ${
          (error as Error).message.split("\n")[0]
        } (${this.#kept()}; run the download again to resume)`,
        { cause: error },
      ),
    );
  }
}
