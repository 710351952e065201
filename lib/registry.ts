/**
 * The tracker's state: live peers and the content they hold, indexed by
 * content id and by name. Liveness is checked at query time, so a peer that
 * misses its heartbeats vanishes exactly when its expiry passes.
 *
 * @module
 */
import type { FileAnnouncement, ListedFile, PeerInfo } from "./messages.ts";

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
}

/** One registered peer. */
export interface PeerRecord {
  /** Identity: `ip:port` as the tracker sees it. */
  address: string;
  /** Protocol the peer serves. */
  protocol: "shoal" | "legacy";
  /** When it was last heard from (ms). */
  lastSeen: number;
  /** Files it shares by name (legacy peers: `id` and `size` null). */
  files: Map<string, StoredFile>;
  /**
   * Sequence number of the last incremental announce applied (0 after a
   * full list).
   */
  seq: number;
}

/** What {@linkcode Registry.applyChanges} did. */
export type ApplyChangesResult =
  /** Applied. */
  | "ok"
  /** The peer is unknown or expired: it must register again. */
  | "unknown_peer"
  /** The sequence number is not the next one: the peer must resync. */
  | "resync"
  /** The result would exceed the per-peer file limit: nothing changed. */
  | "too_many_files";

/** A file as the registry stores it. */
export interface StoredFile {
  /** Name at the holder. */
  name: string;
  /** Content id, or `null` for a seed-protocol peer's file. */
  id: string | null;
  /** Size, or `null` when unknown (seed-protocol peer). */
  size: number | null;
}

