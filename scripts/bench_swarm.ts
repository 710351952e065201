/**
 * `deno task bench:swarm`: a flash crowd on loopback. One seeder and N
 * leechers, each a peer process of its own with a capped uplink, all asked
 * for one random file at the same moment. Reports per N the first and last
 * finish against the physical limit, what the seeder uploaded, byte-exact
 * copies and leecher memory; then a heterogeneous and a churn run at N = 16.
 * Prints a table, writes docs/swarm.svg, and ends with one line of JSON.
 *
 * Usage: `deno task bench:swarm [--size 64M] [--rate 8M] [--n 4,8,16,32]
 * [--chunk-size 256K] [--no-extra] [--plot docs/swarm.svg]`
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { parseSize } from "../lib/content/_bytes.ts";
import { LineProcess } from "./_process.ts";
import { ROOT, taskFlags } from "./_tasks.ts";

const MiB = 1024 * 1024;

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1]! : fallback;
}

const SIZE = parseSize(flag("size", "64M"));
const RATE = parseSize(flag("rate", "8M"));
const CHUNK = flag("chunk-size", "256K");
const COUNTS = flag("n", "4,8,16,32").split(",").map(Number);
const EXTRA = !Deno.args.includes("--no-extra");
const PLOT = flag("plot", join(ROOT, "docs/swarm.svg"));
/** Where a CPU profile of the seeder and the first leecher goes, if set. */
const PROFILE_DIR = Deno.env.get("SHOAL_BENCH_CPU_PROF");
/** A run that takes longer than this many times the limit is cut off. */
const GIVE_UP_FACTOR = 25;

/** A peer process whose output lines are collected. */
class Peer extends LineProcess {
  #stopping = false;

  constructor(args: string[], profile = false) {
    super([
      "run",
      "--quiet",
      ...(profile && PROFILE_DIR
        ? ["--cpu-prof", `--cpu-prof-dir=${PROFILE_DIR}`]
        : []),
      ...taskFlags("peer"),
      join(ROOT, "peer.ts"),
      ...args,
    ], { stdin: true });
  }

  /** Ends the peer (SIGTERM, SIGKILL after 10 s) and returns its upload. */
  async stop(): Promise<number> {
    if (this.child.pid && !this.#stopping) {
      this.#stopping = true;
      // A daemon and a prompt both end on SIGTERM and print their upload.
      try {
        this.child.kill("SIGTERM");
      } catch { /* gone */ }
    }
    await this.closeStdin();
    const timer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 10_000);
    await this.child.status;
    clearTimeout(timer);
    await this.done;
    const line = this.lines.find((l) => /^Uploaded /.test(l));
    return Number(
      /^Uploaded (?:\S+ \S+ \()?(\d+) bytes?/.exec(line ?? "")?.[1] ?? NaN,
    );
  }
}

/** The tracker process. */
async function startTracker(): Promise<
  { address: string; stop(): Promise<void> }
> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...taskFlags("tracker"),
      join(ROOT, "tracker.ts"),
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--interval",
      "5s",
      "--rate-limit",
      "0",
      "--quiet",
    ],
    stdout: "piped",
    stderr: "inherit",
    env: { NO_COLOR: "1" },
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/listening on (\S+) /.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`The tracker exited: ${text}`);
    text += value;
  }
  const address = /listening on (\S+) /.exec(text)![1]!;
  const drain = (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })();
  return {
    address,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await drain;
    },
  };
}

async function makeRandomFile(path: string, size: number): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { write: true, create: true });
  const block = new Uint8Array(MiB);
  for (let written = 0; written < size;) {
    for (let i = 0; i < block.length; i += 65536) {
      crypto.getRandomValues(block.subarray(i, i + 65536));
    }
    const n = Math.min(block.length, size - written);
    hash.update(block.subarray(0, n));
    for (let off = 0; off < n;) off += await file.write(block.subarray(off, n));
    written += n;
  }
  return hash.digest("hex");
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buffer = new Uint8Array(MiB);
  for (
    let n = await file.read(buffer);
    n !== null;
    n = await file.read(buffer)
  ) {
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest("hex");
}

/** One leecher's plan: its uplink cap, and whether it quits half-way. */
interface LeecherPlan {
  rate: number;
  quitAtHalf: boolean;
}

/** What one flash crowd measured. */
interface RunResult {
  label: string;
  n: number;
  t_first_s: number;
  t_last_s: number;
  t_min_s: number;
  ratio: number;
  client_server_s: number;
  seeder_upload_x: number;
  /** Bytes every peer uploaded over the bytes the finishers needed (N·F). */
  traffic_x: number;
  byte_exact: boolean;
  peak_rss_mib: number;
  /** CPU seconds of a leecher until every one finished, mean. */
  leecher_cpu_s: number;
  /** CPU seconds of the seeder until every leecher finished. */
  seeder_cpu_s: number;
  /** Last finish of the leechers at the full rate (heterogeneous run). */
  t_last_fast_s?: number;
}

