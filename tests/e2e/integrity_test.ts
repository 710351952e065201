/**
 * The downloader under hostile or unlucky conditions: two downloads racing
 * for one name, a flood of unverifiable holders, dead addresses listed ahead
 * of the live one, sources that never deliver, and a manifest no disk holds.
 * Each run drives the real CLI against real tracker and peer processes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { statfs } from "node:fs/promises";
import { join } from "node:path";
import { legacyRequest } from "../../lib/protocol/legacy.ts";
import {
  contentId,
  hashFile,
  type Manifest,
} from "../../lib/content/manifest.ts";
import { TrackerClient } from "../../lib/tracker/client.ts";
import {
  assertOneLineError,
  CliProcess,
  exists,
  PEER_TS,
  randomBytes,
  run,
  type RunResult,
  sha256,
  sha256File,
  spawnPeer,
  spawnTracker,
  startFakePeer,
  startSeedPeer,
  taskPermissions,
  tempDir,
} from "../_helpers.ts";

/** Names in `dir` that are partial downloads. */
async function partials(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.endsWith(".part")) names.push(entry.name);
  }
  return names;
}

/** A port with nothing listening on it: connections are refused. */
function deadPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** Registers a fake framed peer for `manifest` with the tracker. */
async function registerFake(
  tracker: string,
  port: number,
  manifest: Pick<Manifest, "name" | "id" | "size">,
): Promise<void> {
  await new TrackerClient(tracker).register(port, [{
    name: manifest.name,
    id: manifest.id,
    size: manifest.size,
  }]);
}

function peerDownload(...args: string[]): Promise<RunResult> {
  return run("peer", ["download", ...args], 60_000);
}

/** A download in a process of its own, to pause and resume. */
function startDownload(...args: string[]): CliProcess {
  return new CliProcess([
    "run",
    ...taskPermissions("peer"),
    PEER_TS,
    "download",
    ...args,
  ]);
}

async function finished(process: CliProcess): Promise<RunResult> {
  const { code } = await process.exited(60_000);
  return { code, stdout: process.stdout, stderr: process.stderr };
}

Deno.test("Two downloads of different files under one name never mix: the file on disk is the one that reported success", async () => {
  await using tracker = await spawnTracker();
  await using dirX = await tempDir();
  await using dirY = await tempDir();
  const size = 8 * 1024 * 1024;
  const x = randomBytes(size);
  const y = randomBytes(size);
  await Deno.writeFile(join(dirX.path, "same.bin"), x);
  await Deno.writeFile(join(dirY.path, "same.bin"), y);
  const idX = (await hashFile(join(dirX.path, "same.bin"), "same.bin", {
    chunkSize: 256 * 1024,
  })).id;
  const idY = (await hashFile(join(dirY.path, "same.bin"), "same.bin", {
    chunkSize: 256 * 1024,
  })).id;
  await using _seedX = await spawnPeer({
    tracker: tracker.address,
    shared: dirX.path,
    chunkSize: "256K",
    args: ["--max-upload-rate", "2M"],
  });
  await using _seedY = await spawnPeer({
    tracker: tracker.address,
    shared: dirY.path,
    chunkSize: "256K",
  });
  await using out = await tempDir();
  const common = ["--tracker", tracker.address, "--out", out.path];
  // The download of X is paused once under way, so the download of Y surely
  // runs while X's is open, however slow the machine; then X goes on.
  await using first = startDownload(idX, ...common);
  // Its first progress line comes after it locked its partial file.
  await first.waitFor(/^progress /, { timeoutMs: 30_000 });
  first.kill("SIGSTOP");
  let second: RunResult;
  try {
    second = await peerDownload(idY, ...common);
  } finally {
    first.kill("SIGCONT");
  }
  const firstResult = await finished(first);
  const results = [
    { result: firstResult, hash: await sha256(x) },
    { result: second, hash: await sha256(y) },
  ];
  const winners = results.filter((r) => r.result.code === 0);
  assert.equal(winners.length, 1, JSON.stringify(results.map((r) => r.result)));
  assert.equal(
    await sha256File(join(out.path, "same.bin")),
    winners[0]!.hash,
    "the final file is exactly the content that reported success",
  );
  const loser = results.find((r) => r.result.code !== 0)!.result;
  assertOneLineError(loser, "the download that lost the name");
  assert.match(loser.stderr, /a file appeared at .*same\.bin/);
  // The loser's verified data waits under its own content id.
  const left = await partials(out.path);
  assert.equal(left.length, 1, left.join(", "));
  const loserId = loser === firstResult ? idX : idY;
  assert.ok(left[0]!.includes(loserId.slice(0, 16)), left[0]);
});

