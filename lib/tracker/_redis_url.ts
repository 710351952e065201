/**
 * Private parsing of the tracker's Redis store URLs,
 * `redis://HOST:PORT[/DB]` and `redis-cluster://HOST:PORT[,HOST:PORT…]`,
 * without loading the Redis client.
 *
 * @module
 */

/** Where a store URL points. */
export interface RedisTarget {
  /** Whether it is a cluster. */
  cluster: boolean;
  /** The nodes given. */
  nodes: { host: string; port: number }[];
  /** The database number (single server). */
  db: number;
}

/**
 * Parses `redis://HOST:PORT[/DB]` or `redis-cluster://HOST:PORT[,…]`.
 *
 * @param url The URL.
 * @returns The nodes, database and mode.
 * @throws {TypeError} If it is neither.
 */
export function parseRedisUrl(url: string): RedisTarget {
  const match = /^(redis|redis-cluster):\/\/([^/]+?)(?:\/(\d+))?\/?$/.exec(url);
  const bad = () =>
    new TypeError(
      `Invalid Redis URL "${url}": use redis://HOST:PORT[/DB] or redis-cluster://HOST:PORT[,HOST:PORT…]`,
    );
  if (!match) throw bad();
  const cluster = match[1] === "redis-cluster";
  const nodes = match[2]!.split(",").map((part) => {
    const m = /^(\[[^\]]+\]|[^:\[\]]+)(?::(\d{1,5}))?$/.exec(part);
    if (!m) throw bad();
    const port = m[2] === undefined ? 6379 : Number(m[2]);
    if (port < 1 || port > 65535) throw bad();
    return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
  });
  if (!cluster && nodes.length !== 1) throw bad();
  if (cluster && match[3] !== undefined) throw bad();
  return { cluster, nodes, db: Number(match[3] ?? 0) };
}
