/**
 * The default {@linkcode TrackerStore}: the tracker's state in this process's
 * memory, over the indexed {@linkcode Registry}. Each method runs to its end
 * without awaiting, so each is atomic.
 *
 * @module
 */
import type { FileAnnouncement, PeerInfo } from "../protocol/messages.ts";
import { Registry } from "./registry.ts";
import {
  type ApplyChangesReply,
  type ApplyChangesResult,
  type Clock,
  type FileChanges,
  type PeerQuery,
  type PeerRecord,
  type PeerRegistration,
  type SearchOptions,
  type SearchResult,
  type SeedAnnouncement,
  type SeedList,
  type SeedListOptions,
  type StoredFile,
  systemClock,
  type TrackerStore,
} from "./store.ts";

/** Most expired addresses kept for {@linkcode MemoryStore.expire}. */
const MAX_PENDING_EXPIRED = 100_000;

/** Options for {@linkcode MemoryStore}. */
export interface MemoryStoreOptions {
  /** A peer not heard from for this long is gone, ms. @default {90000} */
  expiryMs?: number;
  /** The clock liveness is measured by. @default {systemClock} */
  clock?: Clock;
  /**
   * Most peers (ports) registered from one network: an IPv4 address, or an
   * IPv6 /64.
   *
   * @default {128}
   */
  maxPeersPerAddress?: number;
  /**
   * Most files all peers of one network may announce together.
   *
   * @default {100000}
   */
  maxFilesPerAddress?: number;
  /** Random numbers in [0, 1) that order replies. @default {Math.random} */
  random?: () => number;
  /**
   * Told at once of each peer dropped because it expired. When given,
   * {@linkcode MemoryStore.expire} no longer returns those addresses.
   */
  onExpire?: (address: string) => void;
}

/**
 * Tracker state in memory: the default store of a tracker.
 *
 * @example Registering a peer and listing its file
 * ```ts
 * import { MemoryStore } from "@shoal/shoal/tracker";
 * const store = new MemoryStore({ expiryMs: 1000 });
 * await store.register({
 *   address: "127.0.0.1:10001",
 *   protocol: "shoal",
 *   files: [{ name: "a.txt", id: "a".repeat(64), size: 5 }],
 * });
 * const { files } = await store.search();
 * if (files.length !== 1) throw new Error("missing file");
 * ```
 */
export class MemoryStore implements TrackerStore {
  readonly #registry: Registry;
  readonly #pending: string[] = [];

