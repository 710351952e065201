/**
 * Private: the dashboard's tracker lookups, a few at a time, joined when
 * identical and cached briefly, so the API cannot spend the peer's tracker
 * rate budget however often it is asked.
 *
 * @module
 */
import { HttpError } from "./_http.ts";
import type { ListedFile, PeerInfo } from "../protocol/messages.ts";
import type { Peer } from "../peer/node.ts";

/** A peer holding listed files, as `GET /api/peers` gives it. */
export interface KnownPeer {
  /** `host:port`. */
  address: string;
  /** Which protocol it speaks. */
  protocol: PeerInfo["protocol"];
  /** How many of the looked-up files it holds. */
  files: number;
}

/** Options for {@linkcode TrackerLookups}. */
export interface TrackerLookupsOptions {
  /** Tracker calls in flight at once. @default {2} */
  concurrency?: number;
  /** Calls waiting for a slot before more are refused with 503. @default {64} */
  maxWaiting?: number;
  /** How long a holder lookup is reused. @default {5000} */
  peersTtlMs?: number;
  /** Holder lookups kept. @default {256} */
  maxCached?: number;
  /** Files whose holders make the known-peers list. @default {50} */
  sweepFiles?: number;
  /** How long a known-peers list is reused. @default {10000} */
  sweepTtlMs?: number;
  /** Clock in milliseconds. @default {performance.now} */
  clock?: () => number;
}

/**
 * Tracker calls on behalf of the dashboard. Every call takes one of a few
 * slots; identical calls in flight are joined; holders are cached for a few
 * seconds; the known-peers list (one `list` and a holder lookup per file) is
 * made at most once per `sweepTtlMs`, whoever asks.
 */
export class TrackerLookups {
  readonly #peer: Pick<Peer, "list" | "peers">;
  readonly #concurrency: number;
  readonly #maxWaiting: number;
  readonly #peersTtlMs: number;
  readonly #maxCached: number;
  readonly #sweepFiles: number;
  readonly #sweepTtlMs: number;
  readonly #clock: () => number;
  #running = 0;
  readonly #waiting: (() => void)[] = [];
  readonly #inFlight = new Map<string, Promise<unknown>>();
  readonly #holders = new Map<string, { at: number; peers: PeerInfo[] }>();
  #sweep: { at: number; result: Promise<KnownPeer[]> } | undefined;

  /**
   * @param peer The peer whose tracker is asked.
   * @param options Slots, cache times and sizes.
   */
  constructor(
    peer: Pick<Peer, "list" | "peers">,
    options: TrackerLookupsOptions = {},
  ) {
    this.#peer = peer;
    this.#concurrency = options.concurrency ?? 2;
    this.#maxWaiting = options.maxWaiting ?? 64;
    this.#peersTtlMs = options.peersTtlMs ?? 5000;
    this.#maxCached = options.maxCached ?? 256;
    this.#sweepFiles = options.sweepFiles ?? 50;
    this.#sweepTtlMs = options.sweepTtlMs ?? 10_000;
    this.#clock = options.clock ?? (() => performance.now());
  }

  /** Files on the network matching `query` (one tracker call). */
  list(query?: string): Promise<ListedFile[]> {
    return this.#once(
      `list\n${query ?? ""}`,
      () => this.#peer.list(query),
    );
  }

  /** Holders of a name or content id (at most one tracker call). */
  peers(target: string): Promise<PeerInfo[]> {
    const cached = this.#holders.get(target);
    if (cached && this.#clock() - cached.at <= this.#peersTtlMs) {
      return Promise.resolve(cached.peers);
    }
    return this.#once(`peers\n${target}`, async () => {
      const peers = await this.#peer.peers(target);
      this.#holders.delete(target);
      if (this.#holders.size >= this.#maxCached) {
        this.#holders.delete(this.#holders.keys().next().value!);
      }
      this.#holders.set(target, { at: this.#clock(), peers });
      return peers;
    });
  }

  /**
   * Holders of the first `sweepFiles` listed files, merged by address: the
   * list made less than `sweepTtlMs` ago (or being made), else a new one.
   */
  knownPeers(): Promise<KnownPeer[]> {
    const now = this.#clock();
    if (!this.#sweep || now - this.#sweep.at > this.#sweepTtlMs) {
      const result = this.#knownPeers();
      const sweep = { at: now, result };
      this.#sweep = sweep;
      // A failed sweep is not reused.
      result.catch(() => {
        if (this.#sweep === sweep) this.#sweep = undefined;
      });
    }
    return this.#sweep.result;
  }

  async #knownPeers(): Promise<KnownPeer[]> {
    const files = await this.list();
    const byAddress = new Map<string, KnownPeer>();
    const queue = files.slice(0, this.#sweepFiles);
    const worker = async () => {
      for (let file = queue.shift(); file; file = queue.shift()) {
        const holders = await this.peers(file.id ?? file.name).catch(() => []);
        for (const holder of holders) {
          const entry = byAddress.get(holder.address) ??
            { address: holder.address, protocol: holder.protocol, files: 0 };
          entry.files++;
          byAddress.set(holder.address, entry);
        }
      }
    };
    await Promise.all(
      Array.from({ length: this.#concurrency }, () => worker()),
    );
    return [...byAddress.values()].sort((a, b) =>
      a.address.localeCompare(b.address)
    );
  }

  /** Runs `call` in a slot, or joins the same call already in flight. */
  #once<T>(key: string, call: () => Promise<T>): Promise<T> {
    const running = this.#inFlight.get(key);
    if (running) return running as Promise<T>;
    const result = this.#inSlot(call).finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, result);
    return result;
  }

  async #inSlot<T>(call: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#concurrency) {
      if (this.#waiting.length >= this.#maxWaiting) {
        throw new HttpError(
          503,
          `Cannot ask the tracker: ${this.#waiting.length} lookups are waiting already`,
        );
      }
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#running++;
    }
    try {
      return await call();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}
