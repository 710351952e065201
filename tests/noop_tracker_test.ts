/**
 * The tracker benchmark's no-op server answers every request the load sends
 * with a reply the real client accepts, so its figures are a valid floor.
 *
 * @module
 */
import assert from "node:assert/strict";
import { TrackerClient } from "../lib/tracker/client.ts";
import { serveNoop } from "../scripts/_noop_tracker.ts";

Deno.test("No-op tracker answers register, heartbeat, getpeers and list as the client expects", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) served.push(serveNoop(conn));
  })();
  try {
    const client = new TrackerClient(`127.0.0.1:${listener.addr.port}`, {
      encryption: false,
    });
    const registration = await client.register(20_000, [
      { name: "a.bin", id: "a".repeat(64), size: 1 },
    ], "127.0.0.1");
    assert.equal(typeof registration.address, "string");
    await client.heartbeat(20_000, undefined, "127.0.0.1");
    assert.equal((await client.getPeers({ name: "a.bin" })).length, 1);
    assert.equal((await client.getPeers({ id: "a".repeat(64) })).length, 1);
    assert.equal((await client.list()).length, 1);
    assert.equal((await client.list("peer-1/*")).length, 1);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    await Promise.all(served);
  }
});
