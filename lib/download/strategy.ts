/**
 * The download strategy seam: which chunk to ask which source for next,
 * given what each source holds and what is done or in flight. The default,
 * {@linkcode rarestFirst}, asks in order while every source holds
 * everything, rarest first once partial holders are known, and in endgame
 * asks a second source for the chunks still in flight.
 *
 * @module
 */
import { type ChunkBoard, hasBit } from "./scheduler.ts";

/**
 * Chooses chunks for one download. The download pushes in what it learns of
 * each source (whole maps, single new chunks, departures) and asks
 * {@linkcode ChunkChooser.next} whenever a source has room for a request.
 */
export interface ChunkChooser {
  /**
   * A source joined, or its whole chunk map was learnt again.
   *
   * @param key Stable id of the source within the download.
   * @param chunks Its bitfield (most significant bit first), or `null` when
   *   it holds every chunk.
   */
  setSource(key: string, chunks: Uint8Array | null): void;
  /**
   * A source announced one more chunk (a pushed `have`).
   *
   * @param key The source.
   * @param index The chunk it now holds.
   */
  addChunk(key: string, index: number): void;
  /**
   * A source left (dropped, closed, banned).
   *
   * @param key The source.
   */
  removeSource(key: string): void;
  /**
   * The chunk to ask `key` for next: a missing chunk it holds, or in
   * endgame one in flight elsewhere. The download records the request on
   * the board; the chooser only reads the board.
   *
   * @param key The source with room for a request.
   * @returns A chunk index, or `undefined` when the source has nothing
   *   useful now.
   */
  next(key: string): number | undefined;
}

/**
 * A download strategy: makes one {@linkcode ChunkChooser} per download, so
 * one strategy value serves any number of downloads.
 *
 * @example A strategy that records what it chooses
 * ```ts ignore
 * import { download } from "@shoal/shoal";
 * import { rarestFirst, type DownloadStrategy } from "@shoal/shoal/download";
 * const picks: number[] = [];
 * const inner = rarestFirst();
 * const recording: DownloadStrategy = {
 *   choose(board) {
 *     const chooser = inner.choose(board);
 *     return {
 *       ...chooser,
 *       next(key) {
 *         const index = chooser.next(key);
 *         if (index !== undefined) picks.push(index);
 *         return index;
 *       },
 *     };
 *   },
 * };
 * await download("a.txt", {
 *   tracker: "127.0.0.1:9000",
 *   outDir: "./downloads",
 *   strategy: recording,
 * });
 * ```
 */
export interface DownloadStrategy {
  /**
   * Starts choosing for one download.
   *
   * @param board The download's chunk states (read only for the strategy).
   * @returns The chooser of that download.
   */
  choose(board: ChunkBoard): ChunkChooser;
}

/** Options for {@linkcode rarestFirst}. */
export interface RarestFirstOptions {
  /**
   * Candidates compared per choice: the first this many missing chunks the
   * source holds.
   *
   * @default {32}
   */
  window?: number;
  /**
   * Most sources fetching one chunk in endgame.
   *
   * @default {2}
   */
  maxDuplicates?: number;
}

/**
 * The default strategy: in chunk order while every source holds
 * everything; once a partial holder is known, the rarest of the next
 * `window` missing chunks the source holds (lowest index among equals);
 * when the source has no missing chunk left (endgame), a chunk in flight
 * elsewhere that it holds, fewest requesters first, at most
 * `maxDuplicates` sources per chunk. A source is only asked for chunks its
 * map says it holds.
 *
 * @param options Window and endgame limit.
 * @returns The strategy.
 *
 * @example Choosing for two sources
 * ```ts
 * import { ChunkBoard, rarestFirst } from "@shoal/shoal/download";
 * const board = new ChunkBoard(new Uint8Array(8));
 * const chooser = rarestFirst().choose(board);
 * chooser.setSource("seed", null);
 * chooser.setSource("leech", new Uint8Array([0b0100_0000]));
 * // Chunk 1 is held by both, every other chunk only by the seed.
 * if (chooser.next("seed") !== 0) throw new Error("expected a rarest chunk");
 * ```
 */