Deno.test("A second download of the same content into the same place is refused while the first runs", async () => {
  await using tracker = await spawnTracker();
  await using dir = await tempDir();
  const data = randomBytes(8 * 1024 * 1024);
  await Deno.writeFile(join(dir.path, "busy.bin"), data);
  await using _seed = await spawnPeer({
    tracker: tracker.address,
    shared: dir.path,
    chunkSize: "256K",
    args: ["--max-upload-rate", "2M"],
  });
  await using out = await tempDir();
  const common = ["--tracker", tracker.address, "--out", out.path];
  // Paused once under way (its lock held): it surely still runs when the
  // second starts, however slow the machine.
  await using first = startDownload("busy.bin", ...common);
  // Its first progress line comes after it locked its partial file.
  await first.waitFor(/^progress /, { timeoutMs: 30_000 });
  first.kill("SIGSTOP");
  let second: RunResult;
  try {
    second = await peerDownload("busy.bin", ...common);
  } finally {
    first.kill("SIGCONT");
  }
  assert.equal(second.code, 1, second.stderr);
  assertOneLineError(second, "the second download");
  assert.match(second.stderr, /already being downloaded/);
  const firstResult = await finished(first);
  assert.equal(firstResult.code, 0, firstResult.stderr);
  assert.equal(
    await sha256File(join(out.path, "busy.bin")),
    await sha256(data),
  );
});

Deno.test("A download by name takes the verified holder over a flood of seed-protocol registrations", async () => {
  // A long interval: the flood stays registered for the whole test. Every
  // process here shares one address, so the per-address cap is lifted to
  // let the honest peer in beside the flood (the cap has its own tests).
  await using tracker = await spawnTracker({
    interval: "30s",
    args: ["--max-peers-per-address", "1000"],
  });
  const honest = randomBytes(300 * 1024);
  const forged = randomBytes(300 * 1024);
  await using seed = startSeedPeer(new Map([["victim.bin", forged]]));
  // 230 seed registrations from one address, all serving forged bytes,
  // made before the honest holder registers (as after a tracker restart).
  for (let i = 0; i < 230; i++) {
    await legacyRequest(tracker.address, {
      command: "register",
      address: `127.0.0.1:${i === 0 ? seed.port : 20_000 + i}`,
      files: ["victim.bin"],
    }).catch(() => {}); // Whatever the tracker refuses of the flood.
  }
  await using dir = await tempDir();
  await Deno.writeFile(join(dir.path, "victim.bin"), honest);
  await using _peer = await spawnPeer({
    tracker: tracker.address,
    shared: dir.path,
  });
  await using out = await tempDir();
  const result = await peerDownload(
    "victim.bin",
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /, verified/);
  assert.equal(
    await sha256File(join(out.path, "victim.bin")),
    await sha256(honest),
    "the honest holder's bytes, not the forged ones",
  );
});

Deno.test("Bytes only seed-protocol peers hold are taken only when asked for, and marked unverified", async () => {
  await using tracker = await spawnTracker({ interval: "30s" });
  const data = randomBytes(100 * 1024);
  await using seed = startSeedPeer(new Map([["old.bin", data]]));
  await legacyRequest(tracker.address, {
    command: "register",
    address: `127.0.0.1:${seed.port}`,
    files: ["old.bin"],
  });
  await using out = await tempDir();
  const common = ["--tracker", tracker.address, "--out", out.path];
  const refused = await peerDownload("old.bin", ...common);
  assert.equal(refused.code, 1, refused.stdout);
  assertOneLineError(refused, "an unverifiable download");
  assert.match(refused.stderr, /cannot be verified.*--unverified/);
  assert.equal(await exists(join(out.path, "old.bin")), false);

  const taken = await peerDownload("old.bin", "--unverified", ...common);
  assert.equal(taken.code, 0, taken.stderr);
  assert.match(taken.stdout, /NOT verified/);
  assert.equal(
    await sha256File(join(out.path, "old.bin")),
    await sha256(data),
  );
});

