/**
 * A flash crowd with capped uplinks: the leechers trade chunks among
 * themselves, so the seeder uploads about one copy of the file; and the
 * one-shot `download --seed` serves what it fetched after it finished.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { download } from "../../lib/download/transfer.ts";
import { type Peer, startPeer } from "../../lib/peer/node.ts";
import {
  CliProcess,
  PEER_TS,
  sha256File,
  spawnPeer,
  spawnTracker,
  taskPermissions,
  type TempDir,
  tempDir,
  writeRandomFile,
} from "../_helpers.ts";

const MiB = 1024 * 1024;

Deno.test("A flash crowd of five capped leechers trades chunks: each gets some from the others, the seeder uploads at most twice the file", async () => {
  await using tracker = await spawnTracker();
  await using seed = await tempDir();
  const source = join(seed.path, "crowd.bin");
  await writeRandomFile(source, 4 * MiB);
  const expected = await sha256File(source);
  await using seeder = await spawnPeer({
    tracker: tracker.address,
    shared: seed.path,
    chunkSize: "64K",
    heartbeat: "500ms",
    args: ["--max-upload-rate", "1M"],
  });
  const dirs: TempDir[] = [];
  const leechers: Peer[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      const dir = await tempDir();
      dirs.push(dir);
      leechers.push(
        await startPeer({
          tracker: tracker.address,
          shared: dir.path,
          hostname: "127.0.0.1",
          maxUploadRate: MiB,
          heartbeatIntervalMs: 500,
        }),
      );
    }
    // Every leecher is up: all ask at the same moment.
    const results = await Promise.all(
      leechers.map((peer) => peer.download("crowd.bin")),
    );
    for (const [i, result] of results.entries()) {
      assert.equal(await sha256File(result.path), expected, `leecher ${i}`);
      const fromPeers = result.sources.filter((s) =>
        s.address !== seeder.address
      );
      assert.ok(
        fromPeers.some((s) => s.chunks > 0),
        `leecher ${i} got chunks from other leechers: ${
          JSON.stringify(result.sources)
        } (seeder ${seeder.address})`,
      );
      assert.equal(
        result.sources.reduce((sum, s) => sum + s.bytes, 0),
        result.received,
        "the per-source tallies add up to what was received",
      );
    }
  } finally {
    await Promise.all(leechers.map((peer) => peer.close()));
    for (const dir of dirs) await dir[Symbol.asyncDispose]();
  }
  seeder.kill("SIGTERM");
  const { match } = await seeder.waitFor(
    /^Uploaded (?:\S+ \S+ \()?(\d+) bytes?/,
  );
  const uploaded = Number(match[1]);
  assert.ok(
    uploaded <= 2 * 4 * MiB,
    `the seeder uploaded ${(uploaded / (4 * MiB)).toFixed(2)} × the file`,
  );
});

Deno.test("A one-shot download with --seed serves the file after it finished, until the time is up", async () => {
  await using tracker = await spawnTracker();
  await using seed = await tempDir();
  await using first = await tempDir();
  await using second = await tempDir();
  const source = join(seed.path, "linger.bin");
  await writeRandomFile(source, 512 * 1024 + 17);
  const seeder = await spawnPeer({
    tracker: tracker.address,
    shared: seed.path,
    chunkSize: "64K",
    heartbeat: "500ms",
  });
  await using lingering = new CliProcess([
    "run",
    ...taskPermissions("peer"),
    PEER_TS,
    "download",
    "linger.bin",
    "--tracker",
    tracker.address,
    "--out",
    first.path,
    "--host",
    "127.0.0.1",
    "--seed",
    "60s",
  ]);
  await lingering.waitFor(/^Downloaded linger\.bin /);
  const { match } = await lingering.waitFor(
    /^Seeding from .+ on port (\d+) for 60 s$/,
  );
  // The seeder is gone: only the lingering download holds the file.
  await seeder.close();
  const result = await download("linger.bin", {
    tracker: tracker.address,
    outDir: second.path,
  });
  assert.equal(await sha256File(result.path), await sha256File(source));
  assert.deepEqual(
    result.sources.map((s) => s.address),
    [`127.0.0.1:${match[1]}`],
  );
  lingering.kill("SIGTERM");
  const uploaded = await lingering.waitFor(
    /^Uploaded (?:\S+ \S+ \()?(\d+) bytes?\)? in \d+/,
  );
  assert.ok(Number(uploaded.match[1]) >= 512 * 1024 + 17);
});
