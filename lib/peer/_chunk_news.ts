/**
 * Private change feed of a download in progress: a version that grows with
 * every verified chunk, the last few verified indexes, and waiting for the
 * next one, so the chunk server can answer long-poll `have` requests.
 *
 * @module
 */

/** How many of the latest verified chunk indexes a feed remembers. */
export const REMEMBERED_CHUNKS = 4096;

/** The verified chunks of one download, as a versioned feed. */
export class ChunkNews {
  /** Grows by one with every verified chunk. */
  version: number;
  /** Whether the download ended (finished, failed or cancelled). */
  ended = false;
  readonly #max: number;
  /** `#recent[k]` was verified at version `version - #recent.length + 1 + k`. */
  #recent: number[] = [];
  #waiters = new Set<() => void>();

  /**
   * Creates a feed.
   *
   * @param base The version before the first chunk (so a download started
   *   again after another does not reuse its versions).
   * @param max How many of the latest indexes to remember.
   */
  constructor(base = 0, max: number = REMEMBERED_CHUNKS) {
    this.version = base;
    this.#max = max;
  }

  /** Records chunk `index` as verified and wakes every waiter. */
  verified(index: number): void {
    this.version++;
    this.#recent.push(index);
    // Trimmed in batches: amortised O(1) per chunk.
    if (this.#recent.length >= 2 * this.#max) {
      this.#recent = this.#recent.slice(-this.#max);
    }
    this.#wake();
  }

  /** Marks the download as ended and wakes every waiter. */
  end(): void {
    this.ended = true;
    this.#wake();
  }

  /**
   * The chunks verified after version `after`, oldest first.
   *
   * @param after A version not above the current one.
   * @returns The indexes, or `undefined` when they are no longer remembered
   *   (or `after` is not a version of this feed).
   */
  since(after: number): number[] | undefined {
    const count = this.version - after;
    if (count < 0 || count > Math.min(this.#recent.length, this.#max)) {
      return undefined;
    }
    return count === 0 ? [] : this.#recent.slice(-count);
  }

  /**
   * Waits until the version passes `after`, the download ends, `signal`
   * aborts or `timeoutMs` passes (resolving, never rejecting).
   *
   * @param after The version the caller knows.
   * @param signal Ends the wait early.
   * @param timeoutMs The longest wait, ms (no limit by default).
   */
  changed(
    after: number,
    signal: AbortSignal,
    timeoutMs = Infinity,
  ): Promise<void> {
    if (this.version > after || this.ended || signal.aborted) {
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      // One timer and one listener per wait: no controller or combined
      // signal for each long poll.
      const timer = timeoutMs < Infinity
        ? setTimeout(() => done(), timeoutMs)
        : undefined;
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.#waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /** Callers waiting now. */
  get waiting(): number {
    return this.#waiters.size;
  }

  #wake(): void {
    for (const done of [...this.#waiters]) done();
  }
}
