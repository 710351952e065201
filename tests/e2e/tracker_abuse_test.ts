/**
 * Hostile tracker clients on real sockets: crowding a name's holders with
 * seed-protocol registrations, dead ports registered ahead of a live holder,
 * more peers and files from one IP than its limits, a size that disagrees
 * with a content id, and list queries that make the tracker examine many
 * names.
 *
 * @module
 */
import assert from "node:assert/strict";
import { RemoteError } from "../../lib/errors.ts";
import { ephemeralIdentity, keyToHex } from "../../lib/net/identity.ts";
import { legacyRequest } from "../../lib/protocol/legacy.ts";
import type { FileAnnouncement } from "../../lib/protocol/messages.ts";
import { TrackerClient } from "../../lib/tracker/client.ts";
import { startTracker } from "../../lib/tracker/server.ts";
import { spawnTracker } from "../_helpers.ts";

const ID = "c0ffee".padEnd(64, "0");

function seedRegister(tracker: string, port: number, files: string[]) {
  return legacyRequest(tracker, {
    command: "register",
    address: `127.0.0.1:${port}`,
    files,
  });
}

Deno.test("230 seed-protocol registrations from one address cannot push a Shoal holder out of getpeers", async () => {
  await using tracker = await startTracker({
    port: 0,
    hostname: "127.0.0.1",
    // The attacker's registrations must all be accepted: this is about order.
    maxPeersPerAddress: 1000,
  });
  for (let port = 1; port <= 230; port++) {
    const reply = await seedRegister(tracker.address, 20_000 + port, [
      "movie.mkv",
    ]);
    assert.equal(reply.status, "ok");
  }
  const client = new TrackerClient(tracker.address);
  await client.register(7000, [{ name: "movie.mkv", id: ID, size: 10 }]);
  for (let round = 0; round < 20; round++) {
    const peers = await client.getPeers({ name: "movie.mkv" });
    assert.equal(peers.length, 200);
    assert.deepEqual(peers[0], {
      address: "127.0.0.1:7000",
      protocol: "shoal",
      name: "movie.mkv",
      id: ID,
      // The key this process proved when it registered.
      key: keyToHex(ephemeralIdentity().publicKey),
    });
  }
  // Seed-protocol clients get the verified holder first too.
  const seed = await legacyRequest(tracker.address, {
    command: "getpeers",
    filename: "movie.mkv",
  });
  assert.equal((seed.peers as string[])[0], "127.0.0.1:7000");
});

Deno.test("Dead ports registered ahead of a live holder do not pin getpeers by id to registration order", async () => {
  await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
  const client = new TrackerClient(tracker.address);
  const file = [{ name: "x.bin", id: ID, size: 10 }];
  for (let port = 1; port <= 8; port++) {
    await client.register(40_000 + port, file);
  }
  await client.register(9000, file);
  const positions = new Set<number>();
  for (let round = 0; round < 200; round++) {
    const peers = await client.getPeers({ id: ID });
    assert.equal(peers.length, 9);
    positions.add(peers.findIndex((p) => p.address === "127.0.0.1:9000"));
  }
  // (8/9)^200 ≈ 6e-11: the live holder comes first in some reply.
  assert.ok(positions.has(0), `positions ${[...positions]}`);
  assert.ok(positions.size > 1);
});

Deno.test("The tracker refuses more peers and files from one IP than its limits", async () => {
  await using tracker = await spawnTracker({
    args: [
      "--max-peers-per-address",
      "3",
      "--max-files-per-address",
      "10",
      "--write-timeout",
      "5s",
    ],
  });
  const client = new TrackerClient(tracker.address);
  const files = (n: number, tag: string): FileAnnouncement[] =>
    Array.from({ length: n }, (_, i) => ({
      name: `${tag}-${i}.bin`,
      id: (i + 1).toString(16).padStart(64, tag), // tag: one hex digit
      size: 1,
    }));
  await client.register(5001, files(4, "a"));
  await client.register(5002, files(4, "b"));
  const refused = (error: unknown) =>
    error instanceof RemoteError && error.code === "limit_exceeded";
  // 4 + 4 + 3 files > 10.
  await assert.rejects(client.register(5003, files(3, "c")), refused);
  await client.register(5003, files(2, "c"));
  // A fourth port from the same IP.
  await assert.rejects(client.register(5004, []), refused);
  const seed = await seedRegister(tracker.address, 5005, ["s.txt"]);
  assert.match(String(seed.status), /^error: .*3 peers registered/);
  // A heartbeat that would pass the file limit changes nothing.
  await assert.rejects(client.heartbeat(5001, files(5, "d")), refused);
  assert.equal((await client.list()).length, 10);
});

Deno.test("By default the tracker refuses the 129th peer from one IP", async () => {
  await using tracker = await spawnTracker();
  for (let port = 1; port <= 128; port++) {
    const reply = await seedRegister(tracker.address, 6000 + port, []);
    assert.equal(reply.status, "ok", `port ${port}`);
  }
  const reply = await seedRegister(tracker.address, 7000, []);
  assert.match(String(reply.status), /^error: .*128 peers registered/);
});

Deno.test("A size that disagrees with a content id does not change the honest holders' list entry", async () => {
  await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
  const client = new TrackerClient(tracker.address);
  // The liar announces first, with a size the id does not carry.
  await client.register(8001, [{ name: "a.iso", id: ID, size: 999_999 }]);
  await client.register(8002, [{ name: "a.iso", id: ID, size: 100 }]);
  await client.register(8003, [{ name: "a.iso", id: ID, size: 100 }]);
  for (const query of [undefined, "a.iso", "*.iso"]) {
    const listed = (await client.list(query)).sort((x, y) => x.size! - y.size!);
    assert.deepEqual(listed, [
      { name: "a.iso", id: ID, size: 100, holders: 2 },
      { name: "a.iso", id: ID, size: 999_999, holders: 1 },
    ]);
  }
});

Deno.test("A list that examines many names costs more of the client's rate", async () => {
  await using tracker = await startTracker({
    port: 0,
    hostname: "127.0.0.1",
    // One token per 5 s: refills during the test do not matter.
    maxRequestsPerSecond: 0.2,
    requestBurst: 60,
  });
  const client = new TrackerClient(tracker.address);
  for (let peer = 0; peer < 6; peer++) {
    await client.register(
      9000 + peer,
      Array.from({ length: 10_000 }, (_, i) => ({
        name: `p${peer}/f${i}.bin`,
        id: ID,
        size: 1,
      })),
    );
  }
  // 7 requests so far; this one examines 60,000 names: 60 more tokens.
  assert.deepEqual(await client.list("no-such-name"), []);
  await assert.rejects(
    client.getPeers({ id: ID }),
    (error) => error instanceof RemoteError && error.code === "rate_limited",
  );
});