/** T_min = max(F/u_seeder, N·F/(u_seeder + Σ u_leechers)) (no download caps). */
function physicalLimit(plans: LeecherPlan[]): number {
  const total = RATE + plans.reduce((sum, p) => sum + p.rate, 0);
  return Math.max(SIZE / RATE, (plans.length * SIZE) / total);
}

async function flashCrowd(
  label: string,
  plans: LeecherPlan[],
): Promise<RunResult> {
  const work = await Deno.makeTempDir({ prefix: "shoal_swarm_" });
  const tracker = await startTracker();
  const peers: Peer[] = [];
  try {
    const seedDir = join(work, "seed");
    await Deno.mkdir(seedDir);
    const expected = await makeRandomFile(join(seedDir, "crowd.bin"), SIZE);
    const common = (rate: number) => [
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--tracker",
      tracker.address,
      "--chunk-size",
      CHUNK,
      "--max-upload-rate",
      String(rate),
    ];
    const seeder = new Peer(
      ["--daemon", "--shared", seedDir, ...common(RATE)],
      true,
    );
    peers.push(seeder);
    await seeder.waitFor(/^registered as /, 60_000);
    const leechers = await Promise.all(plans.map(async (plan, i) => {
      const dir = join(work, `leecher-${i}`);
      await Deno.mkdir(dir);
      const peer = new Peer(["--shared", dir, ...common(plan.rate)], i === 0);
      peers.push(peer);
      await peer.waitFor(/^Shoal peer serving /, 120_000);
      return { peer, dir, plan };
    }));
    // Every leecher is up: one moment for all of them.
    const limit = physicalLimit(plans);
    const started = performance.now();
    await Promise.all(
      leechers.map(({ peer }) => peer.send("download crowd.bin")),
    );
    let quitterUpload = 0;
    const finishes = await Promise.all(leechers.map(async ({ peer, plan }) => {
      if (plan.quitAtHalf) {
        await peer.waitFor(
          /^progress crowd\.bin\s+[5-9]\d%/,
          limit * GIVE_UP_FACTOR * 1000,
        );
        quitterUpload += await peer.stop();
        return undefined;
      }
      await peer.waitFor(
        /^Downloaded crowd\.bin /,
        limit * GIVE_UP_FACTOR * 1000,
      );
      return (performance.now() - started) / 1000;
    }));
    const times = finishes.filter((t): t is number => t !== undefined);
    const rss = await Promise.all(
      leechers.map(({ peer }) => peer.peakRssMib()),
    );
    // Leechers that quit half-way are gone: their CPU is not known.
    const leecherCpu = (await Promise.all(
      leechers.map(({ peer }) => peer.cpuSeconds()),
    )).filter((seconds) => Number.isFinite(seconds));
    const seederCpu = await seeder.cpuSeconds();
    const exact = await Promise.all(
      leechers.filter(({ plan }) => !plan.quitAtHalf).map(async ({ dir }) =>
        (await hashFile(join(dir, "crowd.bin"))) === expected
      ),
    );
    const fastTimes = leechers.flatMap(({ plan }, i) =>
      plan.rate === RATE && finishes[i] !== undefined ? [finishes[i]!] : []
    );
    let leecherUpload = 0;
    for (const { peer, plan } of leechers) {
      if (!plan.quitAtHalf) leecherUpload += await peer.stop();
    }
    const seederUpload = await seeder.stop();
    const tLast = Math.max(...times);
    return {
      label,
      n: plans.length,
      t_first_s: round(Math.min(...times)),
      t_last_s: round(tLast),
      t_min_s: round(limit),
      ratio: round(tLast / limit),
      client_server_s: round((plans.length * SIZE) / RATE),
      seeder_upload_x: round(seederUpload / SIZE),
      // A leecher that quit counts as needing the whole file (it took
      // about half), so the churn run's figure is a low estimate.
      traffic_x: round(
        (seederUpload + leecherUpload + quitterUpload) /
          (plans.length * SIZE),
      ),
      byte_exact: exact.every(Boolean),
      peak_rss_mib: round(Math.max(...rss)),
      leecher_cpu_s: round(
        leecherCpu.reduce((a, b) => a + b, 0) / leecherCpu.length,
      ),
      seeder_cpu_s: round(seederCpu),
      ...(fastTimes.length < times.length
        ? { t_last_fast_s: round(Math.max(...fastTimes)) }
        : {}),
    };
  } finally {
    await Promise.all(peers.map((peer) => peer.stop().catch(() => NaN)));
    await tracker.stop();
    await Deno.remove(work, { recursive: true });
  }
}

