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
}

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
    if (files) this.#setFiles(record, files);
    return true;
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
   * @returns How many were dropped.
   */
  sweep(): number {
    const now = this.#now();
    let dropped = 0;
    for (const [address, record] of this.#peers) {
      if (!this.#alive(record, now)) {
        this.remove(address);
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
    const match = makeMatcher(query);
    const now = this.#now();
    const out: ListedFile[] = [];
    for (const [id, content] of this.#contents) {
      if (out.length >= limit) return out;
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
        if (count > bestCount || (count === bestCount && name < best)) {
          best = name;
          bestCount = count;
        }
      }
      if (holders === 0) continue;
      if (![...names.keys()].some(match)) continue;
      out.push({ name: best, id, size: content.size, holders });
    }
    for (const [name, addresses] of this.#names) {
      if (out.length >= limit) return out;
      if (!match(name)) continue;
      let holders = 0;
      for (const address of addresses) {
        const record = this.#peers.get(address);
        if (this.#alive(record, now) && record.protocol === "legacy") holders++;
      }
      if (holders > 0) out.push({ name, id: null, size: null, holders });
    }
    return out;
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
  if (/[*?]/.test(query)) {
    const source = query.replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*").replace(/\?/g, ".");
    const re = new RegExp(`^${source}$`, "i");
    return (name) => re.test(name) || re.test(name.split("/").pop()!);
  }
  const needle = query.toLowerCase();
  return (name) => name.toLowerCase().includes(needle);
}