export function rarestFirst(
  options: RarestFirstOptions = {},
): DownloadStrategy {
  const window = options.window ?? 32;
  const maxDuplicates = options.maxDuplicates ?? 2;
  if (!(window >= 1) || !(maxDuplicates >= 1)) {
    throw new RangeError(
      `Cannot use rarest-first: window ${window} and maxDuplicates ${maxDuplicates} must be at least 1`,
    );
  }
  return {
    choose: (board) => new RarestFirstChooser(board, window, maxDuplicates),
  };
}

/** The strategy a download uses unless told otherwise. */
export const defaultStrategy: DownloadStrategy = rarestFirst();

/** Rarest-first with availability counts kept up to date as maps arrive. */
class RarestFirstChooser implements ChunkChooser {
  readonly #board: ChunkBoard;
  readonly #window: number;
  readonly #maxDuplicates: number;
  /** Each source's map (`null`: holds everything). */
  readonly #sources = new Map<string, Uint8Array | null>();
  /** Partial holders of each chunk; complete holders are counted apart. */
  readonly #partialCounts: Uint16Array;
  #complete = 0;
  #partial = 0;

  constructor(board: ChunkBoard, window: number, maxDuplicates: number) {
    this.#board = board;
    this.#window = window;
    this.#maxDuplicates = maxDuplicates;
    this.#partialCounts = new Uint16Array(board.total);
  }

  setSource(key: string, chunks: Uint8Array | null): void {
    this.removeSource(key);
    const own = chunks === null ? null : chunks.slice();
    this.#sources.set(key, own);
    this.#count(own, 1);
  }

  addChunk(key: string, index: number): void {
    const chunks = this.#sources.get(key);
    if (!chunks || index < 0 || index >= this.#board.total) return;
    if (hasBit(chunks, index)) return;
    chunks[index >>> 3]! |= 0x80 >>> (index & 7);
    this.#partialCounts[index]!++;
  }

  removeSource(key: string): void {
    if (!this.#sources.has(key)) return;
    this.#count(this.#sources.get(key)!, -1);
    this.#sources.delete(key);
  }

  next(key: string): number | undefined {
    const chunks = this.#sources.get(key);
    if (chunks === undefined) return undefined;
    const has = (i: number) => chunks === null || hasBit(chunks, i);
    return this.#missing(has) ?? this.#endgame(key, has);
  }

  #count(chunks: Uint8Array | null, delta: 1 | -1): void {
    if (chunks === null) {
      this.#complete += delta;
      return;
    }
    this.#partial += delta;
    for (let i = 0; i < this.#partialCounts.length; i++) {
      if (hasBit(chunks, i)) this.#partialCounts[i]! += delta;
    }
  }

  #missing(has: (i: number) => boolean): number | undefined {
    const board = this.#board;
    let best: number | undefined;
    let bestRarity = Infinity;
    let seen = 0;
    for (let i = board.firstMissing(); i < board.total; i++) {
      if (!board.isMissing(i) || !has(i)) continue;
      if (this.#partial === 0) return i;
      const rarity = this.#complete + this.#partialCounts[i]!;
      if (rarity < bestRarity) {
        best = i;
        bestRarity = rarity;
      }
      if (++seen >= this.#window) break;
    }
    return best;
  }

  /** Helps with chunks in flight elsewhere, fewest requesters first. */
  #endgame(key: string, has: (i: number) => boolean): number | undefined {
    let best: number | undefined;
    let fewest = this.#maxDuplicates;
    for (const [i, requesters] of this.#board.inFlight()) {
      if (requesters.has(key) || !has(i)) continue;
      if (requesters.size < fewest) {
        best = i;
        fewest = requesters.size;
      }
    }
    return best;
  }
}
