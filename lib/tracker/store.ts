/**
 * The tracker's storage seam: {@linkcode TrackerStore}, every operation the
 * tracker service needs of its state, each one async and atomic. The
 * in-memory `MemoryStore` is the default; a shared store (Redis) implements
 * each method as one transaction or script.
 *
 * @module
 */
import type {
  FileAnnouncement,
  ListedFile,
  PeerInfo,
} from "../protocol/messages.ts";

/** A source of the current time in milliseconds. */
export interface Clock {
  /**
   * The current time.
   *
   * @returns Milliseconds (any epoch, but one clock for one store).
   */
  now(): number;
}

/**
 * The wall clock, `Date.now()`: the default of stores that keep liveness.
 *
 * @example Reading the time
 * ```ts
 * import { systemClock } from "@shoal/shoal/tracker";
 * if (systemClock.now() <= 0) throw new Error("no time");
 * ```
 */
export const systemClock: Clock = { now: () => Date.now() };

/**
 * A shared store could not be reached (or did not answer in time). The
 * tracker answers the request with a `store_unavailable` error; the store
 * reconnects by itself.
 *
 * @example Telling a store outage from a bug
 * ```ts
 * import { StoreUnavailableError } from "@shoal/shoal/tracker";
 * const error: unknown = new StoreUnavailableError("Cannot reach Redis: refused");
 * if (!(error instanceof StoreUnavailableError)) throw error;
 * ```
 */
