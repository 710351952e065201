/**
 * The upload policy of a peer that holds a whole file: hand out chunks the
 * swarm does not have yet, so a seeder uploads each chunk about once and the
 * leechers trade the rest among themselves.
 *
 * @module
 */
import { type Clock, monotonicClock } from "./_recent_bytes.ts";
import type { SlotDecision } from "./upload_slots.ts";

/** Options for {@linkcode SeedSpread}. */
export interface SeedSpreadOptions {
  /** Upload counts are halved this often, ms (what "recently" means). @default {60000} */
  decayMs?: number;
  /** A requester counts as active this long after its last request, ms. @default {5000} */
  activeMs?: number;
  /** What a refused requester is told to wait, ms. @default {200} */
  retryAfterMs?: number;
  /** Files tracked at once (least recently asked forgotten). @default {16} */
  maxFiles?: number;
  /** The time source. @default {monotonicClock} */
  clock?: Clock;
}

/** Whether a requester may have other sources for a chunk. */
export interface Requester {
  /** Its key (one per connection). */
  peer: string;
  /** Whether it said it serves too (`hello`): it is part of a swarm. */
  serves: boolean;
}

interface FileState {
  /** Uploads per chunk, halved every decay period. */
  counts: Uint16Array;
  /** Chunks with a count of zero. */
  never: number;
  lastDecay: number;
  /** Requesters by key: last request, and whether it was refused. */
  requesters: Map<string, { at: number; refused: boolean }>;
}

/**
 * Counts how often each chunk of a complete file went out lately, and
 * refuses a chunk already handed out while others never were, when the
 * requester has other sources. A requester is never refused twice in a
 * row, so one with no other source still gets every other request.
 *
 * @example A second copy waits while a chunk was never handed out
 * ```ts
 * import { SeedSpread } from "./seed_spread.ts";
 * const spread = new SeedSpread({ clock: { now: () => 0 } });
 * const id = "a".repeat(64);
 * const a = { peer: "a", serves: true }, b = { peer: "b", serves: true };
 * spread.request(id, 2, 0, a);
 * spread.uploaded(id, 2, 0);
 * if (spread.request(id, 2, 0, b).unchoked) throw new Error("expected a refusal");
 * ```
 */
export class SeedSpread {
  readonly #decayMs: number;
  readonly #activeMs: number;
  readonly #retryAfterMs: number;
  readonly #maxFiles: number;
  readonly #clock: Clock;
  readonly #files = new Map<string, FileState>();

  /**
   * Creates the policy.
   *
   * @param options Periods, limits and clock.
   */
  constructor(options: SeedSpreadOptions = {}) {
    this.#decayMs = options.decayMs ?? 60_000;
    this.#activeMs = options.activeMs ?? 5000;
    this.#retryAfterMs = options.retryAfterMs ?? 200;
    this.#maxFiles = options.maxFiles ?? 16;
    this.#clock = options.clock ?? monotonicClock;
  }

  /**
   * A requester asks for chunk `index` of a file this peer holds whole.
   *
   * @param id Content id.
   * @param chunks The file's chunk count.
   * @param index The chunk asked for.
   * @param requester Who asks.
   * @returns Serve it, or refuse it for a short while.
   */
  request(
    id: string,
    chunks: number,
    index: number,
    requester: Requester,
  ): SlotDecision {
    const now = this.#clock.now();
    const file = this.#file(id, chunks, now);
    const mine = file.requesters.get(requester.peer) ??
      { at: now, refused: false };
    file.requesters.delete(requester.peer);
    file.requesters.set(requester.peer, mine);
    mine.at = now;
    const refuse = !mine.refused && requester.serves &&
      (file.counts[index] ?? 0) > 0 && file.never > 0 &&
      this.#othersActive(file, requester.peer, now);
    mine.refused = refuse;
    return refuse
      ? { unchoked: false, retryAfterMs: this.#retryAfterMs }
      : { unchoked: true };
  }

  /**
   * Chunk `index` of a whole file was sent.
   *
   * @param id Content id.
   * @param chunks The file's chunk count.
   * @param index The chunk sent.
   */
  uploaded(id: string, chunks: number, index: number): void {
    const file = this.#file(id, chunks, this.#clock.now());
    const count = file.counts[index];
    if (count === undefined) return;
    if (count === 0) file.never--;
    if (count < 0xffff) file.counts[index] = count + 1;
  }

  /**
   * A requester went away.
   *
   * @param peer Its key.
   */
  leave(peer: string): void {
    for (const file of this.#files.values()) file.requesters.delete(peer);
  }

  /**
   * Chunks of a file not handed out lately.
   *
   * @param id Content id.
   * @returns Their number, or `undefined` for a file not tracked.
   */
  neverUploaded(id: string): number | undefined {
    return this.#files.get(id)?.never;
  }

  /** Whether another requester asked for this file lately. */
  #othersActive(file: FileState, peer: string, now: number): boolean {
    for (const [key, r] of file.requesters) {
      if (key !== peer && now - r.at <= this.#activeMs) return true;
    }
    return false;
  }

  #file(id: string, chunks: number, now: number): FileState {
    let file = this.#files.get(id);
    if (!file || file.counts.length !== chunks) {
      file = {
        counts: new Uint16Array(chunks),
        never: chunks,
        lastDecay: now,
        requesters: new Map(),
      };
    }
    this.#files.delete(id); // re-inserted last: most recently asked
    this.#files.set(id, file);
    if (this.#files.size > this.#maxFiles) {
      this.#files.delete(this.#files.keys().next().value!);
    }
    if (now - file.lastDecay >= this.#decayMs) this.#decay(file, now);
    return file;
  }

  #decay(file: FileState, now: number): void {
    file.lastDecay = now;
    let never = 0;
    for (let i = 0; i < file.counts.length; i++) {
      const halved = file.counts[i]! >>> 1;
      file.counts[i] = halved;
      if (halved === 0) never++;
    }
    file.never = never;
  }
}
