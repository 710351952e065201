/**
 * The tracker's state in memory (the engine of `MemoryStore`): live peers and
 * the content they hold, indexed by content id and size and by name, with
 * per-network limits and fair replies.
 * Liveness is checked at query time, so a peer that misses its heartbeats
 * vanishes exactly when its expiry passes.
 *
 * @module
 */
import type {
  FileAnnouncement,
  ListedFile,
  PeerInfo,
} from "../protocol/messages.ts";
import {
  addHolder,
  deleteHolder,
  holderCount,
  type Holders,
  hostOf,
  networkOf,
  sampleHolders,
} from "./_holder_set.ts";
import { ENTRY_BYTES, jsonBytes, ListTally } from "./_list_tally.ts";
import { NameIndex } from "./_name_index.ts";
import type { ApplyChangesResult, PeerRecord, StoredFile } from "./store.ts";

export type { ApplyChangesResult, PeerRecord, StoredFile } from "./store.ts";

/** Default most peers registered from one network (IPv4 address, IPv6 /64). */
export const DEFAULT_MAX_PEERS_PER_ADDRESS = 128;
/** Default most files announced by all peers of one network together. */
export const DEFAULT_MAX_FILES_PER_ADDRESS = 100_000;
/** Default most index entries one filtered `list` examines. */
export const DEFAULT_MAX_LIST_EXAMINED = 100_000;

/** Options for {@linkcode Registry}. */
export interface RegistryOptions {
  /**
   * A peer not heard from for this long is gone.
   *
   * @default {90000}
   */
  expiryMs?: number;
  /** Clock, in milliseconds (tests pass a fake one). @default {Date.now} */
  now?: () => number;
  /**
   * Most peers (ports) registered from one network: an IPv4 address, or an
   * IPv6 /64.
   *
   * @default {DEFAULT_MAX_PEERS_PER_ADDRESS}
   */
  maxPeersPerAddress?: number;
  /**
   * Most files all peers of one network may announce together.
   *
   * @default {DEFAULT_MAX_FILES_PER_ADDRESS}
   */
  maxFilesPerAddress?: number;
  /** Random numbers in [0, 1) that order replies. @default {Math.random} */
  random?: () => number;
  /** Called with each peer dropped because it expired. */
  onExpire?: (address: string) => void;
}

/**
 * A registered peer as the registry keeps it: its files point at the
 * shared (id, size) entries instead of holding copies (`null`: a
 * seed-protocol file, without id or size).
 */
interface Peer {
  address: string;
  protocol: "shoal" | "legacy";
  lastSeen: number;
  files: Map<string, Sized | null>;
  seq: number;
  network: string;
  /** The public key it proved, if any. */
  key?: string;
  /**
   * content id → the names it is shared under, kept only for peers with
   * more than {@linkcode IDS_MAP_MIN_FILES} files (others are scanned).
   */
  ids: Map<string, Names> | undefined;
}

/** Peers with more files than this keep a map of their names by id. */
const IDS_MAP_MIN_FILES = 32;

/** Holders of one content id, over every size announced for it. */
interface Content {
  id: string;
  /** Addresses holding the id under any name and size. */
  holders: Holders;
  /**
   * Announcements by size (usually one): a size that disagrees with the
   * others gets its own entry.
   */
  sizes: Sized | Map<number, Sized>;
}

/** Holders that announced one (id, size) pair. */
interface Sized {
  content: Content;
  size: number;
  /** Distinct addresses announcing the pair. */
  holders: number;
  /** name → how many holders use it */
  names: Tally<string> | undefined;
  /** Most common name, or `undefined` to recompute. */
  best: string | undefined;
}

/** Holders of one name. */
interface Named {
  /** Shoal holders (verified by content id). */
  shoal: Holders | undefined;
  /** Seed-protocol holders (unverifiable). */
  legacy: Holders | undefined;
  /** (id, size) → Shoal holders sharing that content under this name */
  contents: Tally<Sized> | undefined;
}

/** A single key counted more than once. */
class Counted<K> {
  constructor(public key: K, public n: number) {}
}

/**
 * Counts by key, compact for the usual case: the key itself when it is
 * counted once, a {@linkcode Counted} when one key is counted more, a map
 * for several keys.
 */
type Tally<K> = K | Counted<K> | Map<K, number>;

/** The names a peer shares one content id under (usually one). */
type Names = string | string[];

