/**
 * Tracker load benchmark: runs `tracker.ts` as a subprocess over a store
 * (memory, or a Redis server or three-master Redis Cluster it starts
 * itself), registers many simulated peers (10,000 × 10 files by default) and
 * keeps them heartbeating at the tracker's interval from a worker while the
 * main thread times `getpeers` and `list`; then measures heartbeat
 * throughput in a closed loop against one tracker and, on Redis, against two
 * trackers sharing it. With `--plaintext` it first runs the same load against
 * a server that answers without doing any work (`_noop_tracker.ts`), the
 * floor that this machine, the runtime and the load generator set, and
 * reports the tracker's figures beside it. Prints a table, then one JSON
 * line.
 *
 * `deno task bench:tracker [--store memory|redis|redis-cluster|URL]
 * [--peers 10000] [--files 10] [--duration 30s] [--interval 30s]
 * [--concurrency 32] [--query-rate 100] [--throughput 5s] [--plaintext]
 * [--skip-noop]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import type { FileAnnouncement } from "../lib/protocol/messages.ts";
import { TrackerClient } from "../lib/tracker/client.ts";
import {
  type LoadResult,
  runLoadWorker,
  simulatedPeer,
} from "./_bench_load.ts";
import { taskFlags } from "./_tasks.ts";
import {
  cli,
  type RedisCluster,
  type RedisServer,
  startRedis,
  startRedisCluster,
  usedMemory,
} from "./_redis.ts";

/** Names of popular files: each is held by many simulated peers. */
const POPULAR = 100;

/**
 * The files simulated peer `peer` announces: `files - 1` files of its own and
 * one of {@linkcode POPULAR} popular files shared by many peers.
 *
 * @param peer Index of the peer.
 * @param files Files per peer.
 * @returns The announcements.
 */
export function simulatedFiles(
  peer: number,
  files: number,
): FileAnnouncement[] {
  const out: FileAnnouncement[] = [];
  for (let j = 0; j < files - 1; j++) {
    out.push({
      name: `peer-${peer}/file-${j}.bin`,
      id: (peer * files + j + 1).toString(16).padStart(64, "0"),
      size: 1_000_000 + j,
    });
  }
  const popular = peer % POPULAR;
  out.push({
    name: `popular/release-${popular}.iso`,
    id: `f${popular.toString(16).padStart(63, "0")}`,
    size: 700_000_000,
  });
  return out;
}

/**
 * Runs `task(i)` for `i` in `[0, count)` with at most `concurrency` running.
 *
 * @param count Number of tasks.
 * @param concurrency Most at once.
 * @param task The work.
 */
export async function runPool(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, worker),
  );
}

/** Latency percentiles in milliseconds. */
export interface Percentiles {
  /** Samples. */
  n: number;
  /** Median. */
  p50: number;
  /** 95th percentile. */
  p95: number;
  /** 99th percentile. */
  p99: number;
  /** Slowest sample. */
  max: number;
}

/**
 * Percentiles of latency samples (nearest rank).
 *
 * @param samples Latencies in ms.
 * @returns The percentiles, rounded to 0.01 ms.
 */
export function percentiles(samples: number[]): Percentiles {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => {
    if (sorted.length === 0) return NaN;
    const rank = Math.min(
      sorted.length - 1,
      Math.max(0, Math.ceil(p * sorted.length) - 1),
    );
    return Math.round(sorted[rank]! * 100) / 100;
  };
  return {
    n: sorted.length,
    p50: at(0.5),
    p95: at(0.95),
    p99: at(0.99),
    max: at(1),
  };
}

/** `a / b` rounded to 0.01. */
function ratio(a: number, b: number): number {
  return Math.round(a / b * 100) / 100;
}

/**
 * Times one async call.
 *
 * @param samples Where the latency in ms goes.
 * @param call The call.
 * @returns Its result.
 */
export async function timed<T>(
  samples: number[],
  call: () => Promise<T>,
): Promise<T> {
  const start = performance.now();
  const result = await call();
  samples.push(performance.now() - start);
  return result;
}

/**
 * Resident and peak memory of a process, MiB, from Linux's
 * `/proc/<pid>/status` (read through `cat`: Deno treats `/proc` as needing
 * full permissions).
 *
 * @param pid The process.
 * @returns `VmRSS` and `VmHWM` in MiB.
 */
