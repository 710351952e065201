/**
 * Chunk bookkeeping of a download: which chunks are missing, in flight (and
 * with which sources) or verified, plus the bitfield helpers. What to ask
 * for next is the {@linkcode DownloadStrategy}'s job (see `strategy.ts`).
 *
 * @module
 */

/** A chunk choice. */
export interface Pick {
  /** Chunk index. */
  index: number;
  /** True when another source is already fetching it (endgame). */
  duplicate: boolean;
}

const MISSING = 0;
const IN_FLIGHT = 1;
const DONE = 2;

/**
 * Whether bit `index` is set in a bitfield (most significant bit first).
 *
 * @param bitfield The bitfield.
 * @param index Bit index.
 * @returns Whether the bit is set.
 *
 * @example Reading one bit
 * ```ts
 * import { hasBit } from "@shoal/shoal/download";
 * if (!hasBit(new Uint8Array([0b1000_0000]), 0)) throw new Error("bit 0 is set");
 * ```
 */
export function hasBit(bitfield: Uint8Array, index: number): boolean {
  return ((bitfield[index >>> 3] ?? 0) & (0x80 >>> (index & 7))) !== 0;
}

/**
 * Builds a bitfield from a per-chunk flag array.
 *
 * @param have `1` for each chunk held.
 * @returns The packed bitfield.
 *
 * @example Packing three flags
 * ```ts
 * import { packBitfield } from "@shoal/shoal/download";
 * if (packBitfield(new Uint8Array([1, 0, 1]))[0] !== 0b1010_0000) throw new Error("bad");
 * ```
 */
export function packBitfield(have: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(have.length / 8));
  for (let i = 0; i < have.length; i++) {
    if (have[i]) out[i >>> 3]! |= 0x80 >>> (i & 7);
  }
  return out;
}

/**
 * Each chunk's state (missing, in flight, done) and the sources fetching
 * it. A strategy reads it; the download alone changes it.
 *
 * @example Requesting and completing a chunk
 * ```ts
 * import { ChunkBoard } from "@shoal/shoal/download";
 * const board = new ChunkBoard(new Uint8Array(2));
 * board.request(0, "a");
 * board.complete(0);
 * if (board.done !== 1) throw new Error("expected one chunk done");
 * ```
 */
export class ChunkBoard {
  readonly #state: Uint8Array;
  readonly #requesters = new Map<number, Set<string>>();
  #cursor = 0;
  #done = 0;
  #listeners: { deadline: number; resolve: () => void }[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = 0;

  /**
   * Creates a board.
   *
   * @param have `1` for chunks already verified on disk (resume).
   */
  constructor(have: Uint8Array) {
    this.#state = new Uint8Array(have.length);
    for (let i = 0; i < have.length; i++) {
      if (have[i]) {
        this.#state[i] = DONE;
        this.#done++;
      }
    }
  }

  /** Total chunks. */
  get total(): number {
    return this.#state.length;
  }

  /** Verified chunks. */
  get done(): number {
    return this.#done;
  }

  /** Whether every chunk is verified. */
  get finished(): boolean {
    return this.#done === this.#state.length;
  }

  /**
   * Whether chunk `index` is verified.
   *
   * @param index Chunk index.
   * @returns `true` when done.
   */
  isDone(index: number): boolean {
    return this.#state[index] === DONE;
  }

  /**
   * Whether chunk `index` is neither verified nor asked of anyone.
   *
   * @param index Chunk index.
   * @returns `true` when missing and not in flight.
   */
  isMissing(index: number): boolean {
    return this.#state[index] === MISSING;
  }

  /**
   * The lowest chunk index that may be missing: every chunk below it is in
   * flight or done.
   *
   * @returns An index, or {@linkcode ChunkBoard.total} when none is missing.
   */
  firstMissing(): number {
    while (
      this.#cursor < this.#state.length && this.#state[this.#cursor] !== MISSING
    ) {
      this.#cursor++;
    }
    return this.#cursor;
  }

  /**
   * The chunks in flight and the sources fetching each.
   *
   * @returns Pairs of chunk index and requester keys.
   */
  inFlight(): IterableIterator<[number, ReadonlySet<string>]> {
    return this.#requesters.entries();
  }

