/**
 * Private helper of the tests and the tracker benchmark: real Redis servers,
 * one `redis-server` on a free port or a three-master Redis Cluster built
 * with `redis-cli --cluster create`. Nothing is persisted (`--save ""
 * --appendonly no`) and whoever starts a server stops it.
 *
 * @module
 */

/** A port that was free a moment ago. */
function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/** Polls `check` every 25 ms until it is true, or fails after `timeoutMs`. */
async function pollUntil(
  check: () => Promise<boolean>,
  what: string,
  { timeoutMs }: { timeoutMs: number },
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms: ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A temporary directory removed on dispose. */
async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "shoal_redis_" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/**
 * Memory Redis uses for data, bytes (`used_memory` of `INFO memory`).
 *
 * @param port The server.
 * @returns The bytes.
 */
export async function usedMemory(port: number): Promise<number> {
  const info = await cli(port, "INFO", "memory");
  const match = /^used_memory:(\d+)/m.exec(info);
  if (!match) throw new Error(`Cannot read used_memory of Redis on ${port}`);
  return Number(match[1]);
}

/** One `redis-server` process. */
export class RedisServer implements AsyncDisposable {
  /** Its port on 127.0.0.1. */
  readonly port: number;
  readonly #args: string[];
  #child: Deno.ChildProcess | undefined;

  /**
   * Describes a server; nothing runs until {@linkcode RedisServer.start}.
   *
   * @param port Its port.
   * @param args Extra `redis-server` arguments.
   */
  constructor(port: number, args: string[]) {
    this.port = port;
    this.#args = args;
  }

  /** `redis://127.0.0.1:PORT`. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts it and waits until it answers `PING`. */
  async start(): Promise<void> {
    this.#child = new Deno.Command("redis-server", {
      args: [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        ...this.#args,
      ],
      stdout: "null",
      stderr: "null",
      stdin: "null",
    }).spawn();
    await pollUntil(
      async () => (await cli(this.port, "PING")).trim() === "PONG",
      `redis-server on port ${this.port} to answer PING`,
      { timeoutMs: 10_000 },
    );
  }

  /** Kills it (SIGKILL) and waits for it to exit: data in memory is lost. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
  }

  /** Same as {@linkcode RedisServer.stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/**
 * Runs `redis-cli -p PORT …args` and returns its output.
 *
 * @param port The server.
 * @param args The command.
 * @returns Its stdout (empty when it could not connect).
 */
export async function cli(port: number, ...args: string[]): Promise<string> {
  const output = await new Deno.Command("redis-cli", {
    args: ["-h", "127.0.0.1", "-p", String(port), ...args],
    stdout: "piped",
    stderr: "null",
    stdin: "null",
  }).output();
  return new TextDecoder().decode(output.stdout);
}

/** A free port whose cluster bus port (+10000) is free too. */
function freeClusterPort(): number {
  for (;;) {
    const port = freePort();
    if (port > 55_000) continue;
    try {
      Deno.listen({ hostname: "127.0.0.1", port: port + 10_000 }).close();
      return port;
    } catch { /* bus port taken: try another */ }
  }
}

/**
 * Starts one `redis-server` on a free port.
 *
 * @returns The running server; `await using` it.
 */
export async function startRedis(): Promise<RedisServer> {
  const server = new RedisServer(freePort(), []);
  await server.start();
  return server;
}

/** A three-master Redis Cluster. */
export interface RedisCluster extends AsyncDisposable {
  /** Its servers. */
  readonly servers: RedisServer[];
  /** `redis-cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`. */
  readonly url: string;
}

/**
 * Starts three cluster-enabled servers and joins them into a cluster of
 * three masters, waiting until every node reports `cluster_state:ok`.
 *
 * @returns The cluster; `await using` it.
 */
export async function startRedisCluster(): Promise<RedisCluster> {
  const dir = await tempDir();
  const servers: RedisServer[] = [];
  const close = async () => {
    for (const server of servers) await server.stop();
    await dir[Symbol.asyncDispose]();
  };
  try {
    for (let i = 0; i < 3; i++) {
      const port = freeClusterPort();
      const server = new RedisServer(port, [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        `${dir.path}/nodes-${port}.conf`,
        "--cluster-node-timeout",
        "2000",
        "--dir",
        dir.path,
      ]);
      servers.push(server);
      await server.start();
    }
    const nodes = servers.map((s) => `127.0.0.1:${s.port}`);
    const create = await new Deno.Command("redis-cli", {
      args: [
        "--cluster",
        "create",
        ...nodes,
        "--cluster-replicas",
        "0",
        "--cluster-yes",
      ],
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).output();
    if (!create.success) {
      throw new Error(
        `redis-cli --cluster create failed: ${
          new TextDecoder().decode(create.stderr)
        }`,
      );
    }
    for (const server of servers) {
      await pollUntil(
        async () =>
          (await cli(server.port, "CLUSTER", "INFO")).includes(
            "cluster_state:ok",
          ),
        `cluster node ${server.port} to report cluster_state:ok`,
        { timeoutMs: 20_000 },
      );
    }
    return {
      servers,
      url: `redis-cluster://${nodes.join(",")}`,
      [Symbol.asyncDispose]: close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
