/**
 * A {@linkcode TrackerStore} in Redis, shared by any number of trackers: a
 * single server (`redis://HOST:PORT/DB`) or a Redis Cluster. Each peer's
 * record changes in one Lua script; holders are sorted sets scored by
 * last-seen time, so expiry is exact at read time and needs no sweeper.
 *
 * @module
 */
import type { FileAnnouncement, PeerInfo } from "../protocol/messages.ts";
import { HolderSet, hostOf, networkOf } from "./_holder_set.ts";
import {
  CONTENT_COUNT_SCRIPT,
  CONTENT_NAMES_SCRIPT,
  INDEX_SCRIPT,
  INDEX_SEPARATOR,
  KEYS_SCRIPT,
  LAYOUT,
  LAYOUT_SCRIPT,
  NAME_TALLY_SCRIPT,
  NAMES_PAGE_SCRIPT,
  PEER_SCRIPT,
  SAMPLE_SCRIPT,
} from "./_redis_scripts.ts";
import { searchNames } from "./_redis_search.ts";
import { RedisClient } from "./_redis_client.ts";
import {
  DEFAULT_MAX_FILES_PER_ADDRESS,
  DEFAULT_MAX_PEERS_PER_ADDRESS,
} from "./registry.ts";
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
  StoreUnavailableError,
  systemClock,
  type TrackerStore,
} from "./store.ts";

/** Options for {@linkcode RedisStore}. */
export interface RedisStoreOptions {
  /**
   * Where Redis is: `redis://HOST:PORT[/DB]` for one server,
   * `redis-cluster://HOST:PORT[,HOST:PORT…]` for a cluster (any of its
   * nodes; the rest are discovered).
   */
  url: string;
  /** A peer not heard from for this long is gone, ms. @default {90000} */
  expiryMs?: number;
  /**
   * The clock liveness is measured by. Trackers sharing a Redis must agree
   * on it (the wall clock, kept by NTP).
   *
   * @default {systemClock}
   */
  clock?: Clock;
  /** Most peers registered from one network. @default {128} */
  maxPeersPerAddress?: number;
  /** Most files all peers of one network may announce. @default {100000} */
  maxFilesPerAddress?: number;
  /** Prefix of every key, so several swarms can share a Redis. @default {"shoal"} */
  prefix?: string;
  /**
   * A call Redis has not answered in this long fails with
   * {@linkcode StoreUnavailableError}, ms.
   *
   * @default {800}
   */
  timeoutMs?: number;
  /** Random numbers in [0, 1) that order replies. @default {Math.random} */
  random?: () => number;
}

/** What separates fields in keys, members and packed index updates. */
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f]/;

/** A file as the scripts keep it: name, id, size (text), lowercase name. */
type Entry = [string, string, string] | [string, string, string, string];

/**
 * Tracker state in Redis: every tracker over the same Redis (and prefix)
 * sees the same peers at once, and a tracker restart loses nothing.
 *
 * @example Sharing peers between two stores over one Redis
 * ```ts ignore
 * import { RedisStore } from "@shoal/shoal/tracker/redis";
 * await using a = await RedisStore.connect({ url: "redis://127.0.0.1:6379" });
 * await using b = await RedisStore.connect({ url: "redis://127.0.0.1:6379" });
 * await a.register({ address: "10.0.0.1:7000", protocol: "shoal", files: [] });
 * if (!(await b.get("10.0.0.1:7000"))) throw new Error("not shared");
 * ```
 */
export class RedisStore implements TrackerStore, AsyncDisposable {
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #expiryMs: number;
  readonly #ttlMs: number;
  readonly #clock: Clock;
  readonly #maxPeers: number;
  readonly #maxFiles: number;
  readonly #random: () => number;