  /**
   * The sources fetching chunk `index`.
   *
   * @param index Chunk index.
   * @returns Their keys (empty when none).
   */
  requesters(index: number): ReadonlySet<string> {
    return this.#requesters.get(index) ?? new Set();
  }

  /**
   * Records that source `key` was asked for chunk `index`.
   *
   * @param index Chunk index (not done).
   * @param key The source asked.
   * @returns The pick: a duplicate when another source is already fetching it.
   * @throws {RangeError} If the chunk is done, out of range or already asked
   *   of this source.
   */
  request(index: number, key: string): Pick {
    const state = this.#state[index];
    const requesters = this.#requesters.get(index);
    if (state === undefined || state === DONE || requesters?.has(key)) {
      throw new RangeError(
        `Cannot request chunk ${index} from ${key}: it is ${
          state === undefined
            ? "out of range"
            : state === DONE
            ? "already verified"
            : "already asked of that source"
        }`,
      );
    }
    if (requesters) {
      requesters.add(key);
      return { index, duplicate: true };
    }
    this.#state[index] = IN_FLIGHT;
    this.#requesters.set(index, new Set([key]));
    return { index, duplicate: false };
  }

  /**
   * Marks a chunk verified.
   *
   * @param index Chunk index.
   * @returns Keys of the sources that were fetching it (to cancel the
   *   others), or `undefined` if it was already done.
   */
  complete(index: number): string[] | undefined {
    if (this.#state[index] === DONE) return undefined;
    this.#state[index] = DONE;
    this.#done++;
    const others = [...this.#requesters.get(index) ?? []];
    this.#requesters.delete(index);
    this.#notify();
    return others;
  }

  /**
   * Gives a chunk back after a failed or cancelled request by `key`.
   *
   * @param index Chunk index.
   * @param key Source that was fetching it.
   */
  release(index: number, key: string): void {
    const requesters = this.#requesters.get(index);
    requesters?.delete(key);
    if (
      this.#state[index] === IN_FLIGHT && (!requesters || requesters.size === 0)
    ) {
      this.#requesters.delete(index);
      this.#state[index] = MISSING;
      if (index < this.#cursor) this.#cursor = index;
    }
    this.#notify();
  }

  /**
   * Resolves at the next state change, or after `timeoutMs` (give or take
   * 20 ms: the waiters share one timer).
   *
   * @param timeoutMs Longest wait.
   * @returns When something changed or the time ran out.
   */
  changed(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const deadline = performance.now() + timeoutMs;
      this.#listeners.push({ deadline, resolve });
      this.#arm(deadline);
    });
  }

  /** Wakes every waiter of {@linkcode ChunkBoard.changed} now. */
  wake(): void {
    this.#notify();
  }

  #notify(): void {
    // The timer stays: the next wait (usually at once) reuses it instead of
    // setting a new one; firing with nothing due costs nothing. Once every
    // chunk is done no wait follows, so it goes.
    if (this.finished) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#listeners.length === 0) return;
    const listeners = this.#listeners;
    this.#listeners = [];
    for (const listener of listeners) listener.resolve();
  }

  /**
   * Makes sure a timer fires by `deadline`: one timer serves every waiter
   * (a download's lanes all wait at once), not one per wait.
   */
  #arm(deadline: number): void {
    if (
      this.#timer !== undefined && this.#timerAt <= deadline + WAIT_SLACK_MS
    ) {
      return;
    }
    clearTimeout(this.#timer);
    this.#timerAt = deadline;
    this.#timer = setTimeout(
      () => this.#expire(),
      Math.max(0, deadline - performance.now()),
    );
  }

  /** Resolves the waiters whose time ran out, and waits for the rest. */
  #expire(): void {
    this.#timer = undefined;
    const now = performance.now() + WAIT_SLACK_MS;
    const due = this.#listeners.filter((l) => l.deadline <= now);
    this.#listeners = this.#listeners.filter((l) => l.deadline > now);
    let next = Infinity;
    for (const l of this.#listeners) next = Math.min(next, l.deadline);
    if (next < Infinity) this.#arm(next);
    for (const listener of due) listener.resolve();
  }
}

/** How far a wait of `ChunkBoard.changed` may end early or late, ms. */
const WAIT_SLACK_MS = 20;
