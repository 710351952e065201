/**
 * End-to-end tests of trackers sharing one real Redis: a registration seen
 * by the other tracker at once, peers and a download moving to the other
 * tracker when one is killed, restarts losing nothing, and a Redis outage
 * answered with `store_unavailable` and recovered from.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { TrackerClient } from "../../lib/tracker/client.ts";
import { RedisStore } from "../../lib/tracker/redis_store.ts";
import { RemoteError } from "../../lib/errors.ts";
import {
  assertOneLineError,
  CliProcess,
  PEER_TS,
  pollUntil,
  run,
  sha256,
  sha256File,
  spawnPeer,
  spawnTracker,
  taskPermissions,
  tempDir,
  writeRandomFile,
} from "../_helpers.ts";
import { startRedis } from "../../scripts/_redis.ts";

const ID = "d".repeat(64);

/** A tracker CLI on the given Redis. */
function redisTracker(url: string, interval = "500ms") {
  return spawnTracker({
    interval,
    allowEnv: true,
    args: ["--store", url, "--rate-limit", "0"],
  });
}

Deno.test("A peer registered at one tracker is in the other's getpeers within 100 ms", async () => {
  await using redis = await startRedis();
  await using a = await redisTracker(redis.url, "30s");
  await using b = await redisTracker(redis.url, "30s");
  const atA = new TrackerClient(a.address);
  const atB = new TrackerClient(b.address);
  await atA.register(10001, [{ name: "shared.bin", id: ID, size: 5 }]);
  const registered = performance.now();
  const peers = await pollUntil(
    async () => {
      const found = await atB.getPeers({ id: ID });
      return found.length > 0 ? found : undefined;
    },
    "tracker B to list the peer registered at A",
    { timeoutMs: 100, intervalMs: 1 },
  );
  const elapsed = performance.now() - registered;
  assert.ok(elapsed < 100, `seen after ${elapsed} ms`);
  assert.deepEqual(peers.map((p) => p.address), ["127.0.0.1:10001"]);
  assert.deepEqual((await atB.list("shared*")).map((f) => f.holders), [1]);
});

Deno.test("kill -9 of a tracker: its peers move to the other within a heartbeat and a download completes", async () => {
  await using redis = await startRedis();
  await using shared = await tempDir();
  await using out = await tempDir();
  const content = await writeRandomFile(
    join(shared.path, "big.bin"),
    3 * 1024 * 1024,
  );
  const a = await redisTracker(redis.url, "1s");
  try {
    await using b = await redisTracker(redis.url, "1s");
    const trackers = `${a.address},${b.address}`;
    // 1 MiB/s: the download is under way for seconds when A dies.
    await using seeder = await spawnPeer({
      tracker: trackers,
      shared: shared.path,
      chunkSize: "256K",
      heartbeat: "1s",
      args: ["--max-upload-rate", "1M"],
    });
    await using store = await RedisStore.connect({ url: redis.url });
    const downloader = new CliProcess([
      "run",
      ...taskPermissions("peer"),
      PEER_TS,
      "download",
      "big.bin",
      "--tracker",
      trackers,
      "--out",
      out.path,
    ]);
    try {
      await downloader.waitFor(/^progress big\.bin\s+[1-9]\d%/, {
        timeoutMs: 30_000,
      });
      a.kill("SIGKILL");
      await a.exited();
      const killed = Date.now();
      // The seeder's next heartbeat fails at A and lands at B.
      await pollUntil(
        async () => ((await store.get(seeder.address))?.lastSeen ?? 0) > killed,
        "the seeder to heartbeat through tracker B",
        { timeoutMs: 1000 + 500 },
      );
      const status = await downloader.exited(60_000);
      assert.equal(status.code, 0, downloader.stderr);
    } finally {
      await downloader.close();
    }
    assert.equal(
      await sha256File(join(out.path, "big.bin")),
      await sha256(content),
    );
    const atB = new TrackerClient(b.address);
    assert.deepEqual(
      (await atB.getPeers({ name: "big.bin" })).map((p) => p.address),
      [seeder.address],
    );
  } finally {
    await a.close();
  }
});

Deno.test("Restarting both trackers loses nothing: peers stay registered", async () => {
  await using redis = await startRedis();
  let a = await redisTracker(redis.url, "30s");
  let b = await redisTracker(redis.url, "30s");
  try {
    const client = new TrackerClient(`${a.address},${b.address}`);
    for (let port = 10001; port <= 10020; port++) {
      await client.register(port, [
        {
          name: `file-${port}.bin`,
          id: port.toString(16).padStart(64, "0"),
          size: port,
        },
      ]);
    }
    a.kill("SIGKILL");
    b.kill("SIGKILL");
    await a.exited();
    await b.exited();
    await a.close();
    await b.close();
    a = await redisTracker(redis.url, "30s");
    b = await redisTracker(redis.url, "30s");
    const after = new TrackerClient(`${b.address},${a.address}`);
    assert.equal((await after.list()).length, 20);
    assert.equal((await after.list("file-1001?.bin")).length, 10);
    // Heartbeats are accepted where they left off: nobody must re-register.
    for (let port = 10001; port <= 10020; port++) await after.heartbeat(port);
    assert.deepEqual(
      (await after.getPeers({ name: "file-10007.bin" })).map((p) => p.address),
      ["127.0.0.1:10007"],
    );
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("Redis stopped: store_unavailable within a second, logged once; Redis back: the tracker recovers and peers re-register", async () => {
  await using redis = await startRedis();
  {
    await using tracker = await redisTracker(redis.url, "500ms");
    await using shared = await tempDir();
    await Deno.writeTextFile(join(shared.path, "note.txt"), "hello");
    await using peer = await spawnPeer({
      tracker: tracker.address,
      shared: shared.path,
      heartbeat: "500ms",
    });
    const client = new TrackerClient(tracker.address, { timeoutMs: 5000 });
    assert.equal((await client.list()).length, 1);
    await redis.stop();
    for (let i = 0; i < 3; i++) {
      const start = performance.now();
      const error = await client.list().then(() => undefined, (e) => e);
      const elapsed = performance.now() - start;
      assert.ok(error instanceof RemoteError, String(error));
      assert.equal(error.code, "store_unavailable");
      assert.ok(elapsed < 1000, `answered after ${elapsed} ms`);
    }
    await redis.start();
    // Redis came back empty (nothing persisted): the peer is told it is
    // unknown and registers again.
    await pollUntil(
      async () =>
        (await client.getPeers({ name: "note.txt" }).catch(() => [])).some(
          (p) => p.address === peer.address,
        ),
      "the peer to be registered again after Redis came back",
      { timeoutMs: 10_000 },
    );
    await tracker.waitFor(/store available again/);
    const outages = tracker.stderr.split("\n").filter((line) =>
      line.includes("store unavailable")
    );
    assert.equal(outages.length, 1, tracker.stderr);
  }
});

Deno.test("A bad --store, or a Redis store without --allow-env, is one clear error line", async () => {
  const bad = await run("tracker", ["--port", "0", "--store", "postgres://x"]);
  assert.equal(bad.code, 2);
  assertOneLineError(bad, "a bad --store");
  assert.match(
    bad.stderr,
    /Invalid --store "postgres:\/\/x": use memory, redis:/,
  );
  // The task grants only SHOAL_SECRET of the environment.
  const env = await run("tracker", [
    "--port",
    "0",
    "--store",
    "redis://127.0.0.1:1",
  ]);
  assert.equal(env.code, 1);
  assertOneLineError(env, "a Redis store without --allow-env");
  assert.match(env.stderr, /run with --allow-env/);
});