export async function processMemory(
  pid: number,
): Promise<{ rss: number; hwm: number }> {
  const output = await new Deno.Command("cat", {
    args: [`/proc/${pid}/status`],
    stdout: "piped",
    stderr: "null",
  }).output();
  const status = new TextDecoder().decode(output.stdout);
  const kib = (field: string) => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    if (!match) throw new Error(`Cannot read ${field} of process ${pid}`);
    return Math.round(Number(match[1]) / 1024 * 10) / 10;
  };
  return { rss: kib("VmRSS"), hwm: kib("VmHWM") };
}

function parseMs(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text);
  if (!match) throw new TypeError(`Invalid duration "${text}": use e.g. 30s`);
  return Number(match[1]) *
    { ms: 1, s: 1000, m: 60_000 }[(match[2] ?? "s") as "ms" | "s" | "m"];
}

function positive(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new TypeError(`Invalid --${name} "${text}": use a positive integer`);
  }
  return n;
}

/** A tracker child process and its port. */
interface TrackerChild {
  child: Deno.ChildProcess;
  address: string;
  drain: Promise<void>;
}

/** The server that answers the benchmark's requests without any work. */
const NOOP_TRACKER = fileURLToPath(
  new URL("./_noop_tracker.ts", import.meta.url),
);

/**
 * Starts `tracker.ts` as the user would, with the per-address limits lifted
 * (every simulated peer shares 127.0.0.1) and no rate limit.
 */
function spawnTracker(
  store: string,
  peers: number,
  files: number,
  intervalMs: number,
): Promise<TrackerChild> {
  return spawnServer(
    fileURLToPath(new URL("../tracker.ts", import.meta.url)),
    [
      "--no-secret",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--interval",
      `${intervalMs}ms`,
      // Registering 100,000 peers takes longer than 3 intervals here: the
      // first must not expire before the heartbeat phase reaches them.
      "--expiry",
      `${Math.max(3 * intervalMs, 600_000)}ms`,
      "--rate-limit",
      "0",
      // Each simulated peer advertises its own host (simulatedPeer).
      "--trust-advertised-address",
      "--max-connections-per-address",
      "1024",
      "--max-peers-per-address",
      String(peers),
      "--max-files-per-address",
      String(peers * files),
      "--store",
      store,
      "--quiet",
    ],
    // The Redis client reads its environment.
    store === "memory" ? [] : ["--allow-env"],
  );
}

/**
 * Runs a server script with the `tracker` task's flags (and `extraFlags`,
 * which replace a narrower flag of the same permission) and waits until it
 * says it is listening.
 */
async function spawnServer(
  script: string,
  args: string[],
  extraFlags: string[] = [],
): Promise<TrackerChild> {
  const permission = (flag: string) => flag.split("=")[0];
  const flags = taskFlags("tracker").filter((flag) =>
    !extraFlags.some((extra) => permission(extra) === permission(flag))
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, ...extraFlags, script, ...args],
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).values();
  let output = "";
  let port = 0;
  while (port === 0) {
    const { value, done } = await lines.next();
    if (done) {
      throw new Error(`${script} exited before listening:\n${output}`);
    }
    output += value;
    const match = / listening on 127\.0\.0\.1:(\d+) /.exec(output);
    if (match) port = Number(match[1]);
  }
  const drain = (async () => {
    for await (const _ of lines) { /* keep the pipe flowing */ }
  })();
  return { child, address: `127.0.0.1:${port}`, drain };
}

async function stopServer(tracker: TrackerChild): Promise<void> {
  try {
    tracker.child.kill("SIGTERM");
  } catch { /* already gone */ }
  await tracker.child.status;
  await tracker.drain;
}

/** The Redis the benchmark runs against, started by it or given. */
interface Store {
  url: string;
  /** Ports whose `used_memory` is summed (none for a URL given). */
  ports: number[];
  close(): Promise<void>;
}

async function openStore(store: string): Promise<Store> {
  if (store === "redis") {
    const server: RedisServer = await startRedis();
    return {
      url: server.url,
      ports: [server.port],
      close: () => server.stop(),
    };
  }
  if (store === "redis-cluster") {
    const cluster: RedisCluster = await startRedisCluster();
    return {
      url: cluster.url,
      ports: cluster.servers.map((s) => s.port),
      close: async () => await cluster[Symbol.asyncDispose](),
    };
  }
  return { url: store, ports: [], close: () => Promise.resolve() };
}

