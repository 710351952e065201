/**
 * Swarm downloads with real processes: many sources at once, a source dying,
 * a lying source struck off, resume after `kill -9`, partial seeding, and
 * rate caps.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { hashFile } from "../../lib/content/manifest.ts";
import { startPeer } from "../../lib/peer/node.ts";
import { TokenBucket } from "../../lib/net/rate_limit.ts";
import { TrackerClient } from "../../lib/tracker/client.ts";
import { partPaths } from "../../lib/download/transfer.ts";
import {
  CliProcess,
  exists,
  PEER_TS,
  pollUntil,
  runPeer,
  sha256File,
  spawnPeer,
  spawnTracker,
  startLyingPeer,
  taskPermissions,
  tempDir,
  writeRandomFile,
} from "../_helpers.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

/** Starts a one-shot `peer.ts download` whose progress lines can be awaited. */
function startDownload(args: string[]): CliProcess {
  return new CliProcess([
    "run",
    ...taskPermissions("peer"),
    PEER_TS,
    "download",
    ...args,
  ]);
}

/**
 * A download "rate limit" that lets `chunks` requests through, then holds
 * the rest until {@linkcode ChunkGate.open}.
 */
class ChunkGate extends TokenBucket {
  #left: number;
  readonly #opened = Promise.withResolvers<void>();

  constructor(chunks: number) {
    super(Number.MAX_SAFE_INTEGER);
    this.#left = chunks;
  }

  /** Lets every request through from now on. */
  open(): void {
    this.#left = Infinity;
    this.#opened.resolve();
  }

