/**
 * Benchmark of a large shared folder: cold start (hash everything) and warm
 * restart (hash cache) of a peer sharing many small files plus a few large
 * ones, and the latency from a file's last write to `getpeers` showing it.
 * Prints progress, then one JSON line with the figures.
 *
 * Run: `deno task bench:share` (flags: `--small N`, `--large-mib N`,
 * `--large-files N`, `--samples N`).
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startTracker } from "../lib/tracker/server.ts";
import { TrackerClient } from "../lib/tracker/client.ts";
import { taskFlags } from "./_tasks.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    small: { type: "string", default: "10000" },
    "large-mib": { type: "string", default: "2048" },
    "large-files": { type: "string", default: "8" },
    samples: { type: "string", default: "20" },
  },
});
const SMALL_FILES = Number(flags.small);
const LARGE_MIB = Number(flags["large-mib"]);
const LARGE_FILES = Number(flags["large-files"]);
const SAMPLES = Number(flags.samples);
const TOTAL_FILES = SMALL_FILES + LARGE_FILES;
const MIB = 1024 * 1024;

const root = new URL("../", import.meta.url).pathname;
const log = (line: string) => console.error(`[bench:share] ${line}`);

/** Writes the small files (0.5–2 KiB each, 100 per folder), a few at a time. */
async function writeSmallFiles(dir: string): Promise<void> {
  const noise = new Uint8Array(4096);
  crypto.getRandomValues(noise);
  const encoder = new TextEncoder();
  let next = 0;
  const worker = async () => {
    while (next < SMALL_FILES) {
      const i = next++;
      const folder = join(dir, `small/d${String(i % 100).padStart(2, "0")}`);
      if (i < 100) await Deno.mkdir(folder, { recursive: true });
      const size = 512 + (i * 37) % 1536;
      const bytes = new Uint8Array(size);
      bytes.set(noise.subarray(i % 2048, (i % 2048) + size));
      bytes.set(encoder.encode(`file ${i}\n`));
      await Deno.writeFile(join(folder, `f${i}.bin`), bytes);
    }
  };
  // Create the folders first, then fill them.
  for (let d = 0; d < Math.min(100, SMALL_FILES); d++) {
    await Deno.mkdir(join(dir, `small/d${String(d).padStart(2, "0")}`), {
      recursive: true,
    });
  }
  await Promise.all(Array.from({ length: 8 }, worker));
}

/** Writes large files fast: one random MiB repeated, with a counter in each. */
async function writeLargeFiles(dir: string): Promise<void> {
  await Deno.mkdir(join(dir, "large"), { recursive: true });
  const block = new Uint8Array(MIB);
  for (let o = 0; o < MIB; o += 65536) {
    crypto.getRandomValues(block.subarray(o, o + 65536));
  }
  const view = new DataView(block.buffer);
  const perFile = Math.floor(LARGE_MIB / LARGE_FILES);
  let counter = 0;
  for (let f = 0; f < LARGE_FILES; f++) {
    using file = await Deno.open(join(dir, `large/big${f}.bin`), {
      write: true,
      create: true,
      truncate: true,
    });
    for (let m = 0; m < perFile; m++) {
      view.setFloat64(0, counter++);
      let written = 0;
      while (written < block.length) {
        written += await file.write(block.subarray(written));
      }
    }
  }
}

function peerCommand(tracker: string, shared: string): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...taskFlags("peer"),
      join(root, "peer.ts"),
      "--daemon",
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--tracker",
      tracker,
      "--shared",
      shared,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
    env: { NO_COLOR: "1" },
  });
}

/** A peer process whose stdout is echoed to stderr with a prefix. */
function spawnPeer(tracker: string, shared: string) {
  const child = peerCommand(tracker, shared).spawn();
  const output = (async () => {
    for await (
      const text of child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      for (const line of text.split("\n")) if (line) log(`peer: ${line}`);
    }
  })();
  return {
    async stop(): Promise<void> {
      child.kill("SIGTERM");
      await child.status;
      await output;
    },
  };
}

const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;

const round = (ms: number) => Math.round(ms);

const dir = await Deno.makeTempDir({ prefix: "shoal_bench_share_" });
await using tracker = await startTracker({
  port: 0,
  hostname: "127.0.0.1",
  heartbeatIntervalMs: 30_000,
  maxFilesPerPeer: TOTAL_FILES + SAMPLES + 100,
});
try {
  let started = performance.now();
  await writeSmallFiles(dir);
  await writeLargeFiles(dir);
  log(
    `wrote ${SMALL_FILES} small files and ${LARGE_FILES} large files (${LARGE_MIB} MiB) in ${
      round(performance.now() - started)
    } ms`,
  );

  /** Waits until one peer has announced `count` files; returns the time. */
  const announced = async (count: number, what: string): Promise<number> => {
    const deadline = performance.now() + 240_000;
    while (performance.now() < deadline) {
      const { files: list } = await tracker.store.search(undefined, {
        limit: Infinity,
      });
      if (list.length >= count) return performance.now();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(
      `Cannot finish ${what}: the tracker never saw ${count} files`,
    );
  };

  started = performance.now();
  let peer = spawnPeer(tracker.address, dir);
  const coldMs = (await announced(TOTAL_FILES, "cold start")) - started;
  log(`cold start: all ${TOTAL_FILES} files announced in ${round(coldMs)} ms`);
  await peer.stop();

  started = performance.now();
  peer = spawnPeer(tracker.address, dir);
  const warmMs = (await announced(TOTAL_FILES, "warm restart")) - started;
  log(`warm restart: all files announced in ${round(warmMs)} ms`);

  const client = new TrackerClient(tracker.address);
  const latencies: number[] = [];
  await Deno.mkdir(join(dir, "live"));
  for (let i = 0; i < SAMPLES; i++) {
    const name = `live/sample${i}.bin`;
    const bytes = new Uint8Array(64 * 1024 + i);
    crypto.getRandomValues(bytes.subarray(0, 65536));
    await Deno.writeFile(join(dir, name), bytes);
    const written = performance.now();
    const deadline = written + 30_000;
    while ((await client.getPeers({ name })).length === 0) {
      if (performance.now() > deadline) {
        throw new Error(`Cannot see ${name} at the tracker within 30 s`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    latencies.push(performance.now() - written);
    await new Promise((resolve) => setTimeout(resolve, 100 + (i % 5) * 50));
  }
  await peer.stop();
  latencies.sort((a, b) => a - b);
  const p50 = percentile(latencies, 0.5);
  const p95 = percentile(latencies, 0.95);
  log(`write-to-getpeers latency: p50 ${round(p50)} ms, p95 ${round(p95)} ms`);

  console.log(JSON.stringify({
    bench: "share",
    smallFiles: SMALL_FILES,
    largeFiles: LARGE_FILES,
    largeBytes: LARGE_MIB * MIB,
    coldStartMs: round(coldMs),
    warmRestartMs: round(warmMs),
    latencySamples: latencies.length,
    latencyP50Ms: round(p50),
    latencyP95Ms: round(p95),
    latencyMaxMs: round(latencies.at(-1)!),
    warmTargetMs: 2000,
    latencyP95TargetMs: 2000,
    pass: warmMs < 2000 && p95 < 2000,
  }));
} finally {
  await Deno.remove(dir, { recursive: true });
}
