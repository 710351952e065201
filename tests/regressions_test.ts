/**
 * Regression tests for bugs found in review: a backtracking glob, seed
 * heartbeats over Shoal registrations, bad advertised hosts, silent refusals,
 * unreported expiry, the rate limiter's listeners and timers, and stale file
 * handles after a file is replaced.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { legacyRequest } from "../lib/protocol/legacy.ts";
import { startPeer } from "../lib/peer/node.ts";
import { TokenBucket } from "../lib/net/rate_limit.ts";
import { Registry } from "../lib/tracker/registry.ts";
import { TrackerClient } from "../lib/tracker/client.ts";
import { startTracker } from "../lib/tracker/server.ts";
import { download } from "../lib/download/transfer.ts";
import { pollUntil, sha256File, tempDir, writeRandomFile } from "./_helpers.ts";

const ID = "a".repeat(64);

Deno.test("A pathological glob query is answered in linear time", () => {
  const registry = new Registry();
  registry.upsert("127.0.0.1:1", "shoal", [
    { name: "a".repeat(200), id: ID, size: 1 },
  ]);
  const started = performance.now();
  assert.deepEqual(registry.list("*a*a*a*a*a*a*a*a*a*a*a*a*a*b"), []);
  assert.equal(registry.list("*a*a*a*a*a*a*a*a*a*a*a*a*a*a").length, 1);
  // Linear matching takes microseconds; a backtracking one would need
  // about 10^20 steps here, so a bound this loose only fails on the bug.
  const ms = performance.now() - started;
  assert.ok(ms < 2000, `the glob backtracked (${ms.toFixed(0)} ms)`);
});

Deno.test("A filtered list shows a name that matches the query", () => {
  const registry = new Registry();
  registry.upsert("127.0.0.1:1", "shoal", [{ name: "a.txt", id: ID, size: 1 }]);
  registry.upsert("127.0.0.1:2", "shoal", [{ name: "a.bin", id: ID, size: 1 }]);
  registry.upsert("127.0.0.1:3", "shoal", [{ name: "a.bin", id: ID, size: 1 }]);
  assert.equal(registry.list("*.txt")[0]?.name, "a.txt");
  assert.equal(registry.list()[0]?.name, "a.bin");
});

Deno.test("A seed heartbeat with files turns a Shoal registration into a seed peer, and getpeers stays valid", async () => {
  await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
  const client = new TrackerClient(tracker.address);
  await client.register(5000, [{ name: "x.txt", id: ID, size: 3 }]);
  const reply = await legacyRequest(tracker.address, {
    command: "heartbeat",
    address: "127.0.0.1:5000",
    files: ["x.txt"],
  });
  assert.equal(reply.status, "ok");
  const peers = await client.getPeers({ name: "x.txt" });
  assert.deepEqual(peers, [{
    address: "127.0.0.1:5000",
    protocol: "legacy",
    name: "x.txt",
    id: null,
  }]);
});

Deno.test("A trusting tracker refuses an advertised host clients could not parse", async () => {
  await using tracker = await startTracker({
    port: 0,
    hostname: "127.0.0.1",
    trustAdvertisedAddress: true,
  });
  const client = new TrackerClient(tracker.address);
  await assert.rejects(
    client.register(81, [{ name: "y.txt", id: ID, size: 1 }], "zz:zz"),
    /not a host name or IP address/,
  );
  const seed = await legacyRequest(tracker.address, {
    command: "register",
    address: "evil_host:80",
    files: ["y.txt"],
  });
  assert.match(String(seed.status), /^error: .*host:port/);
  assert.deepEqual(await client.getPeers({ name: "y.txt" }), []);
});

Deno.test("A seed register with a bad port gets an error status, not silence", async () => {
  await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
  for (const address of ["127.0.0.1:0", "127.0.0.1:70000", "a:b:1"]) {
    const reply = await legacyRequest(tracker.address, {
      command: "register",
      address,
      files: ["a"],
    });
    assert.match(String(reply.status), /^error: /, address);
  }
});

Deno.test("The tracker reports a peer that expires", async () => {
  await using tracker = await startTracker({
    port: 0,
    hostname: "127.0.0.1",
    heartbeatIntervalMs: 100,
    expiryMs: 300,
  });
  const gone = new Promise<string>((resolve) =>
    tracker.addEventListener(
      "unregister",
      (e) => resolve(e.detail.address),
      { once: true },
    )
  );
  await new TrackerClient(tracker.address).register(6000, []);
  assert.equal(await gone, "127.0.0.1:6000");
});

Deno.test("The rate limiter rejects an aborted wait at once and leaves no timer behind", async () => {
  const bucket = new TokenBucket(1024, 1024);
  await bucket.take(4096); // Into debt: the next take must wait.
  const controller = new AbortController();
  controller.abort(new Error("stop"));
  await assert.rejects(bucket.take(1024, controller.signal), /stop/);
  const waiting = new AbortController();
  const pending = bucket.take(4096, waiting.signal);
  waiting.abort(new Error("gone"));
  await assert.rejects(pending, /gone/);
  // The sanitizer fails this test if the refill timer outlived its waiters.
});

Deno.test("A file replaced on disk is served with its new content, not from a stale handle", async () => {
  await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
  await using shared = await tempDir();
  await using out = await tempDir();
  const path = join(shared.path, "f.bin");
  await writeRandomFile(path, 256 * 1024);
  await using seeder = await startPeer({
    tracker: tracker.address,
    shared: shared.path,
    hostname: "127.0.0.1",
    chunkSize: 64 * 1024,
    heartbeatIntervalMs: 200,
  });
  await seeder.refresh();
  const first = await download("f.bin", {
    tracker: tracker.address,
    outDir: join(out.path, "1"),
  });
  // Same size, new bytes, new inode: an open handle would see the old file.
  const next = join(shared.path, "next.tmp");
  await writeRandomFile(next, 256 * 1024);
  await Deno.rename(next, path);
  const newId = await pollUntil(async () => {
    await seeder.refresh();
    const [file] = await new TrackerClient(tracker.address).list("f.bin");
    return file && file.id !== first.id ? file.id : undefined;
  }, "the new content announced");
  const second = await download(newId!, {
    tracker: tracker.address,
    outDir: join(out.path, "2"),
    saveAs: "f.bin",
  });
  assert.equal(await sha256File(second.path), await sha256File(path));
});