  override take(_bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.#left > 0) {
      this.#left--;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => reject(signal!.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#opened.promise.then(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }
}

/** Percent in the latest `progress` line, or 0. */
function percent(process: CliProcess): number {
  const lines = process.lines.filter((l) => l.startsWith("progress "));
  return Number(/ (\d+)% /.exec(lines.at(-1) ?? "")?.[1] ?? 0);
}

/** Seconds from the final "Downloaded … in X s" line. */
function seconds(stdout: string): number {
  const match = /Downloaded .* in ([\d.]+) s/.exec(stdout);
  assert.ok(match, `no completion line in:\n${stdout}`);
  return Number(match[1]);
}

Deno.test("A download pulls from three seeders at once and survives one being killed", async () => {
  await using tracker = await spawnTracker({ interval: "500ms" });
  await using seed = await tempDir();
  await writeRandomFile(join(seed.path, "big.bin"), 12 * MiB);
  const seeders = [];
  for (let i = 0; i < 3; i++) {
    seeders.push(
      await spawnPeer({
        tracker: tracker.address,
        shared: seed.path,
        chunkSize: "256K",
        heartbeat: "500ms",
        args: [
          "--state",
          join(seed.path, `.state${i}`),
          "--max-upload-rate",
          "2M",
        ],
      }),
    );
  }
  try {
    const client = new TrackerClient(tracker.address);
    await pollUntil(async () => {
      const [file] = await client.list("big.bin");
      return file?.holders === 3 ? true : undefined;
    }, "three holders of big.bin");
    await using out = await tempDir();
    await using download = startDownload([
      "big.bin",
      "--tracker",
      tracker.address,
      "--out",
      out.path,
    ]);
    await download.waitFor(/^progress big\.bin .* 3 sources$/, {
      timeoutMs: 20_000,
    });
    await pollUntil(
      () => percent(download) >= 20 ? true : undefined,
      "20 % done",
    );
    assert.ok(
      download.status === undefined && percent(download) < 100,
      "the kill must happen mid-download",
    );
    seeders[0]!.kill("SIGKILL");
    const status = await download.exited(60_000);
    assert.equal(status.code, 0, download.stderr);
    assert.equal(
      await sha256File(join(out.path, "big.bin")),
      await sha256File(join(seed.path, "big.bin")),
    );
  } finally {
    for (const seeder of seeders) await seeder.close();
  }
});

Deno.test("A seeder that sends corrupt chunks is struck off and the file completes from honest peers", async () => {
  // Registrations outlive the pause of the honest seeders below.
  await using tracker = await spawnTracker({ interval: "30s" });
  await using seed = await tempDir();
  const path = join(seed.path, "data.bin");
  await writeRandomFile(path, 8 * MiB);
  await using liar = await startLyingPeer(path, "data.bin", 256 * KiB);
  const client = new TrackerClient(tracker.address);
  await client.register(liar.port, [{
    name: "data.bin",
    id: liar.manifest.id,
    size: liar.manifest.size,
  }]);
  await using honest1 = await spawnPeer({
    tracker: tracker.address,
    shared: seed.path,
    chunkSize: "256K",
    args: ["--state", join(seed.path, ".s1")],
  });
  await using honest2 = await spawnPeer({
    tracker: tracker.address,
    shared: seed.path,
    chunkSize: "256K",
    args: ["--state", join(seed.path, ".s2")],
  });
  // The honest seeders are paused until the liar has been asked, so it
  // surely is, however the machine schedules the downloader: the download
  // connects to them but gets no answer until they resume.
  const honest = [honest1, honest2];
  for (const peer of honest) peer.kill("SIGSTOP");
  await using out = await tempDir();
  try {
    await using download = startDownload([
      "data.bin",
      "--tracker",
      tracker.address,
      "--out",
      out.path,
    ]);
    await pollUntil(
      () => liar.chunksServed >= 3 || undefined,
      "the liar to be asked for three chunks",
      { timeoutMs: 30_000 },
    );
    for (const peer of honest) peer.kill("SIGCONT");
    const status = await download.exited(60_000);
    assert.equal(status.code, 0, download.stderr);
  } finally {
    for (const peer of honest) peer.kill("SIGCONT");
  }
  assert.equal(
    await sha256File(join(out.path, "data.bin")),
    await sha256File(path),
  );
  // Struck off after 3 bad chunks: at most the requests already queued more.
  assert.ok(
    liar.chunksServed <= 3 + 4,
    `the liar kept being asked (${liar.chunksServed} chunks)`,
  );
  await client.unregister(liar.port);
});

Deno.test("A download killed at half resumes from verified chunks and re-fetches only what was in flight", async () => {
  await using tracker = await spawnTracker();
  await using seed = await tempDir();
  const size = 12 * MiB;
  await writeRandomFile(join(seed.path, "resume.bin"), size);
  const { id } = await hashFile(join(seed.path, "resume.bin"), "resume.bin", {
    chunkSize: 256 * KiB,
  });
  const seeder = await spawnPeer({
    tracker: tracker.address,
    shared: seed.path,
    chunkSize: "256K",
  });
  await using out = await tempDir();
  const { partPath } = partPaths(join(out.path, "resume.bin"), id);
  try {
    const first = startDownload([
      "resume.bin",
      "--tracker",
      tracker.address,
      "--out",
      out.path,
      "--max-download-rate",
      "4M",
    ]);
    await pollUntil(
      () => percent(first) >= 50 ? true : undefined,
      "50 % done",
      { timeoutMs: 20_000 },
    );
    first.kill("SIGKILL");
    await first.close();
    assert.ok(
      await exists(partPath),
      "the .part file stays",
    );
    assert.equal(await exists(join(out.path, "resume.bin")), false);

    const second = await runPeer(
      "download",
      "resume.bin",
      "--tracker",
      tracker.address,
      "--out",
      out.path,
    );
    assert.equal(second.code, 0, second.stderr);
    const resumed = Number(
      /(\d+) chunks? resumed/.exec(second.stdout)?.[1] ?? 0,
    );
    assert.ok(
      resumed >= 24,
      `at least half the 48 chunks were kept (${resumed})`,
    );
    assert.equal(
      await sha256File(join(out.path, "resume.bin")),
      await sha256File(join(seed.path, "resume.bin")),
    );
    assert.equal(await exists(partPath), false);
    // A completed file is never fetched again.
    const third = await runPeer(
      "download",
      "resume.bin",
      "--tracker",
      tracker.address,
      "--out",
      out.path,
    );
    assert.match(third.stdout, /Already have resume\.bin/);
  } finally {
    seeder.kill("SIGTERM");
    await seeder.exited();
    await seeder.close();
  }
  const uploaded = Number(
    /Uploaded (?:\S+ \S+ \()?(\d+) bytes?/.exec(seeder.stdout)?.[1],
  );
  // Twice-fetched bytes: only chunks in flight at the kill (4 lanes).
  assert.ok(
    uploaded - size <= 4 * 256 * KiB,
    `re-fetched ${uploaded - size} bytes`,
  );
});

Deno.test("A third peer fetches chunks from a peer that is itself still downloading", async () => {
  await using tracker = await spawnTracker({ interval: "300ms" });
  await using seed = await tempDir();
  const path = join(seed.path, "share.bin");
  await writeRandomFile(path, 6 * MiB);
  await using seeder = await spawnPeer({
    tracker: tracker.address,
    shared: seed.path,
    chunkSize: "128K",
    heartbeat: "300ms",
    args: ["--max-upload-rate", "1M"],
  });
  assert.ok(seeder.port > 0);
  await using middleDir = await tempDir();
  await using middle = await startPeer({
    tracker: tracker.address,
    shared: middleDir.path,
    hostname: "127.0.0.1",
    heartbeatIntervalMs: 300,
  });
  // The middle peer may fetch 16 of the 48 chunks, then waits: it stays a
  // partial holder for as long as the third peer needs, whatever the timing.
  const gate = new ChunkGate(16);
  const middleDone = middle.download("share.bin", { limiter: gate });
  try {
    await pollUntil(
      () => (middle.status().downloads[0]?.chunksDone ?? 0) >= 12 || undefined,
      "the middle peer holds some chunks",
    );
    const middleAddress = `127.0.0.1:${middle.port}`;
    const client = new TrackerClient(tracker.address);
    await pollUntil(
      async () =>
        (await client.getPeers({ name: "share.bin" })).some((p) =>
          p.address === middleAddress
        ) || undefined,
      "the tracker lists the middle peer as a holder",
    );
    await using out = await tempDir();
    await using third = startDownload([
      "share.bin",
      "--tracker",
      tracker.address,
      "--out",
      out.path,
    ]);
    await pollUntil(
      () => middle.status().uploaded.bytes > 0 || undefined,
      "the third peer to fetch chunks from the middle peer",
      { timeoutMs: 30_000 },
    );
    assert.equal(
      middle.status().downloads.length,
      1,
      "the middle peer served while still downloading",
    );
    gate.open();
    assert.equal((await third.exited(60_000)).code, 0, third.stderr);
    await middleDone;
    assert.equal(
      await sha256File(join(out.path, "share.bin")),
      await sha256File(path),
    );
    assert.equal(
      await sha256File(join(middleDir.path, "share.bin")),
      await sha256File(path),
    );
  } finally {
    gate.open();
    await middleDone.catch(() => {});
  }
});

Deno.test("Upload and download caps are never exceeded by more than 15 %", async () => {
  // Over the cap is a bug at any load; under it can be a busy machine, so
  // the lower bound only catches a cap that throttles far too hard.
  const within = (rate: number) => rate <= 2 * 1.15 && rate >= 2 * 0.6;
  await using tracker = await spawnTracker();
  await using seed = await tempDir();
  const size = 6 * MiB;
  await writeRandomFile(join(seed.path, "capped.bin"), size);
  await using capped = await spawnPeer({
    tracker: tracker.address,
    shared: seed.path,
    chunkSize: "64K",
    args: ["--state", join(seed.path, ".a"), "--max-upload-rate", "2M"],
  });
  assert.ok(capped.port > 0);
  await using out1 = await tempDir();
  const up = await runPeer(
    "download",
    "capped.bin",
    "--tracker",
    tracker.address,
    "--out",
    out1.path,
  );
  assert.equal(up.code, 0, up.stderr);
  const upRate = size / seconds(up.stdout) / MiB;
  assert.ok(
    within(upRate),
    `upload-capped rate ${upRate.toFixed(2)} MiB/s`,
  );
  await capped.close();

  await using free = await spawnPeer({
    tracker: tracker.address,
    shared: seed.path,
    chunkSize: "64K",
    args: ["--state", join(seed.path, ".b")],
  });
  assert.ok(free.port > 0);
  await using out2 = await tempDir();
  const down = await runPeer(
    "download",
    "capped.bin",
    "--tracker",
    tracker.address,
    "--out",
    out2.path,
    "--max-download-rate",
    "2M",
  );
  assert.equal(down.code, 0, down.stderr);
  const downRate = size / seconds(down.stdout) / MiB;
  assert.ok(
    within(downRate),
    `download-capped rate ${downRate.toFixed(2)} MiB/s`,
  );
});