/**
 * Redis's own time for the tracker's calls: script calls and microseconds
 * summed over the nodes (`INFO commandstats`).
 */
async function scriptStats(
  ports: number[],
): Promise<{ calls: number; usec: number }> {
  let calls = 0;
  let usec = 0;
  for (const port of ports) {
    const stats = await cli(port, "INFO", "commandstats");
    for (
      const m of stats.matchAll(
        /^cmdstat_eval(?:sha)?:calls=(\d+),usec=(\d+)/gm,
      )
    ) {
      calls += Number(m[1]);
      usec += Number(m[2]);
    }
  }
  return { calls, usec };
}

/** The slowest command Redis logged (SLOWLOG, over 10 ms), and its name. */
async function slowest(
  ports: number[],
): Promise<{ ms: number; command: string }> {
  let worst = { ms: 0, command: "" };
  for (const port of ports) {
    const text = await cli(port, "--json", "SLOWLOG", "GET", "128");
    const entries = JSON.parse(text || "[]") as [
      number,
      number,
      number,
      string[],
    ][];
    for (const [, , usec, args] of entries) {
      // A script shows as EVALSHA and its sha: name the script by its key.
      const command = `${args[0]} ${args[3] ?? args[1] ?? ""}`.slice(0, 60);
      if (usec / 1000 > worst.ms) worst = { ms: usec / 1000, command };
    }
  }
  return { ms: Math.round(worst.ms * 10) / 10, command: worst.command };
}

async function redisBytes(ports: number[]): Promise<number> {
  let total = 0;
  for (const port of ports) total += await usedMemory(port);
  return total;
}

/** Requests per second of closed-loop heartbeats, from two workers. */
async function throughput(
  trackers: string[],
  peers: number,
  durationMs: number,
  concurrency: number,
  encryption: boolean,
): Promise<{ perSecond: number; errors: number; latency: Percentiles }> {
  const results: LoadResult[] = await Promise.all(
    [0, 1].map((index) =>
      runLoadWorker({
        mode: "closed",
        trackers,
        peers,
        intervalMs: 0,
        durationMs,
        concurrency,
        index,
        of: 2,
        encryption,
      })
    ),
  );
  const ok = results.reduce((n, r) => n + r.ok, 0);
  const elapsed = Math.max(...results.map((r) => r.elapsedMs));
  return {
    perSecond: Math.round(ok / (elapsed / 1000)),
    errors: results.reduce((n, r) => n + r.errors, 0),
    latency: percentiles(results.flatMap((r) => r.latencies)),
  };
}

/** The load's settings, from the command line. */
interface LoadSettings {
  peers: number;
  files: number;
  concurrency: number;
  intervalMs: number;
  durationMs: number;
  throughputMs: number;
  queryRate: number;
  encryption: boolean;
}

/** What the load measured against one server. */
interface LoadFigures {
  registerPerSecond: number;
  registerErrors: number;
  register: Percentiles;
  heartbeats: number;
  heartbeatErrors: number;
  heartbeat: Percentiles;
  getpeersByName: Percentiles;
  getpeersById: Percentiles;
  listQuery: Percentiles;
  listAll: Percentiles;
  listAllEntries: number;
  /** Heartbeats in a closed loop. */
  closedLoop: { perSecond: number; errors: number; latency: Percentiles };
}

/**
 * Runs the load against the server at `address`: every simulated peer
 * registers; then they heartbeat at the interval from a worker while this
 * thread times paced queries; then heartbeats run in a closed loop.
 *
 * @param phase Called when the peers have registered and when the queries
 *   are done (to read the server's memory there).
 */
