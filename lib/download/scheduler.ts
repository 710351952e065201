/**
 * Chunk selection for multi-source downloads: which chunk a source should be
 * asked for next. In order while every source holds everything, rarest first
 * once partial holders' chunk maps are known, and endgame (the last chunks
 * asked of a second source) when nothing else is left.
 *
 * @module
 */

/** What the picker needs to know of a source. */
export interface SourceView {
  /** Stable id of the source within one download. */
  readonly key: string;
  /** `null` when the source holds every chunk, else its bitfield. */
  readonly bitfield: Uint8Array | null;
  /** Whether the source has been dropped. */
  readonly dropped: boolean;
}

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

/** How many candidates rarest-first compares per pick. */
const RAREST_WINDOW = 32;
/** Most sources fetching the same chunk in endgame. */
const MAX_DUPLICATES = 2;

/**
 * Whether bit `index` is set in a bitfield (most significant bit first).
 *
 * @param bitfield The bitfield.
 * @param index Bit index.
 * @returns Whether the bit is set.
 *
 * @example
 * ```ts
 * import { hasBit } from "./scheduler.ts";
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
 * @example
 * ```ts
 * import { packBitfield } from "./scheduler.ts";
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
 * Tracks each chunk's state (missing, in flight, done) and chooses the next
 * chunk for a source.
 *
 * @example Picking in order from a complete source
 * ```ts
 * import { ChunkPicker } from "./scheduler.ts";
 * const picker = new ChunkPicker(new Uint8Array(3));
 * const source = { key: "a", bitfield: null, dropped: false };
 * if (picker.pick(source, [source])?.index !== 0) throw new Error("expected 0");
 * ```
 */
export class ChunkPicker {
  readonly #state: Uint8Array;
  readonly #requesters = new Map<number, Set<string>>();
  #cursor = 0;
  #done = 0;
  #listeners: (() => void)[] = [];

  /**
   * Creates a picker.
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
   * Chooses the next chunk to ask `source` for, and marks it in flight.
   *
   * @param source The source asking.
   * @param sources Every source of the download (for rarity).
   * @returns The pick, or `undefined` when the source has nothing useful.
   */
  pick(source: SourceView, sources: readonly SourceView[]): Pick | undefined {
    const has = (i: number) =>
      source.bitfield === null || hasBit(source.bitfield, i);
    const partial = sources.some((s) => !s.dropped && s.bitfield !== null);
    while (
      this.#cursor < this.#state.length && this.#state[this.#cursor] !== MISSING
    ) {
      this.#cursor++;
    }
    let best = -1;
    let bestRarity = Infinity;
    let seen = 0;
    for (let i = this.#cursor; i < this.#state.length; i++) {
      if (this.#state[i] !== MISSING || !has(i)) continue;
      if (!partial) {
        best = i;
        break;
      }
      let rarity = 0;
      for (const s of sources) {
        if (!s.dropped && (s.bitfield === null || hasBit(s.bitfield, i))) {
          rarity++;
        }
      }
      if (rarity < bestRarity) {
        best = i;
        bestRarity = rarity;
      }
      if (++seen >= RAREST_WINDOW) break;
    }
    if (best >= 0) {
      this.#state[best] = IN_FLIGHT;
      this.#requesters.set(best, new Set([source.key]));
      return { index: best, duplicate: false };
    }
    // Endgame: nothing missing for this source; help with chunks in flight
    // elsewhere, fewest requesters first.
    let endgame = -1;
    let fewest = MAX_DUPLICATES;
    for (const [i, requesters] of this.#requesters) {
      if (requesters.has(source.key) || !has(i)) continue;
      if (requesters.size < fewest) {
        endgame = i;
        fewest = requesters.size;
      }
    }
    if (endgame < 0) return undefined;
    this.#requesters.get(endgame)!.add(source.key);
    return { index: endgame, duplicate: true };
  }

  /**
   * Marks a chunk verified.
   *
   * @param index Chunk index.
   * @returns Keys of other sources still fetching it (to cancel), or
   *   `undefined` if it was already done.
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
   * Resolves at the next state change, or after `timeoutMs`.
   *
   * @param timeoutMs Longest wait.
   */
  changed(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      const listeners = this.#listeners;
      function done() {
        clearTimeout(timer);
        const i = listeners.indexOf(done);
        if (i >= 0) listeners.splice(i, 1);
        resolve();
      }
      listeners.push(done);
    });
  }

  /** Wakes every waiter of {@linkcode ChunkPicker.changed} now. */
  wake(): void {
    this.#notify();
  }

  #notify(): void {
    // Copy first: each listener removes itself from the array it joined.
    const listeners = [...this.#listeners];
    this.#listeners = [];
    for (const listener of listeners) listener();
  }
}