/** Names of one content examined to find its most common name. */
const MAX_NAMES_EXAMINED = 256;
/** A `list` query that also matches the content ids it starts. */
const ID_PREFIX = /^[0-9a-fA-F]{8,64}$/;

/**
 * In-memory tracker registry.
 *
 * @example Registering and listing
 * ```ts
 * import { Registry } from "./registry.ts";
 * const registry = new Registry({ expiryMs: 1000 });
 * registry.upsert("127.0.0.1:10001", "shoal", [
 *   { name: "a.txt", id: "a".repeat(64), size: 5 },
 * ]);
 * if (registry.list().length !== 1) throw new Error("missing file");
 * ```
 */
export class Registry {
  readonly #expiryMs: number;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #maxPeers: number;
  readonly #maxFiles: number;
  readonly #onExpire: ((address: string) => void) | undefined;
  /** Peers, least recently heard from first. */
  readonly #peers = new Map<string, Peer>();
  /** No peer expires before this time (see `#expireDue`). */
  #nextExpiry = -Infinity;
  readonly #contents = new Map<string, Content>();
  readonly #names = new Map<string, Named>();
  readonly #nameIndex = new NameIndex();
  /** Names with at least one seed-protocol holder. */
  readonly #legacyNames = new Set<string>();
  readonly #networks = new Map<string, { peers: number; files: number }>();

  /**
   * Creates an empty registry.
   *
   * @param options Expiry, clock, limits.
   */
  constructor(options: RegistryOptions = {}) {
    this.#expiryMs = options.expiryMs ?? 90_000;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#maxPeers = options.maxPeersPerAddress ??
      DEFAULT_MAX_PEERS_PER_ADDRESS;
    this.#maxFiles = options.maxFilesPerAddress ??
      DEFAULT_MAX_FILES_PER_ADDRESS;
    this.#onExpire = options.onExpire;
  }

  /** Number of peers held (live, or expired and not yet dropped). */
  get size(): number {
    return this.#peers.size;
  }