  /**
   * Wraps a connection (see {@linkcode RedisStore.connect}).
   *
   * @param client The connection.
   * @param options Expiry, limits.
   */
  private constructor(client: RedisClient, options: RedisStoreOptions) {
    this.#client = client;
    this.#prefix = options.prefix ?? "shoal";
    this.#expiryMs = options.expiryMs ?? 90_000;
    // Keys outlive the window by a margin: liveness is by score, the TTL
    // only reclaims the memory of what nobody refreshed.
    this.#ttlMs = 4 * this.#expiryMs + 60_000;
    this.#clock = options.clock ?? systemClock;
    this.#maxPeers = options.maxPeersPerAddress ??
      DEFAULT_MAX_PEERS_PER_ADDRESS;
    this.#maxFiles = options.maxFilesPerAddress ??
      DEFAULT_MAX_FILES_PER_ADDRESS;
    this.#random = options.random ?? Math.random;
  }

  /**
   * Creates a store and waits (up to `waitMs`) for Redis: a store whose
   * Redis is down still works once it comes up. The Redis client is loaded
   * here, not on import (it reads the environment: `--allow-env`).
   *
   * @param options Where Redis is, expiry, limits.
   * @param waitMs Longest wait for the first connection, ms.
   * @returns The store.
   * @throws {TypeError} If the URL is not a `redis://` or
   *   `redis-cluster://` URL, or the key prefix holds `{`, `}` or a control
   *   character.
   * @throws {Error} If the keys under the prefix were written by an older
   *   version whose layout this one cannot share.
   */
  static async connect(
    options: RedisStoreOptions,
    waitMs = 5000,
  ): Promise<RedisStore> {
    const prefix = options.prefix ?? "shoal";
    if (/[{}]/.test(prefix) || CONTROL.test(prefix)) {
      throw new TypeError(
        `Invalid Redis key prefix ${
          JSON.stringify(prefix)
        }: it may not contain {, } or control characters`,
      );
    }
    const client = await RedisClient.open(
      options.url,
      {
        shoalPeer: [PEER_SCRIPT, 1],
        shoalIndex: [INDEX_SCRIPT, 1],
        shoalSample: [SAMPLE_SCRIPT, 1],
        shoalNameTally: [NAME_TALLY_SCRIPT, 1],
        shoalContentCount: [CONTENT_COUNT_SCRIPT, 1],
        shoalNamesPage: [NAMES_PAGE_SCRIPT, 1],
        shoalKeys: [KEYS_SCRIPT, 1],
        shoalContentNames: [CONTENT_NAMES_SCRIPT, 1],
        shoalLayout: [LAYOUT_SCRIPT, 1],
      },
      options.timeoutMs ?? 800,
      waitMs,
    );
    // Versions whose index means something else must not share the keys
    // (checked when Redis answers now; a store started before it is up
    // writes the current layout).
    let layout: unknown = LAYOUT;
    try {
      layout = await client.call("shoalLayout", `${prefix}:{names}`, LAYOUT);
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) {
        await client.close();
        throw error;
      }
    }
    if (layout !== LAYOUT) {
      await client.close();
      throw new Error(
        `Redis at ${options.url} holds tracker state another Shoal version wrote (key layout ${layout}, this version writes ${LAYOUT}): stop those trackers, then flush that Redis or use another database (redis://HOST:PORT/1)`,
      );
    }
    return new RedisStore(client, options);
  }

  /** Whether this store is over a Redis Cluster. */
  get cluster(): boolean {
    return this.#client.cluster;
  }

  /**
   * Closes the connections to Redis.
   *
   * @returns Once closed.
   */
  async close(): Promise<void> {
    while (this.#flushing.size > 0) await Promise.all(this.#flushing);
    await this.#client.close();
  }

  /** Same as {@linkcode RedisStore.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #peerKey(address: string): [string, string] {
    const tag = `n:${networkOf(hostOf(address))}`;
    return [`${this.#prefix}:{${tag}}:p:${address}`, tag];
  }

  /** Runs the peer script, then (cluster) the index updates it derived. */
  async #peer(
    op: string,
    address: string,
    ...args: (string | number)[]
  ): Promise<{ result: ApplyChangesResult; seq: number }> {
    // Keys, members and the index updates passed between scripts are
    // joined by control characters, which no address or name may hold.
    if (CONTROL.test(address)) {
      throw new TypeError(
        `Invalid peer address ${
          JSON.stringify(address)
        }: it holds a control character`,
      );
    }
    const now = Math.floor(this.#clock.now());
    const [key, tag] = this.#peerKey(address);
    const reply = await this.#client.call(
      "shoalPeer",
      key,
      op,
      now,
      this.#expiryMs,
      this.#ttlMs,
      this.#prefix,
      tag,
      address,
      this.#client.cluster ? "0" : "1",
      ...args,
    ) as (string | number)[];
    const result = reply[0] as ApplyChangesResult;
    const seq = Number(reply[1]);
    const ops = reply[2];
    if (ops) await this.#applyIndex(now, String(ops).split(INDEX_SEPARATOR));
    return { result, seq };
  }

  /**
   * Cluster: index updates, one script per node serving their keys (each
   * (kind, key, member) triple keeps its order within a node). Updates
   * that changes finishing together derive go out together: whatever is
   * queued when the next task runs takes one call per node, however many
   * changes it comes from (each keeps its own time).
   */
  #applyIndex(now: number, ops: string[]): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#queued.push({ now, ops, resolve, reject });
    if (this.#queued.length === 1) this.#scheduleFlush();
    return promise;
  }

  /** Index updates waiting for the next call (see `#applyIndex`). */
  #queued: {
    now: number;
    ops: string[];
    resolve: () => void;
    reject: (error: unknown) => void;
  }[] = [];
  /** Flushes under way (`close` waits for them). */
  readonly #flushing = new Set<Promise<void>>();

  #scheduleFlush(): void {
    const flush = new Promise<void>((done) =>
      setTimeout(() => this.#flushIndex().finally(done), 0)
    );
    this.#flushing.add(flush);
    void flush.then(() => this.#flushing.delete(flush));
  }

  async #flushIndex(): Promise<void> {
    // At most 64 changes a call, so one script never runs long; the rest
    // go in the next.
    const batch = this.#queued.splice(0, 64);
    if (this.#queued.length > 0) this.#scheduleFlush();
    // Every update's key, and which change (and which triple) it is.
    const keys: string[] = [];
    const change: number[] = [];
    const triple: number[] = [];
    batch.forEach(({ ops }, c) => {
      for (let i = 1; i < ops.length; i += 3) {
        keys.push(ops[i]!);
        change.push(c);
        triple.push(i - 1);
      }
    });
    try {
      await this.#client.perNode(keys, async (at) => {
        // (now, that change's triples on this node) pairs, in order.
        const args: (string | number)[] = [];
        let last = -1;
        let group: string[] = [];
        const endGroup = () => {
          if (last >= 0) {
            args.push(batch[last]!.now, group.join(INDEX_SEPARATOR));
          }
        };
        for (const k of at) {
          if (change[k] !== last) {
            endGroup();
            last = change[k]!;
            group = [];
          }
          const ops = batch[last]!.ops;
          const t = triple[k]!;
          group.push(ops[t]!, ops[t + 1]!, ops[t + 2]!);
        }
        endGroup();
        await this.#client.call(
          "shoalIndex",
          keys[at[0]!]!,
          this.#prefix,
          this.#expiryMs,
          this.#ttlMs,
          ...args,
        );
      });
      for (const { resolve } of batch) resolve();
    } catch (error) {
      for (const { reject } of batch) reject(error);
    }
  }

  /**
   * {@inheritDoc TrackerStore.register}
   *
   * @param registration The peer and its files.
   * @returns `"ok"`, or which per-network limit refused it.
   */
  async register(registration: PeerRegistration): Promise<ApplyChangesResult> {
    const { address, protocol, files, source, key } = registration;
    const network = networkOf(source ?? hostOf(address));
    return (await this.#peer(
      "register",
      address,
      protocol,
      network,
      encodeFiles(files),
      this.#maxPeers,
      this.#maxFiles,
      key ?? "",
    )).result;
  }

  /**
   * {@inheritDoc TrackerStore.replaceFiles}
   *
   * @param address The peer.
   * @param files Its full file list.
   * @returns `"ok"`, `"unknown_peer"` or `"too_many_files"`.
   */
  async replaceFiles(
    address: string,
    files: readonly (FileAnnouncement | StoredFile)[],
  ): Promise<ApplyChangesResult> {
    return (await this.#peer(
      "replace",
      address,
      encodeFiles(files),
      this.#maxFiles,
    )).result;
  }

  /**
   * {@inheritDoc TrackerStore.applyChanges}
   *
   * @param address The peer.
   * @param changes The announce.
   * @returns What it did and the peer's sequence number.
   */
  async applyChanges(
    address: string,
    changes: FileChanges,
  ): Promise<ApplyChangesReply> {
    return await this.#peer(
      "apply",
      address,
      changes.seq,
      encodeFiles(changes.added),
      JSON.stringify(changes.removed.length ? changes.removed : []),
      changes.maxFiles ?? Number.MAX_SAFE_INTEGER,
      this.#maxFiles,
    );
  }

  /**
   * {@inheritDoc TrackerStore.touch}
   *
   * @param address The peer.
   * @returns `false` if it is unknown or expired.
   */
  async touch(address: string): Promise<boolean> {
    return (await this.#peer("touch", address)).result === "ok";
  }

  /**
   * {@inheritDoc TrackerStore.seedAnnounce}
   *
   * @param announcement The command, peer, names and source.
   * @returns `"ok"`, `"unknown_peer"`, or which limit refused it.
   */
  async seedAnnounce(
    announcement: SeedAnnouncement,
  ): Promise<ApplyChangesResult> {
    const { command, address, files, source } = announcement;
    const encoded = files
      ? encodeFiles(files.map((name) => ({ name, id: null, size: null })))
      : "";
    return (await this.#peer(
      "seed",
      address,
      command,
      encoded,
      networkOf(source),
      this.#maxPeers,
      this.#maxFiles,
    )).result;
  }

  /**
   * {@inheritDoc TrackerStore.unregister}
   *
   * @param address The peer.
   * @returns Whether it was known.
   */
  async unregister(address: string): Promise<boolean> {
    return (await this.#peer("unregister", address)).result === "ok";
  }

  /**
   * {@inheritDoc TrackerStore.get}
   *
   * @param address The peer.
   * @returns Its record, or `undefined`.
   */
  async get(address: string): Promise<PeerRecord | undefined> {
    const fields = await this.#client.hmget(
      this.#peerKey(address)[0],
      "proto",
      "seen",
      "seq",
      "net",
      "files",
      "key",
    );
    const [protocol, seen, seq, network, files, key] = fields;
    if (!protocol || !seen || !files) return undefined;
    const lastSeen = Number(seen);
    if (this.#clock.now() - lastSeen >= this.#expiryMs) return undefined;
    const map = new Map<string, StoredFile>();
    for (const [name, id, size] of JSON.parse(files) as Entry[]) {
      map.set(name, {
        name,
        id: id === "" ? null : id,
        size: size === "" ? null : Number(size),
      });
    }
    return {
      address,
      protocol: protocol as "shoal" | "legacy",
      lastSeen,
      files: map,
      seq: Number(seq),
      network: network ?? "",
      ...(key ? { key } : {}),
    };
  }

  #cutoff(): number {
    return Math.floor(this.#clock.now()) - this.#expiryMs;
  }

  /** Live members of a holder set, all or a sample of about `want`. */
  async #sample(key: string, want: number, ids = false): Promise<string[]> {
    return await this.#client.call(
      "shoalSample",
      key,
      this.#cutoff(),
      want,
      ...(ids ? ["ids"] : []),
    ) as string[];
  }

  /**
   * {@inheritDoc TrackerStore.getPeers}
   *
   * @param query `id` or `name`.
   * @param limit Most holders.
   * @returns The holders.
   */
  async getPeers(query: PeerQuery, limit = 200): Promise<PeerInfo[]> {
    if (limit <= 0) return [];
    if (query.id !== undefined) {
      const id = query.id;
      const names = new Map<string, string>();
      for (
        const member of await this.#sample(this.#contentKey(id), 2 * limit)
      ) {
        const [address, , name] = splitMember(member, 3) as [
          string,
          string,
          string,
        ];
        if (!names.has(address)) names.set(address, name);
      }
      return await this.#withKeys(
        this.#fair([...names.keys()], limit).map((address) => ({
          address,
          protocol: "shoal",
          name: names.get(address)!,
          id,
        })),
      );
    }
    const name = query.name ?? "";
    const shoal = new Map<string, string>();
    const legacy: string[] = [];
    // Each member (`S address size` or `L address`) comes with its id.
    const sampled = await this.#sample(this.nameKey(name), 2 * limit, true);
    for (let i = 0; i + 1 < sampled.length; i += 2) {
      const member = sampled[i]!;
      const id = sampled[i + 1]!;
      if (member.startsWith("L")) {
        legacy.push(member.slice(2));
      } else if (id !== "") {
        const [, address] = splitMember(member, 3) as [string, string];
        if (!shoal.has(address)) shoal.set(address, id);
      }
    }
    const first = this.#fair([...shoal.keys()], limit);
    const rest = this.#fair(
      legacy.filter((a) => !shoal.has(a)),
      limit - first.length,
    );
    return [
      ...await this.#withKeys(first.map((address) => ({
        address,
        protocol: "shoal" as const,
        name,
        id: shoal.get(address)!,
      }))),
      ...rest.map((address) => ({
        address,
        protocol: "legacy" as const,
        name,
        id: null,
      })),
    ];
  }

  /** The holders with the public keys their records hold. */
  async #withKeys(peers: PeerInfo[]): Promise<PeerInfo[]> {
    const records = peers.map((p) => this.#peerKey(p.address)[0]);
    const keys: string[] = [];
    await this.#client.perNode(records, async (at) => {
      const reply = await this.#client.call(
        "shoalKeys",
        records[at[0]!]!,
        ...at.map((i) => records[i]!),
      ) as string[];
      at.forEach((i, r) => keys[i] = reply[r] ?? "");
    });
    return peers.map((p, i) => keys[i] ? { ...p, key: keys[i]! } : p);
  }

  /** Up to `limit` addresses, round-robin across networks at random. */
  #fair(addresses: string[], limit: number): string[] {
    if (limit <= 0 || addresses.length === 0) return [];
    const set = new HolderSet();
    for (const a of addresses) set.add(a, networkOf(hostOf(a)));
    return set.sample(limit, this.#random);
  }

  #contentKey(id: string): string {
    return `${this.#prefix}:{c:${id}}`;
  }

  /**
   * The key of a name's holders (for tests and tools).
   *
   * @param name The name.
   * @returns The Redis key.
   */
  nameKey(name: string): string {
    return `${this.#prefix}:{f:${name}}`;
  }

  /**
   * {@inheritDoc TrackerStore.search}
   *
   * @param query Substring or glob; everything when absent.
   * @param options The bounds.
   * @returns The entries, whether they were cut short, and the cost.
   */
  async search(query?: string, options?: SearchOptions): Promise<SearchResult> {
    // Each read maps its own connection failures (`#call`).
    return await searchNames(this.#reader(), query, options);
  }

  /** What the search needs of Redis. */
  #reader() {
    const cutoff = this.#cutoff();
    // Names' last-seen times move once a quarter TTL, and one such update
    // may be lost: the index pages keep every name seen within two
    // quarters before the cutoff, and the holder counts decide.
    const stale = cutoff - this.#ttlMs / 2;
    const names = `${this.#prefix}:{names}`;
    return {
      page: (
        index: "lex" | "base" | "ids",
        from: string,
        to: string,
        count: number,
      ) =>
        this.#client.call(
          "shoalNamesPage",
          names,
          from,
          to,
          count,
          index,
          stale,
          index === "ids" ? "idseen" : "seen",
        ) as Promise<(string | number)[]>,
      contentNames: async (ids: string[]) => {
        const out: [string, string][][] = [];
        const keys = ids.map((id) => this.#contentKey(id));
        await this.#client.perNode(keys, async (at) => {
          const reply = await this.#client.call(
            "shoalContentNames",
            keys[at[0]!]!,
            cutoff,
            ...at.map((i) => keys[i]!),
          ) as (string | number)[];
          let r = 0;
          for (const i of at) {
            const n = Number(reply[r++]);
            const sizes: [string, string][] = [];
            for (let k = 0; k < n; k++, r += 2) {
              sizes.push([String(reply[r]), String(reply[r + 1])]);
            }
            out[i] = sizes;
          }
        });
        return out;
      },
      tally: async (names: string[]) => {
        const out: { pairs: [string, number][]; legacy: number }[] = [];
        const keys = names.map((n) => this.nameKey(n));
        await this.#client.perNode(keys, async (at) => {
          const reply = await this.#client.call(
            "shoalNameTally",
            keys[at[0]!]!,
            cutoff,
            at.length,
            ...at.map((i) => keys[i]!),
          ) as (string | number)[];
          let r = 0;
          for (const i of at) {
            const n = Number(reply[r++]);
            const pairs: [string, number][] = [];
            for (let p = 0; p < n; p++, r += 2) {
              pairs.push([String(reply[r]), Number(reply[r + 1])]);
            }
            out[i] = { pairs, legacy: Number(reply[r++]) };
          }
        });
        return out;
      },
      count: async (ids: string[], sizes: string[][], known: number[][]) => {
        const out: number[][] = [];
        const keys = ids.map((id) => this.#contentKey(id));
        await this.#client.perNode(keys, async (at) => {
          const reply = await this.#client.call(
            "shoalContentCount",
            keys[at[0]!]!,
            cutoff,
            at.length,
            ...at.map((i) => keys[i]!),
            ...at.map((i) => sizes[i]!.join(",")),
            ...at.map((i) => known[i]!.join(",")),
          ) as number[];
          let r = 0;
          for (const i of at) out[i] = sizes[i]!.map(() => Number(reply[r++]));
        });
        return out;
      },
      sample: (name: string, want: number) =>
        this.#sample(this.nameKey(name), want),
      fair: (addresses: string[], limit: number) =>
        this.#fair(addresses, limit),
    };
  }

  /**
   * {@inheritDoc TrackerStore.seedList}
   *
   * @param options The bounds.
   * @returns The map and whether it was cut short.
   */
  async seedList(options: SeedListOptions = {}): Promise<SeedList> {
    const result = await searchNames(
      this.#reader(),
      undefined,
      undefined,
      options,
    );
    return result.seed!;
  }

  /**
   * No sweeper is needed: replies filter by last-seen time, and keys of
   * peers nobody refreshes expire in Redis.
   *
   * @returns Always empty.
   */
  expire(): Promise<string[]> {
    return Promise.resolve([]);
  }

  /**
   * Counts peer records by scanning (for tests and tools, not per request).
   *
   * @returns Peers held (live, and expired ones Redis has not dropped yet).
   */
  size(): Promise<number> {
    return this.#client.countKeys(`${this.#prefix}:{n:*}:p:*`);
  }
}

function encodeFiles(
  files: readonly (FileAnnouncement | StoredFile)[],
): string {
  const seen = new Set<string>();
  const out: Entry[] = [];
  for (const { name, id, size } of files) {
    if (CONTROL.test(name)) {
      throw new TypeError(
        `Invalid file name ${
          JSON.stringify(name)
        }: it holds a control character`,
      );
    }
    if (seen.has(name)) continue; // one entry per name, the first
    seen.add(name);
    const lower = name.toLowerCase();
    const entry: Entry = [name, id ?? "", size === null ? "" : String(size)];
    if (lower !== name) entry.push(lower);
    out.push(entry);
  }
  return out.length === 0 ? "[]" : JSON.stringify(out);
}

/** The first `parts - 1` NUL-separated fields and the rest. */
function splitMember(member: string, parts: number): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 1; i < parts; i++) {
    const nul = member.indexOf("\0", start);
    out.push(member.slice(start, nul));
    start = nul + 1;
  }
  out.push(member.slice(start));
  return out;
}
