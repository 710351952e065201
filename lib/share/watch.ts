/**
 * Keeps a {@linkcode ShareIndex} in step with its directory while a peer
 * runs: a recursive file system watch, debounced, that hashes a new or
 * changed file only once its size and mtime stopped changing.
 *
 * @module
 */
import type { ShareIndex } from "./share.ts";

/** Options for {@linkcode ShareWatcher.start}. */
export interface ShareWatcherOptions {
  /**
   * How long to gather events before looking at the paths they name, ms.
   *
   * @default {100}
   */
  debounceMs?: number;
  /**
   * How long a file's size and mtime must stay unchanged before it is
   * hashed and announced, ms.
   *
   * @default {500}
   */
  stableMs?: number;
  /** Stops watching when aborted. */
  signal?: AbortSignal;
}

/** Events a {@linkcode ShareWatcher} emits. */
export interface ShareWatcherEventMap {
  /** The set of shared files changed (detail: the index version). */
  change: CustomEvent<{ version: number }>;
  /**
   * Watching failed (for example the system's watch limit was reached);
   * the watcher stopped and the owner should fall back to rescanning.
   */
  error: CustomEvent<{ message: string }>;
}

interface Observation {
  size: number;
  mtime: number;
  at: number;
}

/**
 * Watches a shared directory and updates its index.
 *
 * @example Seeing a new file
 * ```ts
 * import { ShareIndex, ShareWatcher } from "@shoal/shoal/share";
 * const root = await Deno.makeTempDir();
 * const index = await ShareIndex.open({ root });
 * await using watcher = ShareWatcher.start(index, { stableMs: 50 });
 * const changed = new Promise((resolve) =>
 *   watcher.addEventListener("change", resolve, { once: true })
 * );
 * await Deno.writeTextFile(`${root}/new.txt`, "hello");
 * await changed;
 * if (!index.byName("new.txt")) throw new Error("not seen");
 * await watcher.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export class ShareWatcher extends EventTarget implements AsyncDisposable {
  /** The index kept up to date. */
  readonly index: ShareIndex;
  readonly #debounceMs: number;
  readonly #stableMs: number;
  readonly #signal: AbortSignal | undefined;
  #watcher: Deno.FsWatcher | undefined;
  #running: Promise<void> = Promise.resolve();
  #dirty = new Set<string>();
  #pending = new Set<string>();
  #observations = new Map<string, Observation>();
  #rescan = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #due = Infinity;
  #flushing: Promise<void> | undefined;
  #closed = false;

  private constructor(index: ShareIndex, options: ShareWatcherOptions) {
    super();
    this.index = index;
    this.#debounceMs = options.debounceMs ?? 100;
    this.#stableMs = options.stableMs ?? 500;
    this.#signal = options.signal;
  }

  /**
   * Listens for a {@linkcode ShareWatcherEventMap} event, typed by name.
   *
   * @param type The event name.
   * @param listener Called with the typed event.
   * @param options Standard listener options (`once`, `signal`).
   */
  override addEventListener<K extends keyof ShareWatcherEventMap>(
    type: K,
    listener: (this: ShareWatcher, event: ShareWatcherEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /**
   * Listens for any event.
   *
   * @param type The event name.
   * @param listener The listener.
   * @param options Standard listener options.
   */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener, options);
  }

  /**
   * Stops listening for a {@linkcode ShareWatcherEventMap} event.
   *
   * @param type The event name.
   * @param listener The listener given to `addEventListener`.
   * @param options Standard listener options (`capture`).
   */
  override removeEventListener<K extends keyof ShareWatcherEventMap>(
    type: K,
    listener: (this: ShareWatcher, event: ShareWatcherEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  /**
   * Stops listening for any event.
   *
   * @param type The event name.
   * @param listener The listener.
   * @param options Standard listener options.
   */
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void {
    super.removeEventListener(type, listener, options);
  }

  /**
   * Starts watching. If the system refuses the watch, the watcher is
   * returned inactive and an `error` event follows.
   *
   * @param index The index to keep up to date.
   * @param options Debounce and stability times.
   * @returns The watcher; close it or `await using` it.
   */
  static start(
    index: ShareIndex,
    options: ShareWatcherOptions = {},
  ): ShareWatcher {
    const watcher = new ShareWatcher(index, options);
    try {
      watcher.#watcher = Deno.watchFs(index.root, { recursive: true });
      watcher.#running = watcher.#run(watcher.#watcher);
    } catch (error) {
      queueMicrotask(() => watcher.#fail(error));
    }
    options.signal?.addEventListener("abort", watcher.#onAbort, {
      once: true,
    });
    return watcher;
  }

  /** Whether changes are being watched (false after a failure or close). */
  get active(): boolean {
    return this.#watcher !== undefined && !this.#closed;
  }

  /** Paths seen changing that are not stable yet. */
  get pending(): number {
    return this.#pending.size;
  }

  #onAbort = () => void this.close();

  async #run(watcher: Deno.FsWatcher): Promise<void> {
    try {
      for await (const event of watcher) {
        if (event.flag === "rescan") this.#rescan = true;
        for (const path of event.paths) {
          if (this.index.isRelevant(path)) this.#dirty.add(path);
        }
        if (this.#rescan || this.#dirty.size > 0) {
          this.#schedule(this.#debounceMs);
        }
      }
    } catch (error) {
      if (!this.#closed) this.#fail(error);
    }
  }

  #fail(error: unknown): void {
    this.#watcher = undefined;
    this.dispatchEvent(
      new CustomEvent("error", {
        detail: {
          message: `Cannot watch ${this.index.root}: ${
            error instanceof Error ? error.message : String(error)
          }`,
        },
      }),
    );
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return;
    const due = performance.now() + delayMs;
    if (this.#timer !== undefined && this.#due <= due) return;
    clearTimeout(this.#timer);
    this.#due = due;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#due = Infinity;
      void this.flush().catch((error) => {
        if (!this.#closed) this.#fail(error);
      });
    }, delayMs);
  }

  /**
   * Looks at every path seen changing now instead of after the debounce
   * (files that are not stable yet stay pending).
   */
  async flush(): Promise<void> {
    while (this.#flushing) await this.#flushing;
    if (this.#closed) return;
    this.#flushing = this.#flushOnce();
    try {
      await this.#flushing;
    } finally {
      this.#flushing = undefined;
    }
  }

  async #flushOnce(): Promise<void> {
    const rescan = this.#rescan;
    const paths = new Set([...this.#pending, ...this.#dirty]);
    this.#rescan = false;
    this.#dirty.clear();
    this.#pending.clear();
    let changed = false;
    if (rescan) changed = await this.index.rescan();
    if (paths.size > 0) {
      const result = await this.index.update(paths, this.#settled);
      changed ||= result.changed;
      for (const path of result.pending) this.#pending.add(path);
    }
    for (const path of this.#observations.keys()) {
      if (!this.#pending.has(path)) this.#observations.delete(path);
    }
    if (this.#pending.size > 0) {
      this.#schedule(Math.max(this.#debounceMs, this.#stableMs / 4));
    }
    if (changed && !this.#closed) {
      this.dispatchEvent(
        new CustomEvent("change", { detail: { version: this.index.version } }),
      );
    }
  }

  /** Settled: untouched for `stableMs` by its mtime, or by two looks. */
  #settled = (path: string, size: number, mtime: number): boolean => {
    const now = Date.now();
    if (now - mtime >= this.#stableMs) return true;
    const seen = this.#observations.get(path);
    if (seen && seen.size === size && seen.mtime === mtime) {
      return now - seen.at >= this.#stableMs;
    }
    this.#observations.set(path, { size, mtime, at: now });
    return false;
  };

  /** Stops watching and waits for work in progress. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#watcher?.close();
    this.#watcher = undefined;
    await this.#running;
    await this.#flushing?.catch(() => {});
  }

  /** Same as {@linkcode ShareWatcher.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
