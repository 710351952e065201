/**
 * Tests of the tracker service over a MemoryStore with a fake clock, without
 * sockets (register, deltas and resync, heartbeats, expiry to the
 * millisecond, getpeers order, the seed protocol), and of a tracker started
 * with a store passed in.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MemoryStore } from "../lib/tracker/memory_store.ts";
import { TrackerService } from "../lib/tracker/service.ts";
import { startTracker } from "../lib/tracker/server.ts";
import { TrackerClient } from "../lib/tracker/client.ts";
import type { TrackerStore } from "../lib/tracker/store.ts";
import type { FileAnnouncement } from "../lib/protocol/messages.ts";

const IP = "127.0.0.1";
const ID_A = "a".repeat(64);
const ID_B = "b".repeat(64);

function file(name: string, id: string, size = 10): FileAnnouncement {
  return { name, id, size };
}

/** A service over a memory store on a clock the test moves by hand. */
function fakeService(expiryMs = 1000) {
  const clock = { time: 1_000_000, now: () => clock.time };
  const store = new MemoryStore({ expiryMs, clock });
  const events: string[] = [];
  const service = new TrackerService(store, {
    heartbeatIntervalMs: expiryMs / 3,
    expiryMs,
    clock,
    emit: (type, detail) => {
      if ("address" in detail) events.push(`${type} ${detail.address}`);
    },
  });
  return { clock, store, service, events };
}

Deno.test("TrackerService registers a peer and tells it the intervals", async () => {
  const { service, store, events } = fakeService(900);
  const reply = await service.request({
    type: "register",
    port: 10001,
    files: [file("a.txt", ID_A)],
  }, IP);
  assert.deepEqual(reply, {
    type: "registered",
    address: "127.0.0.1:10001",
    heartbeatIntervalMs: 300,
    expiryMs: 900,
    deltas: true,
  });
  assert.deepEqual(events, ["register 127.0.0.1:10001"]);
  assert.equal((await store.get("127.0.0.1:10001"))?.files.size, 1);
});

Deno.test("TrackerService applies deltas in order and asks for a resync after a gap", async () => {
  const { service } = fakeService();
  await service.request({ type: "register", port: 10001, files: [] }, IP);
  assert.deepEqual(
    await service.request({
      type: "heartbeat",
      port: 10001,
      seq: 1,
      added: [file("a.txt", ID_A)],
      removed: [],
    }, IP),
    { type: "ok" },
  );
  const gap = await service.request({
    type: "heartbeat",
    port: 10001,
    seq: 3,
    added: [file("b.txt", ID_B)],
    removed: [],
  }, IP);
  assert.equal(gap.type, "error");
  assert.equal(gap.type === "error" && gap.code, "resync");
  assert.match(gap.type === "error" ? gap.message : "", /expected 2/);
  const files = await service.request({ type: "list" }, IP);
  assert.deepEqual(
    files.type === "files" && files.files.map((f) => f.name),
    ["a.txt"],
  );
  // The full list resets the sequence: the next delta is 1 again.
  await service.request({
    type: "heartbeat",
    port: 10001,
    files: [file("b.txt", ID_B)],
  }, IP);
  assert.deepEqual(
    await service.request({
      type: "heartbeat",
      port: 10001,
      seq: 1,
      added: [],
      removed: ["b.txt"],
    }, IP),
    { type: "ok" },
  );
});

Deno.test("TrackerService keeps a peer alive by heartbeats and forgets it exactly at its expiry", async () => {
  const { service, clock, events } = fakeService(1000);
  await service.request({
    type: "register",
    port: 10001,
    files: [file("a.txt", ID_A)],
  }, IP);
  clock.time += 999;
  assert.deepEqual(
    await service.request({ type: "heartbeat", port: 10001 }, IP),
    { type: "ok" },
  );
  clock.time += 999;
  const alive = await service.request({ type: "getpeers", id: ID_A }, IP);
  assert.equal(alive.type === "peers" && alive.peers.length, 1);
  clock.time += 1; // exactly one window since the heartbeat
  const gone = await service.request({ type: "getpeers", id: ID_A }, IP);
  assert.deepEqual(gone, { type: "peers", peers: [] });
  const late = await service.request({ type: "heartbeat", port: 10001 }, IP);
  assert.equal(late.type === "error" && late.code, "unknown_peer");
  await service.sweep();
  assert.deepEqual(events, [
    "register 127.0.0.1:10001",
    "unregister 127.0.0.1:10001",
  ]);
});

