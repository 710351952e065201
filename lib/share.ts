/**
 * The index of a peer's shared directory: every regular file under it (by
 * relative POSIX name), its manifest, and a hash cache that survives restarts.
 *
 * @module
 */
import { join, relative, sep } from "node:path";
import { hashFile, type Manifest } from "./manifest.ts";
import type { FileAnnouncement } from "./messages.ts";
import { isInside, validateName } from "./names.ts";

/** Suffix of an incomplete download; such files are never listed or shared. */
export const PART_SUFFIX = ".part";
/** Default name of the peer's state folder inside the shared directory. */
export const STATE_DIR_NAME = ".shoal";

/** A shared file: its manifest plus where it lives. */
export interface SharedFile extends Manifest {
  /** Absolute path on disk. */
  path: string;
  /** Modification time (ms) when hashed. */
  mtime: number;
}

/** Options for {@linkcode ShareIndex.open}. */
export interface ShareIndexOptions {
  /** The shared directory. */
  root: string;
  /** Where the hash cache lives. @default {`${root}/.shoal`} */
  stateDir?: string;
  /** Requested chunk size. @default {1048576} */
  chunkSize?: number;
  /** Stops a scan when aborted. */
  signal?: AbortSignal;
}

interface CacheEntry {
  size: number;
  mtime: number;
  requested: number;
  chunkSize: number;
  id: string;
  hashes: string[];
}

