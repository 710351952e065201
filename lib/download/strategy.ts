/**
 * The download strategy seam: which chunk to ask which source for next,
 * given what each source holds and what is done or in flight. The default,
 * {@linkcode rarestFirst}, asks for the rarest chunk among the connected
 * sources, random among equals (so the leechers of a flash crowd hold
 * different chunks from the start and trade them), and in endgame asks a
 * second source for the chunks still in flight.
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
   * Candidates compared per choice: this many missing chunks the source
   * holds, taken from a random place in its list, so a choice costs
   * O(window) whatever the number of chunks.
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
  /**
   * The random source (uniform in [0, 1)) that breaks ties and picks where
   * to look; tests pass a seeded one.
   *
   * @default {Math.random}
   */
  random?: () => number;
}

/**
 * The default strategy: among `window` missing chunks the source holds,
 * taken from a random place, the one the fewest connected sources hold,
 * random among equals; so even when every source holds everything the
 * chunks are asked in a random order, and the downloaders of one file hold
 * different chunks early, which they then trade. When no chunk is missing
 * any more (endgame: every one is done or asked), a chunk in flight
 * elsewhere that the source holds,
 * fewest requesters first, at most `maxDuplicates` sources per chunk. A
 * source is only asked for chunks its map says it holds.
 *
 * @param options Window, endgame limit and random source.
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
 * if (chooser.next("seed") === 1) throw new Error("expected a rarer chunk");
 * ```
 */
export function rarestFirst(
  options: RarestFirstOptions = {},
): DownloadStrategy {
  const window = options.window ?? 32;
  const maxDuplicates = options.maxDuplicates ?? 2;
  const random = options.random ?? Math.random;
  if (!(window >= 1) || !(maxDuplicates >= 1)) {
    throw new RangeError(
      `Cannot use rarest-first: window ${window} and maxDuplicates ${maxDuplicates} must be at least 1`,
    );
  }
  return {
    choose: (board) =>
      new RarestFirstChooser(board, window, maxDuplicates, random),
  };
}

/** The strategy a download uses unless told otherwise. */
export const defaultStrategy: DownloadStrategy = rarestFirst();

/** What the chooser knows of one source. */
interface SourceView {
  /** Its map (`null`: holds everything). */
  bits: Uint8Array | null;
  /**
   * The chunks it holds that were not done when last looked at, in random
   * order (partial sources only; done ones are dropped lazily).
   */
  list: number[];
}

/** Rarest-first with availability counts kept up to date as maps arrive. */
class RarestFirstChooser implements ChunkChooser {
  readonly #board: ChunkBoard;
  readonly #window: number;
  readonly #maxDuplicates: number;
  readonly #random: () => number;
  readonly #sources = new Map<string, SourceView>();
  /** Partial holders of each chunk; complete holders hold every chunk. */
  readonly #partialCounts: Uint16Array;
  #partial = 0;
  /** Chunks not done when last looked at, shuffled (for complete sources). */
  #pool: number[] | undefined;

  constructor(
    board: ChunkBoard,
    window: number,
    maxDuplicates: number,
    random: () => number,
  ) {
    this.#board = board;
    this.#window = window;
    this.#maxDuplicates = maxDuplicates;
    this.#random = random;
    this.#partialCounts = new Uint16Array(board.total);
  }

  setSource(key: string, chunks: Uint8Array | null): void {
    this.removeSource(key);
    const view: SourceView = { bits: null, list: [] };
    if (chunks !== null) {
      const board = this.#board;
      view.bits = chunks.slice();
      for (let i = 0; i < board.total; i++) {
        if (!hasBit(chunks, i)) continue;
        this.#partialCounts[i]!++;
        if (!board.isDone(i)) view.list.push(i);
      }
      this.#shuffle(view.list);
      this.#partial++;
    }
    this.#sources.set(key, view);
  }

  addChunk(key: string, index: number): void {
    const view = this.#sources.get(key);
    const bits = view?.bits;
    if (!bits || index < 0 || index >= this.#board.total) return;
    if (hasBit(bits, index)) return;
    bits[index >>> 3]! |= 0x80 >>> (index & 7);
    this.#partialCounts[index]!++;
    if (!this.#board.isDone(index)) view!.list.push(index);
  }

  removeSource(key: string): void {
    const view = this.#sources.get(key);
    if (!view) return;
    this.#sources.delete(key);
    if (view.bits === null) return;
    this.#partial--;
    for (let i = 0; i < this.#partialCounts.length; i++) {
      if (hasBit(view.bits, i)) this.#partialCounts[i]!--;
    }
  }

  next(key: string): number | undefined {
    const view = this.#sources.get(key);
    if (view === undefined) return undefined;
    const bits = view.bits;
    const list = bits === null ? this.#completePool() : view.list;
    return this.#rarest(list, bits === null && this.#partial === 0) ??
      this.#endgame(key, (i) => bits === null || hasBit(bits, i));
  }

  /** The shuffled list of chunks not done, made at the first use. */
  #completePool(): number[] {
    if (this.#pool === undefined) {
      const board = this.#board;
      this.#pool = [];
      for (let i = 0; i < board.total; i++) {
        if (!board.isDone(i)) this.#pool.push(i);
      }
      this.#shuffle(this.#pool);
    }
    return this.#pool;
  }

  /**
   * The rarest missing chunk among `window` of `list`, looked at from a
   * random place on (random among equals); done chunks met on the way are
   * dropped from `list` afterwards. With `first`, the first missing one (every chunk
   * is equally rare).
   */
  #rarest(list: number[], first: boolean): number | undefined {
    const board = this.#board;
    const counts = this.#partialCounts;
    const n = list.length;
    const start = Math.floor(this.#random() * n);
    const dead: number[] = [];
    let best: number | undefined;
    let bestRarity = Infinity;
    let ties = 0;
    let seen = 0;
    for (let step = 0; step < n && seen < this.#window; step++) {
      const at = start + step < n ? start + step : start + step - n;
      const index = list[at]!;
      if (board.isDone(index)) {
        dead.push(at);
        continue;
      }
      if (!board.isMissing(index)) continue; // In flight.
      if (first) {
        best = index;
        break;
      }
      const rarity = counts[index]!;
      if (rarity < bestRarity) {
        best = index;
        bestRarity = rarity;
        ties = 1;
      } else if (rarity === bestRarity && this.#random() * ++ties < 1) {
        best = index;
      }
      seen++;
    }
    // Drop the done chunks met, highest place first: each takes the last
    // entry, which is then never one of them.
    dead.sort((a, b) => b - a);
    for (const at of dead) {
      list[at] = list[list.length - 1]!;
      list.pop();
    }
    return best;
  }

  /**
   * Helps with chunks in flight elsewhere, fewest requesters first, once no
   * chunk is missing (endgame): before that, a duplicate would spend an
   * uplink the swarm needs, and scanning for one on every wake costs CPU.
   */
  #endgame(key: string, has: (i: number) => boolean): number | undefined {
    if (this.#board.firstMissing() < this.#board.total) return undefined;
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

  /** Fisher–Yates with the chooser's random source. */
  #shuffle(list: number[]): void {
    for (let i = list.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      const swap = list[i]!;
      list[i] = list[j]!;
      list[j] = swap;
    }
  }
}
