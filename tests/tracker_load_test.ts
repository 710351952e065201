/**
 * Tracker load at modest scale: 500 simulated peers × 10 files register and
 * heartbeat over real sockets, then `getpeers` and `list` latencies are
 * measured. The bounds are loose (shared CI machines); `deno task
 * bench:tracker` runs the 10,000-peer version.
 *
 * @module
 */
import assert from "node:assert/strict";
import { TrackerClient } from "../lib/tracker/client.ts";
import { startTracker } from "../lib/tracker/server.ts";
import {
  percentiles,
  runPool,
  simulatedFiles,
  timed,
} from "../scripts/bench_tracker.ts";

const PEERS = 500;
const FILES = 10;

Deno.test("Tracker serves 500 peers × 10 files with millisecond getpeers and list", async () => {
  await using tracker = await startTracker({
    port: 0,
    hostname: "127.0.0.1",
    // Every simulated peer shares 127.0.0.1: lift the per-address limits.
    maxRequestsPerSecond: 0,
    maxConnectionsPerAddress: 1024,
    maxPeersPerAddress: PEERS,
  });
  const client = new TrackerClient(tracker.address);

  await runPool(PEERS, 16, async (i) => {
    const registration = await client.register(
      20_000 + i,
      simulatedFiles(i, FILES),
    );
    assert.equal(registration.address, `127.0.0.1:${20_000 + i}`);
  });
  assert.equal(await tracker.store.size(), PEERS);

  const heartbeats: number[] = [];
  await runPool(PEERS, 16, async (i) => {
    await timed(heartbeats, () => client.heartbeat(20_000 + i));
  });

  const getpeers: number[] = [];
  for (let round = 0; round < 500; round++) {
    const peer = (round * 37) % PEERS;
    const file = simulatedFiles(peer, FILES)[round % FILES]!;
    const holders = await timed(
      getpeers,
      () => client.getPeers({ name: file.name }),
    );
    // Own files have one holder; each popular file is held by 5 peers.
    assert.equal(holders.length, round % FILES === FILES - 1 ? 5 : 1);
    assert.ok(holders.some((h) => h.address === `127.0.0.1:${20_000 + peer}`));
  }
  const lists: number[] = [];
  for (let round = 0; round < 20; round++) {
    const all = await timed(lists, () => client.list());
    assert.equal(all.length, PEERS * (FILES - 1) + 100);
    const some = await timed(lists, () => client.list(`peer-${round}/*`));
    assert.equal(some.length, FILES - 1);
  }

  const p = {
    heartbeat: percentiles(heartbeats),
    getpeers: percentiles(getpeers),
    list: percentiles(lists),
  };
  // Loose bounds on the medians: an order of magnitude above what an idle
  // laptop measures. A slow algorithm moves the median; a busy machine
  // (other tests, other processes on two cores) only moves the tail.
  assert.ok(p.getpeers.p50 < 100, `getpeers ${JSON.stringify(p.getpeers)}`);
  assert.ok(p.heartbeat.p50 < 500, `heartbeat ${JSON.stringify(p.heartbeat)}`);
  assert.ok(p.list.p50 < 1000, `list ${JSON.stringify(p.list)}`);
});