/**
 * The files a peer shares, kept in step with the disk by {@linkcode rescan}.
 *
 * @example Indexing a directory
 * ```ts
 * import { ShareIndex } from "./share.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/a.txt`, "hello");
 * const index = await ShareIndex.open({ root });
 * if (index.byName("a.txt")?.size !== 5) throw new Error("not indexed");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export class ShareIndex {
  /** The shared directory (real path). */
  readonly root: string;
  /** The state directory (real path). */
  readonly stateDir: string;
  readonly #chunkSize: number;
  readonly #signal: AbortSignal | undefined;
  #byName = new Map<string, SharedFile>();
  #byId = new Map<string, SharedFile>();
  #cache = new Map<string, CacheEntry>();
  #version = 0;

  private constructor(
    root: string,
    stateDir: string,
    chunkSize: number,
    signal: AbortSignal | undefined,
  ) {
    this.root = root;
    this.stateDir = stateDir;
    this.#chunkSize = chunkSize;
    this.#signal = signal;
  }

  /**
   * Opens and scans a shared directory.
   *
   * @param options Directory, state and chunk size.
   * @returns The index.
   * @throws {Deno.errors.NotFound} If the directory does not exist.
   */
  static async open(options: ShareIndexOptions): Promise<ShareIndex> {
    const root = await Deno.realPath(options.root);
    const info = await Deno.stat(root);
    if (!info.isDirectory) {
      throw new TypeError(
        `Cannot share ${options.root}: it is not a directory`,
      );
    }
    const stateDir = options.stateDir ?? join(root, STATE_DIR_NAME);
    await Deno.mkdir(stateDir, { recursive: true });
    const index = new ShareIndex(
      root,
      await Deno.realPath(stateDir),
      options.chunkSize ?? 1024 * 1024,
      options.signal,
    );
    await index.#loadCache();
    await index.rescan();
    return index;
  }

  /** Increases whenever the set of shared files changes. */
  get version(): number {
    return this.#version;
  }

  /** Every shared file. */
  files(): SharedFile[] {
    return [...this.#byName.values()];
  }

  /**
   * A shared file by name.
   *
   * @param name Relative POSIX name.
   * @returns The file, if shared.
   */
  byName(name: string): SharedFile | undefined {
    return this.#byName.get(name);
  }

  /**
   * A shared file by content id.
   *
   * @param id Content id.
   * @returns The file, if shared.
   */
  byId(id: string): SharedFile | undefined {
    return this.#byId.get(id);
  }

  /** The announcement list for the tracker. */
  announcements(): FileAnnouncement[] {
    return this.files().map(({ name, id, size }) => ({ name, id, size }));
  }

  /**
   * Adds one known file without rescanning (a download just completed).
   *
   * @param file The file and its manifest.
   */
  add(file: SharedFile): void {
    this.#byName.set(file.name, file);
    this.#byId.set(file.id, file);
    this.#cache.set(file.name, {
      size: file.size,
      mtime: file.mtime,
      requested: this.#chunkSize,
      chunkSize: file.chunkSize,
      id: file.id,
      hashes: file.hashes,
    });
    this.#version++;
  }

  /**
   * Walks the directory again, hashing only new or changed files.
   *
   * @returns Whether anything changed.
   */
  async rescan(): Promise<boolean> {
    const found = new Map<string, SharedFile>();
    for await (const { path, name } of this.#walk(this.root)) {
      this.#signal?.throwIfAborted();
      let info: Deno.FileInfo;
      try {
        info = await Deno.stat(path);
      } catch {
        continue; // Vanished while scanning.
      }
      if (!info.isFile) continue;
      const mtime = info.mtime?.getTime() ?? 0;
      const cached = this.#cache.get(name);
      if (
        cached && cached.size === info.size && cached.mtime === mtime &&
        cached.requested === this.#chunkSize
      ) {
        found.set(name, {
          name,
          path,
          mtime,
          size: cached.size,
          chunkSize: cached.chunkSize,
          id: cached.id,
          hashes: cached.hashes,
        });
        continue;
      }
      try {
        const manifest = await hashFile(path, name, {
          chunkSize: this.#chunkSize,
          ...(this.#signal ? { signal: this.#signal } : {}),
        });
        found.set(name, { ...manifest, path, mtime });
        this.#cache.set(name, {
          size: manifest.size,
          mtime,
          requested: this.#chunkSize,
          chunkSize: manifest.chunkSize,
          id: manifest.id,
          hashes: manifest.hashes,
        });
      } catch (error) {
        if (this.#signal?.aborted) throw error;
        // Unreadable or changing file: skip it this round.
      }
    }
    let changed = found.size !== this.#byName.size;
    if (!changed) {
      for (const [name, file] of found) {
        if (this.#byName.get(name)?.id !== file.id) {
          changed = true;
          break;
        }
      }
    }
    for (const name of this.#cache.keys()) {
      if (!found.has(name)) this.#cache.delete(name);
    }
    if (changed) {
      this.#byName = found;
      this.#byId = new Map([...found.values()].map((f) => [f.id, f]));
      this.#version++;
    }
    await this.#saveCache();
    return changed;
  }

  async *#walk(dir: string): AsyncGenerator<{ path: string; name: string }> {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch {
      return;
    }
    entries.sort((a, b) => a.name < b.name ? -1 : 1);
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (path === this.stateDir || entry.name === STATE_DIR_NAME) continue;
      if (entry.name.endsWith(PART_SUFFIX)) continue;
      let real = path;
      if (entry.isSymlink) {
        try {
          real = await Deno.realPath(path);
        } catch {
          continue; // Dangling.
        }
        if (!isInside(this.root, real)) continue; // Leads outside: never shared.
      }
      const name = relative(this.root, path).split(sep).join("/");
      try {
        validateName(name);
      } catch {
        continue; // A name the network could not carry.
      }
      const info = entry.isSymlink ? await Deno.stat(real) : undefined;
      if (entry.isDirectory || info?.isDirectory) {
        if (!entry.isSymlink) yield* this.#walk(path);
        continue;
      }
      if (entry.isFile || info?.isFile) yield { path: real, name };
    }
  }

  get #cachePath(): string {
    return join(this.stateDir, "hashes.json");
  }

  async #loadCache(): Promise<void> {
    try {
      const data = JSON.parse(await Deno.readTextFile(this.#cachePath));
      if (data?.version !== 1 || typeof data.entries !== "object") return;
      for (const [name, entry] of Object.entries(data.entries)) {
        const e = entry as CacheEntry;
        if (
          typeof e?.id === "string" && Array.isArray(e.hashes) &&
          Number.isSafeInteger(e.size) && typeof e.mtime === "number"
        ) {
          this.#cache.set(name, e);
        }
      }
    } catch {
      // No cache yet, or an unreadable one: rehash.
    }
  }

  async #saveCache(): Promise<void> {
    const temp = `${this.#cachePath}.tmp`;
    await Deno.writeTextFile(
      temp,
      JSON.stringify({ version: 1, entries: Object.fromEntries(this.#cache) }),
    );
    await Deno.rename(temp, this.#cachePath);
  }
}
