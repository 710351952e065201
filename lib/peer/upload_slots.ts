/**
 * The upload policy of a peer with a capped uplink: a few peers at a time are
 * served at full rate instead of all of them as a trickle, rotating every few
 * seconds, with one optimistic slot for peers not served lately.
 *
 * @module
 */
import { type Clock, monotonicClock } from "./_recent_bytes.ts";

export type { Clock } from "./_recent_bytes.ts";

/** Options for {@linkcode UploadSlots}. */
export interface UploadSlotsOptions {
  /** Peers served at once (one of them optimistic). @default {4} */
  slots?: number;
  /** How often the slots are given out again, ms. @default {5000} */
  rotateMs?: number;
  /**
   * How long a peer counts as wanting chunks after its last request, ms;
   * only such peers get slots.
   *
   * @default {3000}
   */
  interestMs?: number;
  /**
   * A slot holder that asked nothing for this long gives up its slot to a
   * waiting peer before the next rotation, ms.
   *
   * @default {1500}
   */
  idleMs?: number;
  /**
   * Longest a refused peer is told to wait before asking again, ms: a slot
   * may free before the next rotation.
   *
   * @default {1000}
   */
  maxRetryAfterMs?: number;
  /**
   * Bytes this peer received lately from the peer behind a key (it uploads
   * to us): such peers are preferred for the regular slots.
   *
   * @default {() => 0}
   */
  reciprocity?: (peer: string) => number;
  /** The time source. @default {monotonicClock} */
  clock?: Clock;
  /** Random numbers in [0, 1), to break ties. @default {Math.random} */
  random?: () => number;
}

/** What the policy says of a request: serve it, or not before a while. */
export type SlotDecision =
  | { unchoked: true }
  | { unchoked: false; retryAfterMs: number };

interface PeerState {
  key: string;
  /** Last request, ms. */
  lastRequest: number;
  /** Last time it held a slot, ms (`-Infinity`: never served). */
  lastServed: number;
  slot: "regular" | "optimistic" | undefined;
  /** Random tie breaker, drawn again at every rotation. */
  tie: number;
}

/**
 * Upload slots over the peers that ask this one for chunks.
 *
 * @example Two slots, three peers
 * ```ts
 * import { UploadSlots } from "./upload_slots.ts";
 * let now = 0;
 * const slots = new UploadSlots({ slots: 2, clock: { now: () => now } });
 * slots.request("a");
 * slots.request("b");
 * if (slots.request("c").unchoked) throw new Error("a third peer got a slot");
 * ```
 */
export class UploadSlots {
  readonly #slots: number;
  readonly #rotateMs: number;
  readonly #interestMs: number;
  readonly #idleMs: number;
  readonly #maxRetryAfterMs: number;
  readonly #reciprocity: (peer: string) => number;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #peers = new Map<string, PeerState>();
  #nextRotation = -Infinity;

  /**
   * Creates the policy.
   *
   * @param options Slots, periods, reciprocity and clock.
   */
  constructor(options: UploadSlotsOptions = {}) {
    this.#slots = Math.max(1, options.slots ?? 4);
    this.#rotateMs = options.rotateMs ?? 5000;
    this.#interestMs = options.interestMs ?? 3000;
    this.#idleMs = options.idleMs ?? 1500;
    this.#maxRetryAfterMs = options.maxRetryAfterMs ?? 1000;
    this.#reciprocity = options.reciprocity ?? (() => 0);
    this.#clock = options.clock ?? monotonicClock;
    this.#random = options.random ?? Math.random;
  }

  /**
   * A peer asks for a chunk: whether to serve it now.
   *
   * @param peer The asking peer's key (one per connection).
   * @returns Serve it, or refuse it with how long to wait.
   */
  request(peer: string): SlotDecision {
    const now = this.#clock.now();
    let state = this.#peers.get(peer);
    if (!state) {
      state = {
        key: peer,
        lastRequest: now,
        lastServed: -Infinity,
        slot: undefined,
        tie: this.#random(),
      };
      this.#peers.set(peer, state);
    }
    state.lastRequest = now;
    if (now >= this.#nextRotation) this.#rotate(now);
    else this.#fill(now);
    if (state.slot !== undefined) {
      state.lastServed = now;
      return { unchoked: true };
    }
    const untilRotation = Math.max(1, this.#nextRotation - now);
    return {
      unchoked: false,
      retryAfterMs: Math.ceil(Math.min(untilRotation, this.#maxRetryAfterMs)),
    };
  }

  /**
   * A peer went away (its connection closed): its slot is free.
   *
   * @param peer Its key.
   */
  leave(peer: string): void {
    this.#peers.delete(peer);
  }

  /**
   * The peers holding a slot now.
   *
   * @returns Their keys, regular slots first.
   */
  unchoked(): string[] {
    const held = [...this.#peers.values()].filter((p) => p.slot);
    held.sort((a, b) =>
      (a.slot === "regular" ? 0 : 1) - (b.slot === "regular" ? 0 : 1)
    );
    return held.map((p) => p.key);
  }

  /** Gives every slot out again. */
  #rotate(now: number): void {
    this.#nextRotation = now + this.#rotateMs;
    const interested = this.#interested(now);
    for (const p of this.#peers.values()) {
      p.slot = undefined;
      p.tie = this.#random();
    }
    if (interested.length <= this.#slots) {
      for (const p of interested) p.slot = "regular";
      return;
    }
    // Regular slots: peers that upload to us first, then those served
    // least lately (a seeder, with no one uploading to it, goes round).
    const scored = interested.map((p) => ({ p, up: this.#reciprocity(p.key) }));
    scored.sort((a, b) =>
      b.up - a.up || a.p.lastServed - b.p.lastServed || a.p.tie - b.p.tie
    );
    const regular = scored.slice(0, this.#slots - 1).map((s) => s.p);
    for (const p of regular) p.slot = "regular";
    // The optimistic slot: newcomers first, then the longest unserved.
    const optimistic = this.#longestWaiting(interested);
    if (optimistic) optimistic.slot = "optimistic";
  }

  /** Frees the slots of peers gone quiet and gives them to waiting peers. */
  #fill(now: number): void {
    let free = this.#slots;
    for (const p of this.#peers.values()) {
      if (p.slot === undefined) continue;
      if (now - p.lastRequest > this.#idleMs) p.slot = undefined;
      else free--;
    }
    // No list is built: most requests come from slot holders and find
    // every slot taken, or no one waiting.
    while (free-- > 0) {
      const next = this.#longestWaiting(this.#peers.values(), now);
      if (!next) return;
      next.slot = "optimistic";
    }
  }

  /** Peers that asked lately, in a stable order. */
  #interested(now: number): PeerState[] {
    return [...this.#peers.values()].filter((p) =>
      now - p.lastRequest <= this.#interestMs
    );
  }

  /**
   * The unserved peer that waited longest (never served first), among
   * those that asked lately when `now` is given.
   */
  #longestWaiting(
    peers: Iterable<PeerState>,
    now?: number,
  ): PeerState | undefined {
    let best: PeerState | undefined;
    for (const p of peers) {
      if (p.slot !== undefined) continue;
      if (now !== undefined && now - p.lastRequest > this.#interestMs) {
        continue;
      }
      if (
        !best || p.lastServed < best.lastServed ||
        (p.lastServed === best.lastServed && p.tie < best.tie)
      ) {
        best = p;
      }
    }
    return best;
  }
}
