/**
 * Private connection of the Redis tracker store: opens a single-server or
 * cluster client (the client library is loaded on demand), defines the
 * store's scripts, runs them with connection failures turned into
 * {@linkcode StoreUnavailableError}, and groups keys by the node serving them.
 *
 * @module
 */
import type { Cluster, Redis } from "ioredis";
import { keySlot } from "./_key_slot.ts";
import { parseRedisUrl } from "./_redis_url.ts";
import { StoreUnavailableError } from "./store.ts";

/** Calls of the scripts defined on the client. */
type ScriptCall = (...args: (string | number)[]) => Promise<unknown>;

/** What the Redis client says when Redis cannot be reached or answered. */
const UNREACHABLE =
  /Connection is closed|isn't writeable|timed out|Cluster isn't ready|startup nodes|refresh slots|max retries|ECONN|EPIPE|ETIMEDOUT|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|socket|^(CLUSTERDOWN|LOADING|MASTERDOWN|TRYAGAIN)/i;

/**
 * A connection failure as {@linkcode StoreUnavailableError}; others as is.
 *
 * @param error What a call threw.
 * @returns The error to throw.
 */
export function unavailable(error: unknown): unknown {
  if (error instanceof StoreUnavailableError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (!UNREACHABLE.test(message)) return error;
  return new StoreUnavailableError(`Cannot reach Redis: ${message}`, {
    cause: error,
  });
}

/** A connection to one Redis server or a Redis Cluster. */
export class RedisClient {
  /** Whether it is a cluster. */
  readonly cluster: boolean;
  readonly #redis: Redis | Cluster;
  #closed = false;

  private constructor(redis: Redis | Cluster, cluster: boolean) {
    this.#redis = redis;
    this.cluster = cluster;
    // Errors are reported by the calls that fail; the client reconnects.
    redis.on("error", () => {});
  }

  /**
   * Opens a connection and waits up to `waitMs` for it (a Redis that is down
   * is connected to once it is up).
   *
   * @param url `redis://…` or `redis-cluster://…`.
   * @param scripts Name → Lua source and number of keys.
   * @param timeoutMs A call unanswered this long fails, ms.
   * @param waitMs Longest wait for the first connection, ms.
   * @returns The connection.
   */
  static async open(
    url: string,
    scripts: Record<string, [lua: string, keys: number]>,
    timeoutMs: number,
    waitMs: number,
  ): Promise<RedisClient> {
    const target = parseRedisUrl(url);
    const { Cluster, Redis } = await import("ioredis");
    const retry = (times: number) => Math.min(50 * 2 ** times, 1000);
    const common = {
      lazyConnect: true,
      // Calls are pipelined on the connection as they are made: batching
      // them per tick (`enableAutoPipelining`) costs the tracker more than
      // the writes it saves (heartbeats/s on a cluster: 1,750–1,880 with
      // it, 2,040–2,170 without).
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: timeoutMs,
      connectTimeout: timeoutMs,
      retryStrategy: retry,
    };
    const redis = target.cluster
      ? new Cluster(target.nodes, {
        lazyConnect: true,
        enableOfflineQueue: false,
        scaleReads: "master",
        clusterRetryStrategy: retry,
        slotsRefreshTimeout: timeoutMs,
        redisOptions: common,
      })
      : new Redis({ ...target.nodes[0]!, db: target.db, ...common });
    for (const [name, [lua, numberOfKeys]] of Object.entries(scripts)) {
      redis.defineCommand(name, { lua, numberOfKeys });
    }
    const client = new RedisClient(redis, target.cluster);
    const ready = new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        redis.off("ready", done);
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      redis.on("ready", done);
    });
    redis.connect().catch(() => {});
    await ready;
    return client;
  }

  /**
   * Runs a defined script.
   *
   * @param name The script.
   * @param args Its keys, then its arguments.
   * @returns Its reply.
   * @throws {StoreUnavailableError} If Redis cannot be reached.
   */
  async call(name: string, ...args: (string | number)[]): Promise<unknown> {
    const call = (this.#redis as unknown as Record<string, ScriptCall>)[name]!;
    try {
      return await call.apply(this.#redis, args);
    } catch (error) {
      throw unavailable(error);
    }
  }

  /**
   * Fields of a hash.
   *
   * @param key The hash.
   * @param fields The fields.
   * @returns Their values (`null` when absent).
   * @throws {StoreUnavailableError} If Redis cannot be reached.
   */
  async hmget(key: string, ...fields: string[]): Promise<(string | null)[]> {
    try {
      return await this.#redis.hmget(key, ...fields);
    } catch (error) {
      throw unavailable(error);
    }
  }

  /**
   * Runs `read` once per node with the indexes of the keys it serves (one
   * group on a single Redis); per slot if the slot map moved under it.
   *
   * @param keys The keys.
   * @param read What to do with one node's keys.
   */
  async perNode(
    keys: string[],
    read: (at: number[]) => Promise<void>,
  ): Promise<void> {
    if (keys.length === 0) return;
    if (!this.cluster) return await read(keys.map((_, i) => i));
    const slots = (this.#redis as Cluster).slots;
    const byNode = new Map<string, number[]>();
    const bySlot = new Map<number, number[]>();
    keys.forEach((key, i) => {
      const slot = keySlot(key);
      const node = slots[slot]?.[0] ?? `slot ${slot}`;
      let group = byNode.get(node);
      if (!group) byNode.set(node, group = []);
      group.push(i);
      let single = bySlot.get(slot);
      if (!single) bySlot.set(slot, single = []);
      single.push(i);
    });
    try {
      await Promise.all([...byNode.values()].map(read));
    } catch (error) {
      if (error instanceof StoreUnavailableError) throw error;
      // A slot moved between nodes: each slot on its own is always right.
      await Promise.all([...bySlot.values()].map(read));
    }
  }

  /**
   * Counts keys matching a pattern by scanning every master (for tests and
   * tools, never per request).
   *
   * @param match A `SCAN MATCH` pattern.
   * @returns How many keys match.
   * @throws {StoreUnavailableError} If Redis cannot be reached.
   */
  async countKeys(match: string): Promise<number> {
    const nodes = this.cluster
      ? (this.#redis as Cluster).nodes("master")
      : [this.#redis as Redis];
    let count = 0;
    try {
      for (const node of nodes) {
        let cursor = "0";
        do {
          const [next, keys] = await node.scan(
            cursor,
            "MATCH",
            match,
            "COUNT",
            1000,
          );
          cursor = next;
          count += keys.length;
        } while (cursor !== "0");
      }
    } catch (error) {
      throw unavailable(error);
    }
    return count;
  }

  /** Closes the connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}
