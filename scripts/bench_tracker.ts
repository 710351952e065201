/**
 * Tracker load benchmark: runs `tracker.ts` as a subprocess, registers many
 * simulated peers (10,000 × 10 files by default) and keeps them heartbeating
 * at the tracker's interval while it measures `getpeers` and `list` latency
 * percentiles and the tracker's memory. Prints a table, then one JSON line.
 *
 * `deno task bench:tracker [--peers 10000] [--files 10] [--duration 30s]
 * [--interval 30s] [--concurrency 32] [--query-rate 100]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import type { FileAnnouncement } from "../lib/protocol/messages.ts";
import { TrackerClient } from "../lib/tracker/client.ts";

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

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      peers: { type: "string", default: "10000" },
      files: { type: "string", default: "10" },
      concurrency: { type: "string", default: "32" },
      interval: { type: "string", default: "30s" },
      duration: { type: "string", default: "30s" },
      "query-rate": { type: "string", default: "100" },
    },
  });
  const peers = positive("peers", values.peers);
  const files = positive("files", values.files);
  const concurrency = positive("concurrency", values.concurrency);
  const intervalMs = parseMs(values.interval);
  const durationMs = parseMs(values.duration);
  const queryRate = positive("query-rate", values["query-rate"]);

  // The tracker runs as the user would run it, in its own process, with the
  // per-address limits lifted: every simulated peer shares 127.0.0.1.
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      fileURLToPath(new URL("../tracker.ts", import.meta.url)),
      "--no-secret",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--interval",
      `${intervalMs}ms`,
      "--rate-limit",
      "0",
      "--max-connections-per-address",
      "1024",
      "--max-peers-per-address",
      String(peers),
      "--max-files-per-address",
      String(peers * files),
      "--quiet",
    ],
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).values();
  let output = "";
  let port = 0;
  while (port === 0) {
    const { value, done } = await lines.next();
    if (done) throw new Error(`Tracker exited before listening:\n${output}`);
    output += value;
    const match = / listening on 127\.0\.0\.1:(\d+) /.exec(output);
    if (match) port = Number(match[1]);
  }
  const drain = (async () => {
    for await (const _ of lines) { /* keep the pipe flowing */ }
  })();
  const address = `127.0.0.1:${port}`;
  const client = new TrackerClient(address);
  const baseline = await processMemory(child.pid);

  try {
    // Phase 1: every simulated peer registers (one connection per request,
    // exactly like TrackerClient in a real peer).
    const registerMs: number[] = [];
    const registerStart = performance.now();
    await runPool(peers, concurrency, async (i) => {
      await timed(
        registerMs,
        () => client.register(1024 + i, simulatedFiles(i, files)),
      );
    });
    const registerSeconds = (performance.now() - registerStart) / 1000;
    const afterRegister = await processMemory(child.pid);
    const listed = await client.list();
    if (listed.length === 0) throw new Error("Tracker lists no files");

    // Phase 2: heartbeats at the tracker's interval (each peer once per
    // interval, spread evenly) while a measuring client queries.
    const heartbeatMs: number[] = [];
    let heartbeats = 0;
    let heartbeatErrors = 0;
    const stop = performance.now() + durationMs;
    const heartbeating = (async () => {
      const start = performance.now();
      const perMs = peers / intervalMs;
      let sent = 0;
      const pending = new Set<Promise<void>>();
      while (performance.now() < stop) {
        const due = Math.floor((performance.now() - start) * perMs);
        while (sent < due && pending.size < concurrency) {
          const i = sent++ % peers;
          const p = timed(heartbeatMs, () => client.heartbeat(1024 + i))
            .then(() => void heartbeats++, () => void heartbeatErrors++)
            .finally(() => pending.delete(p));
          pending.add(p);
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await Promise.all(pending);
    })();

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
      const due = queryStart + round * 1000 / queryRate;
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
    await heartbeating;
    if (holders === 0) throw new Error("getpeers found no holders");
    const end = await processMemory(child.pid);

    const results = {
      peers,
      filesPerPeer: files,
      files: peers * files,
      registerPerSecond: Math.round(peers / registerSeconds),
      register: percentiles(registerMs),
      heartbeats,
      heartbeatErrors,
      heartbeat: percentiles(heartbeatMs),
      getpeersByName: percentiles(getpeersName),
      getpeersById: percentiles(getpeersId),
      listQuery: percentiles(listQuery),
      listAll: percentiles(listAll),
      listAllEntries: listed.length,
      trackerMemoryMiB: {
        baselineRss: baseline.rss,
        afterRegisterRss: afterRegister.rss,
        endRss: end.rss,
        peakRss: end.hwm,
      },
    };
    const rows: [string, Percentiles][] = [
      ["register", results.register],
      ["heartbeat", results.heartbeat],
      ["getpeers (name)", results.getpeersByName],
      ["getpeers (id)", results.getpeersById],
      ["list (glob query)", results.listQuery],
      [`list (all, ${listed.length} entries)`, results.listAll],
    ];
    const pad = (text: string, width: number) => text.padStart(width);
    console.log(
      `Tracker load: ${peers} peers × ${files} files = ${
        peers * files
      } files, registered at ${results.registerPerSecond}/s; ${heartbeats} heartbeats (${heartbeatErrors} errors) over ${
        durationMs / 1000
      } s`,
    );
    console.log(
      `${"request".padEnd(30)}${pad("n", 7)}${pad("p50 ms", 9)}${
        pad("p95 ms", 9)
      }${pad("p99 ms", 9)}${pad("max ms", 9)}`,
    );
    for (const [name, p] of rows) {
      console.log(
        `${name.padEnd(30)}${pad(String(p.n), 7)}${pad(p.p50.toFixed(2), 9)}${
          pad(p.p95.toFixed(2), 9)
        }${pad(p.p99.toFixed(2), 9)}${pad(p.max.toFixed(2), 9)}`,
      );
    }
    console.log(
      `tracker memory: ${baseline.rss} MiB idle, ${afterRegister.rss} MiB after registering, ${end.rss} MiB at the end, peak ${end.hwm} MiB`,
    );
    const met = results.getpeersByName.p99 < 10 &&
      results.getpeersById.p99 < 10 && end.hwm < 300;
    console.log(
      `targets (p99 getpeers < 10 ms, memory < 300 MiB): ${
        met ? "met" : "MISSED"
      }`,
    );
    console.log(JSON.stringify({ bench: "tracker", ...results, met }));
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await drain;
  }
}

if (import.meta.main) await main();