  /**
   * Creates an empty store.
   *
   * @param options Expiry, clock, limits.
   */
  constructor(options: MemoryStoreOptions = {}) {
    const clock = options.clock ?? systemClock;
    const onExpire = options.onExpire ?? ((address: string) => {
      if (this.#pending.length >= MAX_PENDING_EXPIRED) this.#pending.shift();
      this.#pending.push(address);
    });
    this.#registry = new Registry({
      now: () => clock.now(),
      onExpire,
      ...(options.expiryMs !== undefined ? { expiryMs: options.expiryMs } : {}),
      ...(options.maxPeersPerAddress !== undefined
        ? { maxPeersPerAddress: options.maxPeersPerAddress }
        : {}),
      ...(options.maxFilesPerAddress !== undefined
        ? { maxFilesPerAddress: options.maxFilesPerAddress }
        : {}),
      ...(options.random ? { random: options.random } : {}),
    });
  }

  /**
   * {@inheritDoc TrackerStore.register}
   *
   * @param registration The peer and its files.
   * @returns `"ok"`, or which per-network limit refused it.
   */
  register(registration: PeerRegistration): Promise<ApplyChangesResult> {
    const { address, protocol, files, source, key } = registration;
    return Promise.resolve(
      this.#registry.upsert(address, protocol, files, source, key),
    );
  }

  /**
   * {@inheritDoc TrackerStore.replaceFiles}
   *
   * @param address The peer.
   * @param files Its full file list.
   * @returns `"ok"`, `"unknown_peer"` or `"too_many_files"`.
   */
  replaceFiles(
    address: string,
    files: readonly (FileAnnouncement | StoredFile)[],
  ): Promise<ApplyChangesResult> {
    return Promise.resolve(this.#registry.replaceFiles(address, files));
  }

  /**
   * {@inheritDoc TrackerStore.applyChanges}
   *
   * @param address The peer.
   * @param changes The announce.
   * @returns What it did and the peer's sequence number.
   */
  applyChanges(
    address: string,
    changes: FileChanges,
  ): Promise<ApplyChangesReply> {
    const result = this.#registry.applyChanges(
      address,
      changes.seq,
      changes.added,
      changes.removed,
      changes.maxFiles,
    );
    const seq = this.#registry.status(address)?.seq ?? 0;
    return Promise.resolve({ result, seq });
  }

  /**
   * {@inheritDoc TrackerStore.touch}
   *
   * @param address The peer.
   * @returns `false` if it is unknown or expired.
   */
  touch(address: string): Promise<boolean> {
    return Promise.resolve(this.#registry.touch(address));
  }

  /**
   * {@inheritDoc TrackerStore.seedAnnounce}
   *
   * @param announcement The command, peer, names and source.
   * @returns `"ok"`, `"unknown_peer"`, or which limit refused it.
   */
  seedAnnounce(announcement: SeedAnnouncement): Promise<ApplyChangesResult> {
    const { command, address, source } = announcement;
    const files = announcement.files?.map((name) => ({
      name,
      id: null,
      size: null,
    }));
    const registry = this.#registry;
    const known = registry.status(address);
    let result: ApplyChangesResult;
    if (
      command === "register" ||
      // Unknown: a heartbeat with files registers it again. Known over
      // Shoal: it is a seed peer from here on (its files have no ids).
      (files && known?.protocol !== "legacy")
    ) {
      result = registry.upsert(address, "legacy", files ?? [], source);
    } else if (!known) {
      result = "unknown_peer";
    } else if (files) {
      result = registry.replaceFiles(address, files);
    } else {
      result = registry.touch(address) ? "ok" : "unknown_peer";
    }
    return Promise.resolve(result);
  }

  /**
   * {@inheritDoc TrackerStore.unregister}
   *
   * @param address The peer.
   * @returns Whether it was known.
   */
  unregister(address: string): Promise<boolean> {
    return Promise.resolve(this.#registry.remove(address));
  }

  /**
   * {@inheritDoc TrackerStore.get}
   *
   * @param address The peer.
   * @returns A copy of its record, or `undefined`.
   */
  get(address: string): Promise<PeerRecord | undefined> {
    // The registry builds a fresh copy.
    return Promise.resolve(this.#registry.get(address));
  }

  /**
   * {@inheritDoc TrackerStore.getPeers}
   *
   * @param query `id` or `name`.
   * @param limit Most holders.
   * @returns The holders.
   */
  getPeers(query: PeerQuery, limit?: number): Promise<PeerInfo[]> {
    return Promise.resolve(this.#registry.getPeers(query, limit));
  }

  /**
   * {@inheritDoc TrackerStore.search}
   *
   * @param query Substring or glob; everything when absent.
   * @param options The bounds.
   * @returns The entries, whether they were cut short, and the cost.
   */
  search(query?: string, options?: SearchOptions): Promise<SearchResult> {
    return Promise.resolve(this.#registry.search(query, options));
  }

  /**
   * {@inheritDoc TrackerStore.seedList}
   *
   * @param options The bounds.
   * @returns The map and whether it was cut short.
   */
  seedList(options: SeedListOptions = {}): Promise<SeedList> {
    return Promise.resolve(
      this.#registry.seedList(options.limit, {
        ...(options.holdersPerName !== undefined
          ? { holdersPerName: options.holdersPerName }
          : {}),
        ...(options.maxBytes !== undefined
          ? { maxBytes: options.maxBytes }
          : {}),
      }),
    );
  }

  /**
   * {@inheritDoc TrackerStore.expire}
   *
   * @returns The addresses dropped since the last call (none when an
   *   `onExpire` callback was given: it was told instead).
   */
  expire(): Promise<string[]> {
    this.#registry.sweep();
    return Promise.resolve(this.#pending.splice(0));
  }

  /**
   * {@inheritDoc TrackerStore.size}
   *
   * @returns Peers held.
   */
  size(): Promise<number> {
    return Promise.resolve(this.#registry.size);
  }
}
