/**
 * Tests of a tracker client given several trackers: it fails over to the
 * next when the first is unreachable, comes back to the first once it
 * answers again, and hands a `store_unavailable` reply to the next tracker.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startTracker } from "../lib/tracker/server.ts";
import { TrackerClient } from "../lib/tracker/client.ts";
import { MemoryStore } from "../lib/tracker/memory_store.ts";
import { StoreUnavailableError } from "../lib/tracker/store.ts";
import { pollUntil } from "./_helpers.ts";

const ID = "e".repeat(64);
const FILE = { name: "a.bin", id: ID, size: 1 };

Deno.test("A client with two trackers fails over when the first is down and returns when it is back", async () => {
  let a = await startTracker({ port: 0, hostname: "127.0.0.1" });
  await using b = await startTracker({ port: 0, hostname: "127.0.0.1" });
  const portA = a.port;
  try {
    const client = new TrackerClient(`${a.address},${b.address}`, {
      retryMs: 200,
    });
    await client.register(10001, [FILE]);
    assert.equal(await a.store.size(), 1);
    await a.close();
    // A is down: the call goes to B at once.
    await client.register(10002, [FILE]);
    assert.deepEqual(
      (await b.store.getPeers({ id: ID })).map((p) => p.address),
      ["127.0.0.1:10002"],
    );
    a = await startTracker({ port: portA, hostname: "127.0.0.1" });
    // Back: once the retry delay passed, calls go to A first again.
    await pollUntil(async () => {
      await client.register(10003, [FILE]);
      return (await a.store.get("127.0.0.1:10003")) !== undefined;
    }, "calls to return to the first tracker");
  } finally {
    await a.close();
  }
});

Deno.test("A tracker whose store is unavailable answers store_unavailable and the client asks the next", async () => {
  const failing = new MemoryStore();
  failing.register = () =>
    Promise.reject(new StoreUnavailableError("Cannot reach Redis: test"));
  await using a = await startTracker({
    port: 0,
    hostname: "127.0.0.1",
    store: failing,
  });
  await using b = await startTracker({ port: 0, hostname: "127.0.0.1" });
  const outages: string[] = [];
  a.addEventListener(
    "store-unavailable",
    (e) => outages.push(e.detail.message),
  );
  const alone = new TrackerClient(a.address);
  await assert.rejects(
    alone.register(10001, [FILE]),
    (error: Error & { code?: string }) => error.code === "store_unavailable",
  );
  await assert.rejects(alone.register(10001, [FILE]));
  assert.equal(outages.length, 1, "an outage is reported once");
  const both = new TrackerClient(`${a.address},${b.address}`);
  const registration = await both.register(10001, [FILE]);
  assert.equal(registration.address, "127.0.0.1:10001");
  assert.equal(await b.store.size(), 1);
});