interface Content {
  size: number;
  /** holder address → name it shares the content under */
  holders: Map<string, string>;
}

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
  readonly #peers = new Map<string, PeerRecord>();
  readonly #contents = new Map<string, Content>();
  /** name → holder addresses, for every protocol */
  readonly #names = new Map<string, Set<string>>();

  /**
   * Creates an empty registry.
   *
   * @param options Expiry and clock.
   */
  constructor(options: RegistryOptions = {}) {
    this.#expiryMs = options.expiryMs ?? 90_000;
    this.#now = options.now ?? Date.now;
  }

  /** Number of peers held (live or not yet swept). */
  get size(): number {
    return this.#peers.size;
  }

  #alive(record: PeerRecord | undefined, now: number): record is PeerRecord {
    return record !== undefined && now - record.lastSeen < this.#expiryMs;
  }

  /**
   * Adds or replaces a peer with its full file list and marks it alive.
   *
   * @param address The peer's identity and serving address.
   * @param protocol The protocol it serves.
   * @param files Its files (legacy: ids and sizes null).
   */
  upsert(
    address: string,
    protocol: "shoal" | "legacy",
    files: readonly (FileAnnouncement | StoredFile)[],
  ): void {
    this.remove(address);
    const record: PeerRecord = {
      address,
      protocol,
      lastSeen: this.#now(),
      files: new Map(),
      seq: 0,
    };
    this.#peers.set(address, record);
    this.#setFiles(record, files);
  }

  #setFiles(
    record: PeerRecord,
    files: readonly (FileAnnouncement | StoredFile)[],
  ): void {
    this.#unindex(record);
    record.files = new Map();
    for (const file of files) {
      if (record.files.has(file.name)) continue; // one entry per name
      this.#indexFile(record, file);
    }
  }

  #unindex(record: PeerRecord): void {
    for (const file of record.files.values()) {
      const holders = this.#names.get(file.name);
      holders?.delete(record.address);
      if (holders?.size === 0) this.#names.delete(file.name);
      if (file.id === null) continue;
      const content = this.#contents.get(file.id);
      content?.holders.delete(record.address);
      if (content?.holders.size === 0) this.#contents.delete(file.id);
    }
  }

  /**
   * Records a heartbeat: refreshes liveness and, if given, the file list.
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
    const record = this.#peers.get(address);
    const now = this.#now();
    if (!this.#alive(record, now)) {
      if (record) this.remove(address);
      return false;
    }
    record.lastSeen = now;
    if (files) {
      this.#setFiles(record, files);
      record.seq = 0;
    }
    return true;
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
    if (!this.touch(address)) return "unknown_peer";
    const record = this.#peers.get(address)!;
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
    if (count > maxFiles) return "too_many_files";
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

  #indexFile(record: PeerRecord, file: FileAnnouncement | StoredFile): void {
    record.files.set(file.name, {
      name: file.name,
      id: file.id,
      size: file.size,
    });
    let holders = this.#names.get(file.name);
    if (!holders) this.#names.set(file.name, holders = new Set());
    holders.add(record.address);
    if (file.id !== null && file.size !== null) {
      let content = this.#contents.get(file.id);
      if (!content) {
        this.#contents.set(
          file.id,
          content = { size: file.size, holders: new Map() },
        );
      }
      content.holders.set(record.address, file.name);
    }
  }

  #unindexFile(record: PeerRecord, name: string): void {
    const file = record.files.get(name);
    if (!file) return;
    record.files.delete(name);
    const holders = this.#names.get(name);
    holders?.delete(record.address);
    if (holders?.size === 0) this.#names.delete(name);
    if (file.id === null) return;
    const content = this.#contents.get(file.id);
    // The same content may be shared under another name by this peer.
    if (content?.holders.get(record.address) !== name) return;
    content.holders.delete(record.address);
    for (const other of record.files.values()) {
      if (other.id === file.id) {
        content.holders.set(record.address, other.name);
        return;
      }
    }
    if (content.holders.size === 0) this.#contents.delete(file.id);
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
    this.#unindex(record);
    this.#peers.delete(address);
    return true;
  }

  /**
   * Drops every expired peer (memory housekeeping; queries already ignore
   * them).
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
    return this.#alive(record, this.#now()) ? record : undefined;
  }

  /**
   * Files held by live peers, filtered by a query.
   *
   * @param query Substring (case-insensitive) or glob with `*` and `?`.
   * @param limit Most entries returned.
   * @returns One entry per content id, plus one per legacy-only name.
   */
  list(query?: string, limit = 10_000): ListedFile[] {
    const now = this.#now();
    const out: ListedFile[] = [];
    if (!query) {
      for (const [id, content] of this.#contents) {
        if (out.length >= limit) return out;
        const entry = this.#summarise(id, content, now);
        if (entry) out.push(entry);
      }
      for (const [name, addresses] of this.#names) {
        if (out.length >= limit) return out;
        const holders = this.#legacyHolders(addresses, now);
        if (holders > 0) out.push({ name, id: null, size: null, holders });
      }
      return out;
    }
    // Filtered: match each distinct name once through the name index, then
    // summarise only the contents held under a matching name.
    const match = makeMatcher(query);
    const ids = new Set<string>();
    const legacy: ListedFile[] = [];
    for (const [name, addresses] of this.#names) {
      if (ids.size + legacy.length >= limit || !match(name)) continue;
      let legacyHolders = 0;
      for (const address of addresses) {
        const record = this.#peers.get(address);
        if (!this.#alive(record, now)) continue;
        if (record.protocol === "legacy") legacyHolders++;
        const id = record.files.get(name)?.id;
        if (id) ids.add(id);
      }
      if (legacyHolders > 0) {
        legacy.push({ name, id: null, size: null, holders: legacyHolders });
      }
    }
    for (const id of ids) {
      const content = this.#contents.get(id);
      const entry = content && this.#summarise(id, content, now, match);
      if (entry) out.push(entry);
    }
    return [...out, ...legacy].slice(0, limit);
  }

  /**
   * A content's listing: live holder count and its most common name (among
   * the names matching the query, when there is one).
   */
  #summarise(
    id: string,
    content: Content,
    now: number,
    match: (name: string) => boolean = () => true,
  ): ListedFile | undefined {
    const names = new Map<string, number>();
    for (const [address, name] of content.holders) {
      if (!this.#alive(this.#peers.get(address), now)) continue;
      names.set(name, (names.get(name) ?? 0) + 1);
    }
    let best = "";
    let bestCount = 0;
    let holders = 0;
    for (const [name, count] of names) {
      holders += count;
      if (!match(name)) continue;
      if (count > bestCount || (count === bestCount && name < best)) {
        best = name;
        bestCount = count;
      }
    }
    if (holders === 0 || bestCount === 0) return undefined;
    return { name: best, id, size: content.size, holders };
  }

  #legacyHolders(addresses: Set<string>, now: number): number {
    let holders = 0;
    for (const address of addresses) {
      const record = this.#peers.get(address);
      if (this.#alive(record, now) && record.protocol === "legacy") holders++;
    }
    return holders;
  }

  /**
   * Live holders of a content id, or of any content shared under a name.
   *
   * @param query `id` or `name` (id wins when both are given).
   * @param limit Most holders returned.
   * @returns The holders.
   */
  getPeers(query: { id?: string; name?: string }, limit = 200): PeerInfo[] {
    const now = this.#now();
    const out: PeerInfo[] = [];
    if (query.id !== undefined) {
      const content = this.#contents.get(query.id);
      for (const [address, name] of content?.holders ?? []) {
        if (out.length >= limit) break;
        if (this.#alive(this.#peers.get(address), now)) {
          out.push({ address, protocol: "shoal", name, id: query.id });
        }
      }
      return out;
    }
    for (const address of this.#names.get(query.name ?? "") ?? []) {
      if (out.length >= limit) break;
      const record = this.#peers.get(address);
      if (this.#alive(record, now)) {
        out.push({
          address,
          protocol: record.protocol,
          name: query.name!,
          id: record.files.get(query.name!)?.id ?? null,
        });
      }
    }
    return out;
  }

  /**
   * The seed protocol's `filemap`: every name → live holder addresses.
   *
   * @param limit Most names returned.
   * @returns The map.
   */
  filemap(limit = 10_000): Record<string, string[]> {
    const now = this.#now();
    const out: Record<string, string[]> = {};
    let count = 0;
    for (const [name, addresses] of this.#names) {
      if (count >= limit) break;
      const live = [...addresses].filter((a) =>
        this.#alive(this.#peers.get(a), now)
      );
      if (live.length > 0) {
        out[name] = live;
        count++;
      }
    }
    return out;
  }
}

/**
 * Builds a name matcher: glob when the query has `*` or `?`, otherwise a
 * case-insensitive substring match. No query matches everything.
 */
function makeMatcher(query?: string): (name: string) => boolean {
  if (!query) return () => true;
  const needle = query.toLowerCase();
  if (/[*?]/.test(query)) {
    return (name) => {
      const lower = name.toLowerCase();
      if (globMatch(needle, lower)) return true;
      const slash = lower.lastIndexOf("/");
      return slash >= 0 && globMatch(needle, lower.slice(slash + 1));
    };
  }
  return (name) => name.toLowerCase().includes(needle);
}

/**
 * Whether `text` matches `pattern` (`*` any run, `?` one character) in
 * O(pattern × text) time: a query from the network can never make the
 * tracker backtrack exponentially, as a regular expression could.
 */
function globMatch(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === "?" || pattern[p] === text[t])) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      resume = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === "*") p++;
  return p === pattern.length;
}