  #alive(record: Peer | undefined, now: number): record is Peer {
    return record !== undefined && now - record.lastSeen < this.#expiryMs;
  }

  #isAlive = (address: string): boolean =>
    this.#alive(this.#peers.get(address), this.#now());

  #network = (address: string): string => this.#peers.get(address)!.network;

  /** A peer seen at `now` expires then at the latest (the clock can go back). */
  #due(now: number): void {
    this.#nextExpiry = Math.min(this.#nextExpiry, now + this.#expiryMs);
  }

  /**
   * Drops the peers at the front of the map that have expired: the map is
   * in order of last contact, so this costs O(expired peers). Until the
   * front peer's expiry it returns at once: a walk from the front also
   * passes the holes that re-inserting refreshed peers leaves there.
   */
  #expireDue(now: number): void {
    if (now < this.#nextExpiry) return;
    for (const [address, record] of this.#peers) {
      if (this.#alive(record, now)) {
        this.#nextExpiry = record.lastSeen + this.#expiryMs;
        return;
      }
      this.remove(address);
      this.#onExpire?.(address);
    }
    this.#nextExpiry = -Infinity;
  }

  /**
   * Adds or replaces a peer with its full file list and marks it alive.
   *
   * @param address The peer's identity and serving address.
   * @param protocol The protocol it serves.
   * @param files Its files (legacy: ids and sizes null).
   * @param source The IP it connected from (per-network limits count it
   *   there); by default the host of `address`.
   * @param key The public key it proved (hex), if any.
   * @returns `"ok"`, or which per-network limit refused it (nothing changed).
   */
  upsert(
    address: string,
    protocol: "shoal" | "legacy",
    files: readonly (FileAnnouncement | StoredFile)[],
    source?: string,
    key?: string,
  ): ApplyChangesResult {
    const now = this.#now();
    this.#expireDue(now);
    const network = networkOf(source ?? hostOf(address));
    const usage = this.#networks.get(network) ?? { peers: 0, files: 0 };
    const old = this.#peers.get(address);
    const same = old?.network === network;
    if (!same && usage.peers >= this.#maxPeers) return "too_many_peers";
    const count = new Set(files.map((f) => f.name)).size;
    if (usage.files - (same ? old.files.size : 0) + count > this.#maxFiles) {
      return "too_many_files";
    }
    this.remove(address);
    this.#due(now);
    const record: Peer = {
      address,
      protocol,
      lastSeen: now,
      files: new Map(),
      seq: 0,
      network,
      ...(key !== undefined ? { key } : {}),
      ids: undefined,
    };
    this.#peers.set(address, record);
    const after = this.#networks.get(network) ?? { peers: 0, files: 0 };
    after.peers++;
    this.#networks.set(network, after);
    for (const file of files) {
      if (record.files.has(file.name)) continue; // one entry per name
      this.#indexFile(record, file);
    }
    return "ok";
  }

  /**
   * Records a heartbeat: refreshes liveness and, if given, the file list
   * (left as it was if the new one would exceed the network's file limit).
   *
   * @param address The peer.
   * @param files Its new full file list, if it changed.
   * @returns `false` if the peer is unknown or already expired (it must
   *   register again).
   */
  touch(
    address: string,
    files?: readonly (FileAnnouncement | StoredFile)[],
  ): boolean {
    return files
      ? this.replaceFiles(address, files) !== "unknown_peer"
      : this.#refresh(address) !== undefined;
  }

  /** Marks a live peer alive now; drops it if it expired. */
  #refresh(address: string): Peer | undefined {
    const now = this.#now();
    this.#expireDue(now);
    const record = this.#peers.get(address);
    if (!record) return undefined;
    if (!this.#alive(record, now)) {
      // Out of order (the clock went back): expire it here.
      this.remove(address);
      this.#onExpire?.(address);
      return undefined;
    }
    record.lastSeen = now;
    this.#due(now);
    // Re-insert: the map stays in order of last contact.
    this.#peers.delete(address);
    this.#peers.set(address, record);
    return record;
  }

  /**
   * Refreshes a peer and replaces its whole file list.
   *
   * @param address The peer.
   * @param files Its full file list.
   * @returns `"ok"`, `"unknown_peer"`, or `"too_many_files"` if the list
   *   would exceed its network's limit (the peer is refreshed, its files
   *   are left as they were).
   */
  replaceFiles(
    address: string,
    files: readonly (FileAnnouncement | StoredFile)[],
  ): ApplyChangesResult {
    const record = this.#refresh(address);
    if (!record) return "unknown_peer";
    const usage = this.#networks.get(record.network)!;
    const count = new Set(files.map((f) => f.name)).size;
    if (usage.files - record.files.size + count > this.#maxFiles) {
      return "too_many_files";
    }
    for (const name of [...record.files.keys()]) {
      this.#unindexFile(record, name);
    }
    for (const file of files) {
      if (record.files.has(file.name)) continue; // one entry per name
      this.#indexFile(record, file);
    }
    record.seq = 0;
    return "ok";
  }

  /**
   * Applies an incremental announce: refreshes liveness, then replaces or
   * adds `added` (by name) and drops `removed`, if `seq` is the next
   * sequence number for this peer.
   *
   * @param address The peer.
   * @param seq The announce's sequence number (last applied + 1).
   * @param added Files new or changed by name.
   * @param removed Names no longer shared.
   * @param maxFiles Most files the peer may hold afterwards.
   * @returns `"ok"`, or why nothing changed.
   *
   * @example Adding a file to a registered peer
   * ```ts
   * import { Registry } from "./registry.ts";
   * const registry = new Registry();
   * registry.upsert("127.0.0.1:10001", "shoal", []);
   * const result = registry.applyChanges("127.0.0.1:10001", 1, [
   *   { name: "a.txt", id: "a".repeat(64), size: 5 },
   * ], []);
   * if (result !== "ok" || registry.list().length !== 1) throw new Error("not applied");
   * ```
   */
  applyChanges(
    address: string,
    seq: number,
    added: readonly FileAnnouncement[],
    removed: readonly string[],
    maxFiles: number = Infinity,
  ): ApplyChangesResult {
    const record = this.#refresh(address);
    if (!record) return "unknown_peer";
    if (seq !== record.seq + 1) return "resync";
    const gone = new Set(removed);
    let count = record.files.size;
    for (const name of gone) if (record.files.has(name)) count--;
    const seen = new Set<string>();
    for (const file of added) {
      if (seen.has(file.name)) continue;
      seen.add(file.name);
      if (!record.files.has(file.name) || gone.has(file.name)) count++;
    }
    const usage = this.#networks.get(record.network)!;
    if (
      count > maxFiles ||
      usage.files - record.files.size + count > this.#maxFiles
    ) {
      return "too_many_files";
    }
    for (const name of gone) this.#unindexFile(record, name);
    seen.clear();
    for (const file of added) {
      if (seen.has(file.name)) continue; // one entry per name
      seen.add(file.name);
      this.#unindexFile(record, file.name);
      this.#indexFile(record, file);
    }
    record.seq = seq;
    return "ok";
  }

  #indexFile(record: Peer, file: FileAnnouncement | StoredFile): void {
    const { address, network } = record;
    const { name, id, size } = file;
    this.#networks.get(network)!.files++;
    let named = this.#names.get(name);
    if (!named) {
      named = { shoal: undefined, legacy: undefined, contents: undefined };
      this.#names.set(name, named);
      this.#nameIndex.add(name);
    }
    if (id === null || size === null) {
      record.files.set(name, null);
      named.legacy = addHolder(named.legacy, address, network, this.#network);
      this.#legacyNames.add(name);
      return;
    }
    named.shoal = addHolder(named.shoal, address, network, this.#network);
    let content = this.#contents.get(id);
    if (!content) {
      content = { id, holders: address, sizes: new Map() };
      this.#contents.set(id, content);
    }
    let sized = sizedOf(content, size);
    if (!sized) {
      sized = { content, size, holders: 0, names: undefined, best: undefined };
      addSized(content, sized);
    }
    record.files.set(name, sized);
    const names = this.#namesFor(record, id, name);
    if (names.length === 0 && content.holders !== address) {
      content.holders = addHolder(
        content.holders,
        address,
        network,
        this.#network,
      );
    }
    if (!this.#holdsSize(record, names, size)) sized.holders++;
    this.#setNames(record, id, [...names, name]);
    named.contents = tallyAdd(named.contents, sized);
    sized.names = tallyAdd(sized.names, name);
    if (sized.best !== undefined && sized.best !== name) {
      const count = tallyGet(sized.names, name);
      const best = tallyGet(sized.names, sized.best);
      if (count > best || (count === best && name < sized.best)) {
        sized.best = name;
      }
    }
  }

  /** Whether one of `names` of this peer announces `size`. */
  #holdsSize(record: Peer, names: string[], size: number): boolean {
    return names.some((n) => record.files.get(n)?.size === size);
  }

  /** The names a peer shares `id` under, but `except`. */
  #namesFor(record: Peer, id: string, except?: string): string[] {
    if (record.ids) {
      const names = record.ids.get(id);
      return names === undefined
        ? []
        : namesOf(names).filter((n) => n !== except);
    }
    const out: string[] = [];
    for (const [name, sized] of record.files) {
      if (name !== except && sized?.content.id === id) out.push(name);
    }
    return out;
  }

  /** Records the names a peer shares `id` under (a big peer's map). */
  #setNames(record: Peer, id: string, names: string[]): void {
    if (!record.ids) {
      if (record.files.size <= IDS_MAP_MIN_FILES) return; // scanned
      record.ids = new Map();
      for (const [name, sized] of record.files) {
        if (!sized) continue;
        const had = record.ids.get(sized.content.id);
        record.ids.set(
          sized.content.id,
          had === undefined ? name : [...namesOf(had), name],
        );
      }
      return;
    }
    if (names.length === 0) record.ids.delete(id);
    else record.ids.set(id, names.length === 1 ? names[0]! : names);
  }

  #unindexFile(record: Peer, name: string): void {
    const file = record.files.get(name);
    if (file === undefined) return;
    const { address, network } = record;
    record.files.delete(name);
    this.#networks.get(network)!.files--;
    const named = this.#names.get(name)!;
    if (file === null) {
      named.legacy = deleteHolder(named.legacy!, address, network);
      if (!named.legacy) this.#legacyNames.delete(name);
    } else {
      named.shoal = deleteHolder(named.shoal!, address, network);
      const sized = file;
      const { content, size } = sized;
      const id = content.id;
      named.contents = tallyRemove(named.contents!, sized);
      sized.names = tallyRemove(sized.names!, name);
      if (sized.best === name) sized.best = undefined;
      const left = this.#namesFor(record, id, name);
      this.#setNames(record, id, left);
      let holders: Holders | undefined = content.holders;
      if (left.length === 0) {
        holders = deleteHolder(content.holders, address, network);
      }
      if (!this.#holdsSize(record, left, size) && --sized.holders === 0) {
        deleteSized(content, size);
      }
      if (holders) content.holders = holders;
      else this.#contents.delete(id);
    }
    if (!named.shoal && !named.legacy) {
      this.#names.delete(name);
      this.#nameIndex.delete(name);
    }
  }

  /**
   * Forgets a peer (graceful leave or expiry).
   *
   * @param address The peer.
   * @returns Whether it was known.
   */
  remove(address: string): boolean {
    const record = this.#peers.get(address);
    if (!record) return false;
    for (const name of [...record.files.keys()]) {
      this.#unindexFile(record, name);
    }
    this.#peers.delete(address);
    const usage = this.#networks.get(record.network)!;
    if (--usage.peers === 0) this.#networks.delete(record.network);
    return true;
  }

  /**
   * Drops every expired peer (queries already drop them as they come due;
   * this also catches any the clock put out of order).
   *
   * @param onDrop Called with each dropped peer's address.
   * @returns How many were dropped.
   */
  sweep(onDrop?: (address: string) => void): number {
    const now = this.#now();
    let dropped = 0;
    for (const [address, record] of this.#peers) {
      if (!this.#alive(record, now)) {
        this.remove(address);
        this.#onExpire?.(address);
        onDrop?.(address);
        dropped++;
      }
    }
    return dropped;
  }

  /**
   * Live peer record, if any.
   *
   * @param address The peer.
   * @returns The record or `undefined`.
   */
  get(address: string): PeerRecord | undefined {
    const record = this.#peers.get(address);
    if (!this.#alive(record, this.#now())) return undefined;
    const files = new Map<string, StoredFile>();
    for (const [name, sized] of record.files) {
      files.set(name, {
        name,
        id: sized?.content.id ?? null,
        size: sized?.size ?? null,
      });
    }
    const { ids: _ids, ...rest } = record;
    return { ...rest, files };
  }

  /**
   * A live peer's protocol and sequence number, without copying its files.
   *
   * @param address The peer.
   * @returns Them, or `undefined` if it is unknown or expired.
   */
  status(
    address: string,
  ): { protocol: "shoal" | "legacy"; seq: number } | undefined {
    const record = this.#peers.get(address);
    if (!this.#alive(record, this.#now())) return undefined;
    return { protocol: record.protocol, seq: record.seq };
  }

  /**
   * Files held by live peers, filtered by a query.
   *
   * @param query Substring (case-insensitive) or glob with `*` and `?`.
   * @param limit Most entries returned.
   * @returns One entry per content id and size, plus one per seed-protocol
   *   name.
   */
  list(query?: string, limit = 10_000): ListedFile[] {
    return this.search(query, { limit }).files;
  }

  /**
   * Files held by live peers, filtered by a query, with bounded work: a
   * glob with a literal start reads only the names in its range; other
   * queries examine at most `maxExamined` names. A query of 8 to 64 hex
   * digits also matches the content ids that start with it.
   *
   * @param query Substring (case-insensitive) or glob with `*` and `?`.
   * @param options `limit`: most entries; `maxBytes`: most bytes of names
   *   (a reply's size); `maxExamined`: most names examined.
   * @returns The entries, whether they are cut short of every match, and
   *   how many names were examined (the request's cost).
   */
  search(
    query?: string,
    options: { limit?: number; maxBytes?: number; maxExamined?: number } = {},
  ): { files: ListedFile[]; truncated: boolean; examined: number } {
    const limit = options.limit ?? 10_000;
    const maxBytes = options.maxBytes ?? Infinity;
    this.#expireDue(this.#now());
    const out: ListedFile[] = [];
    let bytes = 0;
    const room = (name: string) => {
      bytes += jsonBytes(name) + ENTRY_BYTES;
      return out.length < limit && bytes <= maxBytes;
    };
    if (!query) {
      let examined = 0;
      for (const content of this.#contents.values()) {
        for (const sized of sizesOf(content)) {
          examined++;
          const name = this.#bestName(sized);
          if (!room(name)) return { files: out, truncated: true, examined };
          const { size, holders } = sized;
          out.push({ name, id: content.id, size, holders });
        }
      }
      for (const name of this.#legacyNames) {
        examined++;
        if (!room(name)) return { files: out, truncated: true, examined };
        const holders = holderCount(this.#names.get(name)!.legacy);
        out.push({ name, id: null, size: null, holders });
      }
      return { files: out, truncated: false, examined };
    }
    // Filtered: each matching name once, then each content held under it,
    // shown under its most common matching name.
    const tally = new ListTally<Sized>(limit);
    const result = this.#nameIndex.match(
      query,
      options.maxExamined ?? DEFAULT_MAX_LIST_EXAMINED,
      (name) => {
        const named = this.#names.get(name)!;
        for (const [sized, count] of tallyEntries(named.contents)) {
          if (!tally.content(sized, name, count)) return false;
        }
        return !named.legacy || tally.seed(name, holderCount(named.legacy));
      },
    );
    // 8 to 64 hex digits also match the content ids they start (bounded).
    let examined = result.examined;
    let idsComplete = true;
    const prefix = ID_PREFIX.test(query) ? query.toLowerCase() : undefined;
    if (prefix !== undefined) {
      const most = options.maxExamined ?? DEFAULT_MAX_LIST_EXAMINED;
      let scanned = 0;
      for (const content of this.#contents.values()) {
        if (++scanned > most) {
          idsComplete = false;
          break;
        }
        if (!content.id.startsWith(prefix)) continue;
        for (const sized of sizesOf(content)) {
          if (!tally.byId(sized, () => this.#bestName(sized))) break;
        }
      }
      examined += Math.min(scanned, most);
    }
    for (const [sized, { name }] of tally.found) {
      if (!room(name)) {
        return { files: out, truncated: true, examined };
      }
      const { size, holders } = sized;
      out.push({ name, id: sized.content.id, size, holders });
    }
    for (const entry of tally.legacy) {
      if (!room(entry.name)) {
        return { files: out, truncated: true, examined };
      }
      out.push(entry);
    }
    return {
      files: out,
      truncated: tally.full || !result.complete || !idsComplete,
      examined,
    };
  }

  /**
   * The most common name of an (id, size), ties to the smaller name; kept
   * up to date as names are added, recomputed over a bounded number of
   * names after the best one lost a holder.
   */
  #bestName(sized: Sized): string {
    if (sized.best !== undefined) return sized.best;
    let best = "";
    let bestCount = 0;
    let examined = 0;
    for (const [name, count] of tallyEntries(sized.names)) {
      if (count > bestCount || (count === bestCount && name < best)) {
        best = name;
        bestCount = count;
      }
      if (++examined >= MAX_NAMES_EXAMINED) break;
    }
    sized.best = best;
    return best;
  }

  /**
   * Live holders of a content id, or of any content shared under a name.
   * Verified (Shoal) holders come before seed-protocol ones; within each,
   * holders are taken round-robin across networks in random order, so no
   * network can crowd others out and no registration order shows.
   *
   * @param query `id` or `name` (id wins when both are given).
   * @param limit Most holders returned.
   * @returns The holders.
   */
  getPeers(query: { id?: string; name?: string }, limit = 200): PeerInfo[] {
    this.#expireDue(this.#now());
    if (query.id !== undefined) {
      const id = query.id;
      const content = this.#contents.get(id);
      if (!content) return [];
      return sampleHolders(content.holders, limit, this.#random, this.#isAlive)
        .map((address) => {
          const key = this.#peers.get(address)?.key;
          return {
            address,
            protocol: "shoal",
            name: this.#namesFor(this.#peers.get(address)!, id)[0]!,
            id,
            ...(key !== undefined ? { key } : {}),
          };
        });
    }
    const name = query.name ?? "";
    const named = this.#names.get(name);
    if (!named) return [];
    const shoal = sampleHolders(
      named.shoal,
      limit,
      this.#random,
      this.#isAlive,
    );
    const legacy = sampleHolders(
      named.legacy,
      limit - shoal.length,
      this.#random,
      this.#isAlive,
    );
    return [...shoal, ...legacy].map((address) => {
      const record = this.#peers.get(address)!;
      return {
        address,
        protocol: record.protocol,
        name,
        id: record.files.get(name)?.content.id ?? null,
        ...(record.key !== undefined ? { key: record.key } : {}),
      };
    });
  }

  /**
   * The seed protocol's `filemap`: name → live holder addresses, Shoal
   * holders first, each name's holders sampled fairly as in
   * {@linkcode Registry.getPeers}.
   *
   * @param limit Most names returned.
   * @param options `holdersPerName`: most addresses per name (default 20);
   *   `maxBytes`: most bytes of JSON (default unbounded).
   * @returns The map.
   */
  filemap(
    limit = 10_000,
    options: { holdersPerName?: number; maxBytes?: number } = {},
  ): Record<string, string[]> {
    return this.seedList(limit, options).filemap;
  }

  /**
   * {@linkcode Registry.filemap} and whether it left names out.
   *
   * @param limit Most names returned.
   * @param options As for {@linkcode Registry.filemap}.
   * @returns The map and whether it is cut short.
   */
  seedList(
    limit = 10_000,
    options: { holdersPerName?: number; maxBytes?: number } = {},
  ): { filemap: Record<string, string[]>; truncated: boolean } {
    const perName = options.holdersPerName ?? 20;
    const maxBytes = options.maxBytes ?? Infinity;
    this.#expireDue(this.#now());
    const filemap: Record<string, string[]> = {};
    let count = 0;
    let bytes = 2; // {}
    for (const [name, named] of this.#names) {
      if (count >= limit) return { filemap, truncated: true };
      const shoal = sampleHolders(
        named.shoal,
        perName,
        this.#random,
        this.#isAlive,
      );
      const legacy = sampleHolders(
        named.legacy,
        perName - shoal.length,
        this.#random,
        this.#isAlive,
      );
      const addresses = [...shoal, ...legacy];
      if (addresses.length === 0) continue;
      bytes += jsonBytes(name) + 4; // "name":[],
      for (const address of addresses) bytes += address.length + 3; // "a",
      if (bytes > maxBytes) return { filemap, truncated: true };
      filemap[name] = addresses;
      count++;
    }
    return { filemap, truncated: false };
  }
}

function namesOf(names: Names): string[] {
  return typeof names === "string" ? [names] : names;
}

function sizedOf(content: Content, size: number): Sized | undefined {
  const { sizes } = content;
  if (sizes instanceof Map) return sizes.get(size);
  return sizes.size === size ? sizes : undefined;
}

function sizesOf(content: Content): Iterable<Sized> {
  const { sizes } = content;
  return sizes instanceof Map ? sizes.values() : [sizes];
}

function addSized(content: Content, sized: Sized): void {
  const { sizes } = content;
  if (sizes instanceof Map) {
    if (sizes.size === 0) content.sizes = sized;
    else sizes.set(sized.size, sized);
  } else {
    content.sizes = new Map([[sizes.size, sizes], [sized.size, sized]]);
  }
}

function deleteSized(content: Content, size: number): void {
  const { sizes } = content;
  if (sizes instanceof Map) sizes.delete(size);
  else content.sizes = new Map();
}

function tallyAdd<K>(tally: Tally<K> | undefined, key: K): Tally<K> {
  if (tally === undefined) return key;
  if (tally instanceof Map) return tally.set(key, (tally.get(key) ?? 0) + 1);
  if (tally instanceof Counted) {
    if (tally.key !== key) return new Map([[tally.key, tally.n], [key, 1]]);
    tally.n++;
    return tally;
  }
  return tally === key ? new Counted(key, 2) : new Map([[tally, 1], [key, 1]]);
}

function tallyRemove<K>(tally: Tally<K>, key: K): Tally<K> | undefined {
  if (tally instanceof Map) {
    decrement(tally, key);
    if (tally.size === 0) return undefined;
    if (tally.size > 1) return tally;
    const [only, n] = tally.entries().next().value!;
    return n === 1 ? only : new Counted(only, n);
  }
  if (tally instanceof Counted) {
    if (tally.key !== key) return tally;
    return --tally.n === 1 ? tally.key : tally;
  }
  return tally === key ? undefined : tally;
}

function tallyGet<K>(tally: Tally<K> | undefined, key: K): number {
  if (tally === undefined) return 0;
  if (tally instanceof Map) return tally.get(key) ?? 0;
  if (tally instanceof Counted) return tally.key === key ? tally.n : 0;
  return tally === key ? 1 : 0;
}

function tallyEntries<K>(tally: Tally<K> | undefined): Iterable<[K, number]> {
  if (tally === undefined) return [];
  if (tally instanceof Map) return tally;
  if (tally instanceof Counted) return [[tally.key, tally.n]];
  return [[tally, 1]];
}

function decrement<K>(map: Map<K, number>, key: K): void {
  const left = (map.get(key) ?? 1) - 1;
  if (left <= 0) map.delete(key);
  else map.set(key, left);
}