async function runLoad(
  address: string,
  settings: LoadSettings,
  phase: (done: "registered" | "queried") => Promise<void>,
): Promise<LoadFigures> {
  const { peers, files, concurrency, durationMs, encryption } = settings;
  const client = new TrackerClient(address, { encryption });
  // Phase 1: every simulated peer registers (one connection per request,
  // exactly like TrackerClient in a real peer).
  const registerMs: number[] = [];
  let registerErrors = 0;
  const registerStart = performance.now();
  await runPool(peers, concurrency, async (i) => {
    const { host, port } = simulatedPeer(i);
    // A refused registration is retried (and counted), as a peer would.
    for (let attempt = 0;; attempt++) {
      try {
        await timed(
          registerMs,
          () => client.register(port, simulatedFiles(i, files), host),
        );
        return;
      } catch (error) {
        registerErrors++;
        if (attempt >= 3) throw error;
      }
    }
  });
  const registerSeconds = (performance.now() - registerStart) / 1000;
  await phase("registered");
  const listed = await client.list();
  if (listed.length === 0) throw new Error(`${address} lists no files`);

  // Phase 2: heartbeats at the tracker's interval (each peer once per
  // interval, spread evenly) from a worker, while this thread queries.
  const heartbeating = runLoadWorker({
    mode: "paced",
    trackers: [address],
    peers,
    intervalMs: settings.intervalMs,
    durationMs,
    concurrency,
    index: 0,
    of: 1,
    encryption,
  });
  const stop = performance.now() + durationMs;
  const getpeersName: number[] = [];
  const getpeersId: number[] = [];
  const listQuery: number[] = [];
  const listAll: number[] = [];
  // Queries are paced (`--query-rate` rounds per second, each a getpeers
  // by name and by id), as many independent users would send them.
  let round = 0;
  let holders = 0;
  const queryStart = performance.now();
  while (performance.now() < stop) {
    const due = queryStart + round * 1000 / settings.queryRate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const peer = (round * 7919) % peers;
    const file = simulatedFiles(peer, files)[round % files]!;
    holders += (await timed(
      getpeersName,
      () => client.getPeers({ name: file.name }),
    )).length;
    await timed(getpeersId, () => client.getPeers({ id: file.id }));
    if (round % 10 === 0) {
      await timed(listQuery, () => client.list(`peer-${peer}/*`));
    }
    if (round % 100 === 0) await timed(listAll, () => client.list());
    round++;
  }
  const beats = await heartbeating;
  if (holders === 0) throw new Error(`${address}: getpeers found no holders`);
  await phase("queried");

  // Phase 3: heartbeat throughput in a closed loop.
  const closedLoop = await throughput(
    [address],
    peers,
    settings.throughputMs,
    concurrency,
    encryption,
  );
  return {
    registerPerSecond: Math.round(peers / registerSeconds),
    registerErrors,
    register: percentiles(registerMs),
    heartbeats: beats.ok,
    heartbeatErrors: beats.errors,
    heartbeat: percentiles(beats.latencies),
    getpeersByName: percentiles(getpeersName),
    getpeersById: percentiles(getpeersId),
    listQuery: percentiles(listQuery),
    listAll: percentiles(listAll),
    listAllEntries: listed.length,
    closedLoop,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      store: { type: "string", default: "memory" },
      peers: { type: "string", default: "10000" },
      files: { type: "string", default: "10" },
      concurrency: { type: "string", default: "32" },
      interval: { type: "string", default: "30s" },
      duration: { type: "string", default: "30s" },
      "query-rate": { type: "string", default: "100" },
      throughput: { type: "string", default: "5s" },
      plaintext: { type: "boolean", default: false },
      "skip-noop": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(
      "Usage: deno task bench:tracker [--store memory|redis|redis-cluster|URL] [--peers 10000, or 100000 for the large run] [--files 10] [--duration 30s] [--interval 30s] [--concurrency 32] [--query-rate 100] [--throughput 5s] [--plaintext] [--skip-noop]",
    );
    return;
  }
  const storeName = values.store;
  if (
    !/^(memory|redis|redis-cluster|redis(-cluster)?:\/\/.+)$/.test(storeName)
  ) {
    throw new TypeError(
      `Invalid --store "${storeName}": use memory, redis, redis-cluster or a redis:// or redis-cluster:// URL`,
    );
  }
  const peers = positive("peers", values.peers);
  const files = positive("files", values.files);
  const concurrency = positive("concurrency", values.concurrency);
  const intervalMs = parseMs(values.interval);
  const durationMs = parseMs(values.duration);
  const throughputMs = parseMs(values.throughput);
  const queryRate = positive("query-rate", values["query-rate"]);
  const redis = storeName === "memory" ? undefined : await openStore(storeName);
  const store = redis?.url ?? "memory";
  const kind = storeName === "memory"
    ? "memory"
    : store.startsWith("redis-cluster:")
    ? "redis-cluster"
    : "redis";
  // Peers encrypt each tracker connection by default; `--plaintext`
  // measures the tracker and its store without the handshakes.
  const settings: LoadSettings = {
    peers,
    files,
    concurrency,
    intervalMs,
    durationMs,
    throughputMs,
    queryRate,
    encryption: !values.plaintext,
  };
  const { encryption } = settings;
  // The same load against a server that does no work: what this machine,
  // the runtime and the load generator allow (it speaks only plaintext).
  let noop: LoadFigures | undefined;
  if (!encryption && !values["skip-noop"]) {
    const server = await spawnServer(NOOP_TRACKER, []);
    try {
      noop = await runLoad(server.address, settings, () => Promise.resolve());
    } finally {
      await stopServer(server);
    }
  }
  const redisBefore = redis ? await redisBytes(redis.ports) : 0;
  const tracker = await spawnTracker(store, peers, files, intervalMs);
  const baseline = await processMemory(tracker.child.pid);

  try {
    let afterRegister = baseline;
    let afterQueries = baseline;
    let redisAfter = 0;
    const load = await runLoad(tracker.address, settings, async (phase) => {
      if (phase === "queried") {
        afterQueries = await processMemory(tracker.child.pid);
        return;
      }
      afterRegister = await processMemory(tracker.child.pid);
      redisAfter = redis ? await redisBytes(redis.ports) : 0;
    });
    const { closedLoop: one, ...figures } = load;
    // On Redis, two trackers over the same store.
    let two: typeof one | undefined;
    if (redis) {
      const second = await spawnTracker(store, peers, files, intervalMs);
      try {
        // The first tracker is warm from the phases before: give the second
        // a second of the same load (not counted) so both run compiled code.
        await throughput(
          [second.address],
          peers,
          1000,
          concurrency,
          encryption,
        );
        two = await throughput(
          [tracker.address, second.address],
          peers,
          throughputMs,
          concurrency,
          encryption,
        );
      } finally {
        await stopServer(second);
      }
    }
    const end = await processMemory(tracker.child.pid);
    const slowestCall = redis ? await slowest(redis.ports) : undefined;
    const scripts = redis ? await scriptStats(redis.ports) : undefined;

    const results = {
      store: kind,
      encryption,
      peers,
      filesPerPeer: files,
      files: peers * files,
      ...figures,
      heartbeatThroughput: {
        oneTracker: one.perSecond,
        ...(two
          ? {
            twoTrackers: two.perSecond,
            ratio: Math.round(two.perSecond / one.perSecond * 100) / 100,
          }
          : {}),
        errors: one.errors + (two?.errors ?? 0),
      },
      trackerMemoryMiB: {
        baselineRss: baseline.rss,
        afterRegisterRss: afterRegister.rss,
        afterQueriesRss: afterQueries.rss,
        endRss: end.rss,
        /** Peak while registering, heartbeating and answering queries. */
        peakRss: afterQueries.hwm,
        /** Peak including the closed-loop throughput phase. */
        peakRssWithThroughput: end.hwm,
      },
      ...(redis && redis.ports.length > 0
        ? {
          redisMemory: {
            usedMiB: Math.round((redisAfter - redisBefore) / 2 ** 20 * 10) /
              10,
            bytesPerFile: Math.round(
              (redisAfter - redisBefore) / (peers * files),
            ),
            slowestCall,
            // Redis CPU per script call, over the whole run (all nodes).
            usecPerCall: scripts && scripts.calls > 0
              ? Math.round(scripts.usec / scripts.calls)
              : undefined,
            scriptCalls: scripts?.calls,
          },
        }
        : {}),
      ...(noop
        ? {
          noop: {
            registerPerSecond: noop.registerPerSecond,
            heartbeat: noop.heartbeat,
            getpeersByName: noop.getpeersByName,
            getpeersById: noop.getpeersById,
            heartbeatThroughput: noop.closedLoop.perSecond,
          },
          // The tracker's figures over the no-op server's.
          vsNoop: {
            registerPerSecond: ratio(
              load.registerPerSecond,
              noop.registerPerSecond,
            ),
            getpeersByNameP99: ratio(
              load.getpeersByName.p99,
              noop.getpeersByName.p99,
            ),
            getpeersByIdP99: ratio(
              load.getpeersById.p99,
              noop.getpeersById.p99,
            ),
            heartbeatThroughput: ratio(
              one.perSecond,
              noop.closedLoop.perSecond,
            ),
          },
        }
        : {}),
    };
    const rows: [string, Percentiles, Percentiles | undefined][] = [
      ["register", load.register, noop?.register],
      ["heartbeat", load.heartbeat, noop?.heartbeat],
      ["getpeers (name)", load.getpeersByName, noop?.getpeersByName],
      ["getpeers (id)", load.getpeersById, noop?.getpeersById],
      ["list (glob query)", load.listQuery, noop?.listQuery],
      [`list (all, ${load.listAllEntries} entries)`, load.listAll, undefined],
      ["heartbeat, closed loop", one.latency, noop?.closedLoop.latency],
    ];
    const pad = (text: string, width: number) => text.padStart(width);
    console.log(
      `Tracker load (${kind} store, ${
        encryption ? "encrypted" : "plaintext"
      } connections): ${peers} peers × ${files} files = ${
        peers * files
      } files, registered at ${load.registerPerSecond}/s; ${load.heartbeats} heartbeats (${load.heartbeatErrors} errors) over ${
        durationMs / 1000
      } s`,
    );
    console.log(
      `${"request".padEnd(30)}${pad("n", 7)}${pad("p50 ms", 9)}${
        pad("p95 ms", 9)
      }${pad("p99 ms", 9)}${pad("max ms", 9)}${
        noop ? pad("no-op p99", 11) : ""
      }`,
    );
    for (const [name, p, floor] of rows) {
      console.log(
        `${name.padEnd(30)}${pad(String(p.n), 7)}${pad(p.p50.toFixed(2), 9)}${
          pad(p.p95.toFixed(2), 9)
        }${pad(p.p99.toFixed(2), 9)}${pad(p.max.toFixed(2), 9)}${
          noop ? pad(floor ? floor.p99.toFixed(2) : "", 11) : ""
        }`,
      );
    }
    console.log(
      `heartbeats, closed loop: ${one.perSecond}/s on one tracker${
        two
          ? `, ${two.perSecond}/s on two sharing the store (×${results.heartbeatThroughput.ratio})`
          : ""
      }`,
    );
    if (noop) {
      console.log(
        `no-op server, same load: registered at ${noop.registerPerSecond}/s, ${noop.closedLoop.perSecond} heartbeats/s closed loop; the tracker reaches ×${results.vsNoop?.registerPerSecond} and ×${results.vsNoop?.heartbeatThroughput} of that`,
      );
    }
    console.log(
      `tracker memory: ${baseline.rss} MiB idle, ${afterRegister.rss} MiB after registering, peak ${afterQueries.hwm} MiB under the load, ${end.hwm} MiB after the throughput phase`,
    );
    if (results.redisMemory) {
      console.log(
        `redis memory: ${results.redisMemory.usedMiB} MiB for ${
          peers * files
        } files = ${results.redisMemory.bytesPerFile} bytes per file record; ${results.redisMemory.usecPerCall} µs of Redis time per script call (${results.redisMemory.scriptCalls} calls)`,
      );
    }
    const p99 = Math.max(
      results.getpeersByName.p99,
      results.getpeersById.p99,
    );
    const targets = kind === "memory"
      ? { getpeersP99Ms: 5, peakRssMiB: 150 }
      : { getpeersP99Ms: peers > 10_000 ? 20 : 10 };
    const met = p99 <= targets.getpeersP99Ms &&
      (targets.peakRssMiB === undefined ||
        afterQueries.hwm <= targets.peakRssMiB) &&
      (two === undefined || two.perSecond > one.perSecond);
    // Whether the target is below what a server doing no work achieves here.
    const floor = noop
      ? Math.max(noop.getpeersByName.p99, noop.getpeersById.p99)
      : undefined;
    console.log(
      `targets (${
        Object.entries(targets).map(([k, v]) => `${k} ≤ ${v}`).join(", ")
      }${two ? ", two trackers > one" : ""}): ${met ? "met" : "MISSED"}${
        floor !== undefined && floor > targets.getpeersP99Ms
          ? ` (the no-op server's getpeers p99 is ${floor} ms)`
          : ""
      }`,
    );
    console.log(
      JSON.stringify({ bench: "tracker", ...results, targets, met }),
    );
  } finally {
    await stopServer(tracker);
    await redis?.close();
  }
}

if (import.meta.main) await main();