function formatRate(bytesPerSecond: number): string {
  return `${round(bytesPerSecond / MiB)} MiB/s`;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/** Finish time against N: Shoal, the physical limit and client-server. */
function plot(runs: RunResult[]): string {
  const width = 640,
    height = 400,
    left = 60,
    bottom = 50,
    top = 30,
    right = 150;
  const maxN = Math.max(...runs.map((r) => r.n));
  const maxT = Math.max(
    ...runs.map((r) => Math.max(r.client_server_s, r.t_last_s)),
  );
  const x = (n: number) => left + (n / maxN) * (width - left - right);
  const y = (t: number) =>
    height - bottom - (t / maxT) * (height - bottom - top);
  const line = (
    values: [number, number][],
    colour: string,
    label: string,
    row: number,
  ) => {
    const points = values.map(([n, t]) =>
      `${x(n).toFixed(1)},${y(t).toFixed(1)}`
    );
    return `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${
      points.join(" ")
    }"/>` +
      values.map(([n, t]) =>
        `<circle cx="${x(n).toFixed(1)}" cy="${
          y(t).toFixed(1)
        }" r="3" fill="${colour}"/>`
      ).join("") +
      `<text x="${width - right + 12}" y="${
        top + 20 * row
      }" fill="${colour}" font-size="13">${label}</text>`;
  };
  const ticksY = Array.from({ length: 6 }, (_, i) => (maxT * i) / 5);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${left}" y="18" font-size="14">Flash crowd: ${
    SIZE / MiB
  } MiB, every uplink ${
    RATE / MiB
  } MiB/s; time until the last leecher has the file</text>
<line x1="${left}" y1="${height - bottom}" x2="${width - right}" y2="${
    height - bottom
  }" stroke="#444"/>
<line x1="${left}" y1="${top}" x2="${left}" y2="${
    height - bottom
  }" stroke="#444"/>
${
    runs.map((r) =>
      `<text x="${x(r.n)}" y="${
        height - bottom + 18
      }" font-size="12" text-anchor="middle">${r.n}</text>`
    ).join("")
  }
<text x="${(left + width - right) / 2}" y="${
    height - 12
  }" font-size="13" text-anchor="middle">leechers (N)</text>
${
    ticksY.map((t) =>
      `<text x="${left - 8}" y="${y(t) + 4}" font-size="12" text-anchor="end">${
        Math.round(t)
      } s</text>`
    ).join("")
  }
${
    line(
      runs.map((r) => [r.n, r.client_server_s]),
      "#b0b0b0",
      "client-server",
      1,
    )
  }
${line(runs.map((r) => [r.n, r.t_last_s]), "#1f6feb", "Shoal", 2)}
${line(runs.map((r) => [r.n, r.t_min_s]), "#2da44e", "physical limit", 3)}
</svg>
`;
}

const runs: RunResult[] = [];
for (const n of COUNTS) {
  runs.push(
    await flashCrowd(
      `N=${n}`,
      Array.from({ length: n }, () => ({ rate: RATE, quitAtHalf: false })),
    ),
  );
  console.error(`done: N=${n}`);
}
let heterogeneous: RunResult | undefined;
let churn: RunResult | undefined;
if (EXTRA) {
  heterogeneous = await flashCrowd(
    `N=16, half at ${formatRate(RATE / 4)}`,
    Array.from({ length: 16 }, (_, i) => ({
      rate: i % 2 === 0 ? RATE : Math.round(RATE / 4),
      quitAtHalf: false,
    })),
  );
  churn = await flashCrowd(
    "N=16, a quarter quit at 50 %",
    Array.from({ length: 16 }, (_, i) => ({
      rate: RATE,
      quitAtHalf: i % 4 === 3,
    })),
  );
}

const rows = [
  ...runs,
  ...(heterogeneous ? [heterogeneous] : []),
  ...(churn ? [churn] : []),
];
const header = [
  "run",
  "first s",
  "last s",
  "T_min s",
  "last/T_min",
  "client-server s",
  "seeder upload ×F",
  "traffic ×N·F",
  "byte-exact",
  "leecher RSS MiB",
  "CPU s leecher/seeder",
];
const table = [
  header,
  ...rows.map((r) => [
    r.label,
    String(r.t_first_s),
    String(r.t_last_s),
    String(r.t_min_s),
    String(r.ratio),
    String(r.client_server_s),
    String(r.seeder_upload_x),
    String(r.traffic_x),
    r.byte_exact ? "yes" : "NO",
    String(r.peak_rss_mib),
    `${r.leecher_cpu_s}/${r.seeder_cpu_s}`,
  ]),
];
const widths = header.map((_, c) =>
  Math.max(...table.map((row) => row[c]!.length))
);
for (const row of table) {
  console.log(row.map((cell, c) => cell.padEnd(widths[c]!)).join("  "));
}
if (PLOT && runs.length > 1) {
  await Deno.writeTextFile(PLOT, plot(runs));
  console.log(`plot: ${PLOT}`);
}
console.log(JSON.stringify({
  size_mib: SIZE / MiB,
  rate_mibps: RATE / MiB,
  chunk_size: CHUNK,
  runs: runs.map((
    {
      n,
      t_first_s,
      t_last_s,
      t_min_s,
      ratio,
      seeder_upload_x,
      byte_exact,
      peak_rss_mib,
    },
  ) => ({
    n,
    t_first_s,
    t_last_s,
    t_min_s,
    ratio,
    seeder_upload_x,
    byte_exact,
    peak_rss_mib,
  })),
  ...(heterogeneous
    ? {
      heterogeneous_fast_ratio: round(
        (heterogeneous.t_last_fast_s ?? NaN) / heterogeneous.t_min_s,
      ),
    }
    : {}),
  ...(churn ? { churn_ratio: churn.ratio } : {}),
}));
