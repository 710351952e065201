/**
 * Liveness end to end: a tracker forgets a peer killed without goodbye within
 * three heartbeat intervals, and a restarted tracker gets its live peers back
 * within one interval.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { TrackerClient } from "../../lib/tracker/client.ts";
import { pollUntil, spawnPeer, spawnTracker, tempDir } from "../_helpers.ts";

/**
 * Long enough that a peer process starved for a second on a busy two-core
 * machine still heartbeats in time.
 */
const INTERVAL_MS = 1000;
const EXPIRY_MS = 3 * INTERVAL_MS;
/** Room for process scheduling on a busy two-core machine. */
const SLACK_MS = 2000;

async function holders(tracker: TrackerClient, name: string) {
  return (await tracker.getPeers({ name })).map((p) => p.address);
}

Deno.test("Tracker forgets a SIGKILLed peer within three heartbeat intervals", async () => {
  await using tracker = await spawnTracker({ interval: `${INTERVAL_MS}ms` });
  assert.match(tracker.stdout, new RegExp(`expiry ${EXPIRY_MS} ms`));
  await using dirA = await tempDir();
  await using dirB = await tempDir();
  await Deno.writeTextFile(join(dirA.path, "a.txt"), "from a\n");
  await Deno.writeTextFile(join(dirB.path, "b.txt"), "from b\n");
  await using victim = await spawnPeer({
    tracker: tracker.address,
    shared: dirA.path,
    heartbeat: `${INTERVAL_MS}ms`,
  });
  await using survivor = await spawnPeer({
    tracker: tracker.address,
    shared: dirB.path,
    heartbeat: `${INTERVAL_MS}ms`,
  });
  const client = new TrackerClient(tracker.address);
  // Let a few heartbeats pass, more than one expiry's worth: the victim
  // must stay listed meanwhile.
  const steady = Date.now() + EXPIRY_MS + INTERVAL_MS;
  while (Date.now() < steady) {
    assert.deepEqual(await holders(client, "a.txt"), [victim.address]);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  victim.kill("SIGKILL");
  const killedAt = performance.now();
  await victim.exited();
  await pollUntil(
    async () => (await holders(client, "a.txt")).length === 0 || undefined,
    "the killed peer to vanish from the tracker",
    { timeoutMs: EXPIRY_MS + SLACK_MS, intervalMs: 20 },
  );
  const goneAfter = performance.now() - killedAt;
  assert.ok(
    goneAfter <= EXPIRY_MS + SLACK_MS,
    `gone after ${goneAfter.toFixed(0)} ms`,
  );
  const names = (await client.list()).map((f) => f.name);
  assert.deepEqual(names, ["b.txt"], "the live peer is still listed");
  assert.deepEqual(await holders(client, "b.txt"), [survivor.address]);
});

Deno.test("A restarted tracker gets live peers back within one heartbeat", async () => {
  await using first = await spawnTracker({ interval: `${INTERVAL_MS}ms` });
  const port = first.port;
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "live.txt"), "alive\n");
  await using peer = await spawnPeer({
    tracker: first.address,
    shared: dir.path,
    heartbeat: `${INTERVAL_MS}ms`,
  });
  const client = new TrackerClient(first.address);
  assert.deepEqual(await holders(client, "live.txt"), [peer.address]);

  first.kill("SIGKILL");
  await first.exited();
  await pollUntil(
    () =>
      peer.errorLines.some((l) => /tracker unreachable/.test(l)) || undefined,
    "the peer to notice the tracker is down",
  );

  await using second = await spawnTracker({
    port,
    interval: `${INTERVAL_MS}ms`,
  });
  const startedAt = performance.now();
  assert.equal(second.port, port);
  await pollUntil(
    async () =>
      (await holders(client, "live.txt")).includes(peer.address) || undefined,
    "the peer to re-register with the restarted tracker",
    { timeoutMs: INTERVAL_MS + SLACK_MS, intervalMs: 20 },
  );
  const backAfter = performance.now() - startedAt;
  assert.ok(
    backAfter <= INTERVAL_MS + SLACK_MS,
    `back after ${backAfter.toFixed(0)} ms`,
  );
});