Deno.test("Dead addresses listed ahead of the live holder do not eclipse it", async () => {
  await using tracker = await spawnTracker({ interval: "30s" });
  await using dir = await tempDir();
  const data = randomBytes(600 * 1024);
  await Deno.writeFile(join(dir.path, "target.bin"), data);
  const manifest = await hashFile(join(dir.path, "target.bin"), "target.bin", {
    chunkSize: 256 * 1024,
  });
  // Eight registrations of the id on ports nobody listens on, made first.
  for (let i = 0; i < 8; i++) {
    await registerFake(tracker.address, deadPort(), manifest);
  }
  await using _seed = await spawnPeer({
    tracker: tracker.address,
    shared: dir.path,
    chunkSize: "256K",
  });
  await using out = await tempDir();
  const result = await peerDownload(
    manifest.id,
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(
    await sha256File(join(out.path, "target.bin")),
    await sha256(data),
  );
});

for (
  const [what, chunkReply] of [
    ["says it has everything and never sends", "silence"],
    ["answers every chunk with not_found", "not_found"],
  ] as const
) {
  Deno.test(`A download from a holder that ${what} gives up after the stall timeout and keeps its partial file`, async () => {
    await using tracker = await spawnTracker({ interval: "30s" });
    await using dir = await tempDir();
    const path = join(dir.path, "stuck.bin");
    await Deno.writeFile(path, randomBytes(300 * 1024));
    const manifest = await hashFile(path, "stuck.bin", {
      chunkSize: 64 * 1024,
    });
    let chunkRequests = 0;
    await using fake = startFakePeer(async (request, connection) => {
      const rid = request.rid;
      if (request.type === "have") {
        return await connection.send({ type: "have", complete: true, rid });
      }
      if (request.type === "manifest") {
        const { id, name, size, chunkSize, hashes } = manifest;
        return await connection.send({
          type: "manifest",
          manifest: { id, name, size, chunkSize, hashes },
          rid,
        });
      }
      if (request.type === "chunk") {
        chunkRequests++;
        if (chunkReply === "not_found") {
          await connection.send({
            type: "error",
            code: "not_found",
            message: "No such chunk",
            rid,
          });
        }
      }
    });
    await registerFake(tracker.address, fake.port, manifest);
    await using out = await tempDir();
    const started = performance.now();
    const result = await peerDownload(
      manifest.id,
      "--tracker",
      tracker.address,
      "--out",
      out.path,
      "--stall-timeout",
      "2s",
    );
    const seconds = (performance.now() - started) / 1000;
    assert.equal(result.code, 1, result.stdout);
    assertOneLineError(result, "a stalled download");
    assert.match(result.stderr, /no chunk verified for 2 s/);
    assert.match(result.stderr, /run the download again to resume/);
    assert.ok(seconds < 45, `gave up after ${seconds.toFixed(1)} s`);
    assert.ok(chunkRequests > 0, "the holder was asked for chunks");
    assert.equal((await partials(out.path)).length, 1, "partial file kept");
    assert.equal(await exists(join(out.path, "stuck.bin")), false);
  });
}

Deno.test("A seed-protocol body that stops mid-way ends the download with a clear error and no final file", async () => {
  await using tracker = await spawnTracker({ interval: "30s" });
  const data = randomBytes(200 * 1024);
  await using seed = startSeedPeer(new Map([["half.bin", data]]), {
    sendBytes: 50 * 1024,
  });
  await legacyRequest(tracker.address, {
    command: "register",
    address: `127.0.0.1:${seed.port}`,
    files: ["half.bin"],
  });
  await using out = await tempDir();
  const result = await peerDownload(
    "half.bin",
    "--unverified",
    "--stall-timeout",
    "2s",
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.equal(result.code, 1, result.stdout);
  assertOneLineError(result, "a stalled seed download");
  assert.match(result.stderr, /no bytes for 2000 ms after 51200 of 204800/);
  assert.equal(await exists(join(out.path, "half.bin")), false);
});

/** A fake holder of a file of `size` bytes whose chunks it never sends. */
function hugeManifest(size: number): Manifest {
  const chunkSize = 16 * 1024 * 1024;
  const count = Math.ceil(size / chunkSize);
  const hashes = Array.from(
    { length: count },
    (_, i) => i.toString(16).padStart(64, "0"),
  );
  return {
    id: contentId(size, chunkSize, hashes),
    name: "huge.bin",
    size,
    chunkSize,
    hashes,
  };
}

Deno.test("A manifest larger than the size limit or the free disk space is refused before anything is created", async () => {
  await using tracker = await spawnTracker({ interval: "30s" });
  await using out = await tempDir();
  const stats = await statfs(out.path);
  const free = Number(stats.bavail) * Number(stats.bsize);
  const cases = [
    { size: 2 ** 41, error: /exceed the 1099511627776-byte limit/ },
    ...(free + 2 ** 30 < 2 ** 40
      ? [{ size: free + 2 ** 30, error: /more bytes but .* free/ }]
      : []),
  ];
  for (const { size, error } of cases) {
    const manifest = hugeManifest(size);
    await using fake = startFakePeer(async (request, connection) => {
      const rid = request.rid;
      if (request.type === "manifest") {
        const { id, name, size, chunkSize, hashes } = manifest;
        return await connection.send({
          type: "manifest",
          manifest: { id, name, size, chunkSize, hashes },
          rid,
        });
      }
      await connection.send({ type: "have", complete: true, rid });
    });
    await registerFake(tracker.address, fake.port, manifest);
    const result = await peerDownload(
      manifest.id,
      "--tracker",
      tracker.address,
      "--out",
      out.path,
    );
    assert.equal(result.code, 1, result.stdout);
    assertOneLineError(result, `a ${size}-byte manifest`);
    assert.match(result.stderr, error);
    assert.deepEqual(await partials(out.path), [], "no partial file created");
  }
});