export class StoreUnavailableError extends Error {
  /**
   * Creates the error.
   *
   * @param message What could not be reached, and why.
   * @param options The underlying error as `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}

/** What a change to the tracker's state did. */
export type ApplyChangesResult =
  /** Applied. */
  | "ok"
  /** The peer is unknown or expired: it must register again. */
  | "unknown_peer"
  /** The sequence number is not the next one: the peer must resync. */
  | "resync"
  /**
   * The result would exceed the per-peer or per-network file limit: nothing
   * changed.
   */
  | "too_many_files"
  /** Its network already has the most peers allowed: nothing changed. */
  | "too_many_peers";

/** A file as the store keeps it. */
export interface StoredFile {
  /** Name at the holder. */
  name: string;
  /** Content id, or `null` for a seed-protocol peer's file. */
  id: string | null;
  /** Size, or `null` when unknown (seed-protocol peer). */
  size: number | null;
}

/** One registered peer. */
export interface PeerRecord {
  /** Identity: `ip:port` as the tracker sees it. */
  address: string;
  /** Protocol the peer serves. */
  protocol: "shoal" | "legacy";
  /** When it was last heard from (ms, by the store's clock). */
  lastSeen: number;
  /** Files it shares by name (legacy peers: `id` and `size` null). */
  files: Map<string, StoredFile>;
  /**
   * Sequence number of the last incremental announce applied (0 after a
   * full list).
   */
  seq: number;
  /**
   * The network it registered from (an IPv4 address or an IPv6 /64):
   * per-network limits count it there, and replies spread holders across
   * networks.
   */
  network: string;
  /**
   * The public key (64 hex digits) the peer proved in the secure handshake
   * of its registration; absent for seed-protocol and plaintext peers.
   */
  key?: string;
}

/** A full registration: a peer and every file it shares. */
export interface PeerRegistration {
  /** The peer's identity and serving address, `host:port`. */
  address: string;
  /** The protocol it serves. */
  protocol: "shoal" | "legacy";
  /** Its files (seed-protocol peers: ids and sizes null). */
  files: readonly (FileAnnouncement | StoredFile)[];
  /**
   * The IP it connected from (per-network limits count it there).
   *
   * @default {the host of `address`}
   */
  source?: string;
  /**
   * The public key (64 hex digits) it proved in its secure handshake:
   * returned with it by `getPeers`, so downloaders can check it.
   *
   * @default {undefined (none proved)}
   */
  key?: string;
}

/** An incremental announce: changes since the last one. */
export interface FileChanges {
  /** Its sequence number: the last applied plus one. */
  seq: number;
  /** Files new or changed, by name. */
  added: readonly FileAnnouncement[];
  /** Names no longer shared. */
  removed: readonly string[];
  /** Most files the peer may hold afterwards. @default {Infinity} */
  maxFiles?: number;
}

/** What {@linkcode TrackerStore.applyChanges} did. */
export interface ApplyChangesReply {
  /** Whether it applied, or why not. */
  result: ApplyChangesResult;
  /**
   * The peer's sequence number after the call: on `"resync"`, the next
   * announce it must send is `seq + 1` (0 when the peer is unknown).
   */
  seq: number;
}

/**
 * A seed-protocol `register` or `heartbeat`, applied in one step: a
 * register (or a heartbeat with files from a peer not known as a seed peer)
 * registers it as a seed peer; a heartbeat refreshes it and, with files,
 * replaces its list.
 */
export interface SeedAnnouncement {
  /** The seed command. */
  command: "register" | "heartbeat";
  /** The peer's `host:port`. */
  address: string;
  /** Its names, if sent (already capped to the per-peer limit). */
  files?: readonly string[];
  /** The IP it connected from. */
  source: string;
}

/** A `getpeers` query: by content id, or by name. */
export interface PeerQuery {
  /** Content id (wins when both are given). */
  id?: string;
  /** Name. */
  name?: string;
}

/** Bounds of a {@linkcode TrackerStore.search}. */
export interface SearchOptions {
  /** Most entries. @default {10000} */
  limit?: number;
  /** Most bytes of names (a reply's size). @default {Infinity} */
  maxBytes?: number;
  /** Most names a filtered query examines. @default {100000} */
  maxExamined?: number;
}

/** The files a {@linkcode TrackerStore.search} found. */
export interface SearchResult {
  /** One entry per content id and size, plus one per seed-protocol name. */
  files: ListedFile[];
  /** Whether entries were left out to keep within the bounds. */
  truncated: boolean;
  /** How many names were examined (the query's cost). */
  examined: number;
}

/** Bounds of a {@linkcode TrackerStore.seedList}. */
export interface SeedListOptions {
  /** Most names. @default {10000} */
  limit?: number;
  /** Most addresses per name. @default {20} */
  holdersPerName?: number;
  /** Most bytes of JSON. @default {Infinity} */
  maxBytes?: number;
}

/** The seed protocol's `list` reply body. */
export interface SeedList {
  /** name → live holder addresses, Shoal holders first. */
  filemap: Record<string, string[]>;
  /** Whether names were left out to keep within the bounds. */
  truncated: boolean;
}

/**
 * Where a tracker keeps its peers and what they share. Every method is one
 * atomic step: no other call sees it half done, so a shared store can
 * implement each as one transaction (Redis: one `MULTI` or Lua script).
 * Liveness is by the store's clock: a peer not heard from for the expiry
 * window is gone, to the millisecond, from every query.
 *
 * @example Registering a peer and finding it
 * ```ts
 * import { MemoryStore } from "@shoal/shoal/tracker";
 * const store = new MemoryStore({ expiryMs: 90_000 });
 * await store.register({
 *   address: "127.0.0.1:10001",
 *   protocol: "shoal",
 *   files: [{ name: "a.txt", id: "a".repeat(64), size: 5 }],
 * });
 * const peers = await store.getPeers({ name: "a.txt" });
 * if (peers.length !== 1) throw new Error("missing peer");
 * ```
 */
export interface TrackerStore {
  /**
   * Adds or replaces a peer with its full file list and marks it alive.
   *
   * @param registration The peer and its files.
   * @returns `"ok"`, or which per-network limit refused it (nothing
   *   changed).
   */
  register(registration: PeerRegistration): Promise<ApplyChangesResult>;
  /**
   * Refreshes a live peer and replaces its whole file list.
   *
   * @param address The peer.
   * @param files Its full file list.
   * @returns `"ok"`, `"unknown_peer"`, or `"too_many_files"` (the peer is
   *   refreshed, its files left as they were).
   */
  replaceFiles(
    address: string,
    files: readonly (FileAnnouncement | StoredFile)[],
  ): Promise<ApplyChangesResult>;
  /**
   * Refreshes a live peer and applies an incremental announce if its
   * sequence number is the next one.
   *
   * @param address The peer.
   * @param changes The announce.
   * @returns What it did and the peer's sequence number.
   */
  applyChanges(
    address: string,
    changes: FileChanges,
  ): Promise<ApplyChangesReply>;
  /**
   * Records a heartbeat without files.
   *
   * @param address The peer.
   * @returns `false` if it is unknown or expired (it must register again).
   */
  touch(address: string): Promise<boolean>;
  /**
   * Applies a seed-protocol `register` or `heartbeat` in one step.
   *
   * @param announcement The command, peer, names and source.
   * @returns `"ok"`, `"unknown_peer"`, or which limit refused it.
   */
  seedAnnounce(announcement: SeedAnnouncement): Promise<ApplyChangesResult>;
  /**
   * Forgets a peer (a graceful leave).
   *
   * @param address The peer.
   * @returns Whether it was known.
   */
  unregister(address: string): Promise<boolean>;
  /**
   * A live peer's record: a copy the caller may keep.
   *
   * @param address The peer.
   * @returns The record, or `undefined` if unknown or expired.
   */
  get(address: string): Promise<PeerRecord | undefined>;
  /**
   * Live holders of a content id, or of any content under a name: Shoal
   * holders before seed-protocol ones, each sampled fairly across networks.
   *
   * @param query `id` or `name`.
   * @param limit Most holders. Default 200.
   * @returns The holders.
   */
  getPeers(query: PeerQuery, limit?: number): Promise<PeerInfo[]>;
  /**
   * Files held by live peers, filtered by a query, with bounded work.
   *
   * @param query Substring (case-insensitive) or glob with `*` and `?`;
   *   everything when absent. A query of 8 to 64 hex digits also matches
   *   the content ids it starts: clients resolve typed id prefixes so.
   * @param options The bounds.
   * @returns The entries, whether they were cut short, and the cost.
   */
  search(query?: string, options?: SearchOptions): Promise<SearchResult>;
  /**
   * The seed protocol's `filemap`: name → live holder addresses.
   *
   * @param options The bounds.
   * @returns The map and whether it was cut short.
   */
  seedList(options?: SeedListOptions): Promise<SeedList>;
  /**
   * Drops every expired peer.
   *
   * @returns The addresses dropped since the last call, each once (also
   *   those other operations dropped as they came due).
   */
  expire(): Promise<string[]>;
  /**
   * How many peers the store holds.
   *
   * @returns Live peers, and expired ones not yet dropped.
   */
  size(): Promise<number>;
}