Deno.test("TrackerService lists Shoal holders of a name before seed-protocol ones", async () => {
  const { service } = fakeService();
  // Seed-protocol peers first, so registration order would put them first.
  for (let port = 20001; port <= 20005; port++) {
    const reply = await service.seed({
      command: "register",
      address: `127.0.0.1:${port}`,
      files: ["a.txt"],
    }, IP);
    assert.deepEqual(reply, { status: "ok" });
  }
  await service.request({
    type: "register",
    port: 10001,
    files: [file("a.txt", ID_A)],
  }, IP);
  const reply = await service.request({ type: "getpeers", name: "a.txt" }, IP);
  assert.equal(reply.type, "peers");
  const peers = reply.type === "peers" ? reply.peers : [];
  assert.equal(peers.length, 6);
  assert.deepEqual(peers[0], {
    address: "127.0.0.1:10001",
    protocol: "shoal",
    name: "a.txt",
    id: ID_A,
  });
  assert.ok(peers.slice(1).every((p) => p.protocol === "legacy"));
  const seed = await service.seed(
    { command: "getpeers", filename: "a.txt" },
    IP,
  );
  assert.equal(seed.peers?.[0], "127.0.0.1:10001");
});

Deno.test("TrackerService applies seed-protocol register and heartbeat as one store step each", async () => {
  const { service, store } = fakeService();
  const calls: string[] = [];
  // Each seed announce reaches the store as one call, never get-then-write.
  const counting = new Proxy(store, {
    get(target, key) {
      const value = Reflect.get(target, key);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        calls.push(String(key));
        return value.apply(target, args);
      };
    },
  });
  const seeded = new TrackerService(counting, { clock: { now: () => 0 } });
  const address = "127.0.0.1:20001";
  assert.deepEqual(
    await seeded.seed({ command: "heartbeat", address }, IP),
    { status: `error: ${address} is not registered; register first` },
  );
  assert.deepEqual(
    await seeded.seed({ command: "register", address, files: ["x.bin"] }, IP),
    { status: "ok" },
  );
  assert.deepEqual(
    await seeded.seed({ command: "heartbeat", address, files: ["y.bin"] }, IP),
    { status: "ok" },
  );
  assert.deepEqual(calls, ["seedAnnounce", "seedAnnounce", "seedAnnounce"]);
  const list = await service.seed({ command: "list" }, IP);
  assert.deepEqual(list, {
    status: "ok",
    filemap: { "y.bin": [address] },
    shoal: true,
  });
  // A Shoal peer that speaks the seed protocol with files becomes a seed peer.
  await service.request({
    type: "register",
    port: 10001,
    files: [file("a.txt", ID_A)],
  }, IP);
  await service.seed({
    command: "heartbeat",
    address: "127.0.0.1:10001",
    files: ["b.txt"],
  }, IP);
  assert.equal((await store.get("127.0.0.1:10001"))?.protocol, "legacy");
});

Deno.test("TrackerService answers a malformed message with bad_request and a flood with rate_limited", async () => {
  const store = new MemoryStore();
  const service = new TrackerService(store, {
    maxRequestsPerSecond: 1,
    requestBurst: 1,
    clock: { now: () => 0 },
  });
  const bad = await service.message({ type: "register", port: -1 }, IP);
  assert.equal(bad.type === "error" && bad.code, "bad_request");
  const limited = await service.message({ type: "list" }, IP);
  assert.equal(limited.type === "error" && limited.code, "rate_limited");
});

Deno.test("A tracker started with a store passed in uses it", async () => {
  const store = new MemoryStore();
  const calls = new Map<string, number>();
  const counting: TrackerStore = new Proxy(store, {
    get(target, key) {
      const value = Reflect.get(target, key);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        calls.set(String(key), (calls.get(String(key)) ?? 0) + 1);
        return value.apply(target, args);
      };
    },
  });
  await using tracker = await startTracker({
    port: 0,
    hostname: "127.0.0.1",
    store: counting,
  });
  assert.equal(tracker.store, counting);
  const client = new TrackerClient(tracker.address);
  const registration = await client.register(10001, [file("a.txt", ID_A)]);
  const listed = await client.list();
  assert.deepEqual(listed.map((f) => f.name), ["a.txt"]);
  // The registration landed in the store passed in, not one of its own.
  const record = await store.get(registration.address);
  assert.deepEqual([...record!.files.keys()], ["a.txt"]);
  assert.equal(calls.get("register"), 1);
  assert.equal(calls.get("search"), 1);
});
