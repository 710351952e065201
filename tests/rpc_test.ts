/**
 * Tests of the RPC client's typed requests against a real tracker: a reply
 * comes back validated and typed by the reply map, and one that does not fit
 * the request is a protocol error.
 *
 * @module
 */
import assert from "node:assert/strict";
import { RpcClient } from "../lib/protocol/rpc.ts";
import { peerReplies, trackerReplies } from "../lib/protocol/messages.ts";
import { ProtocolError } from "../lib/errors.ts";
import { startTracker } from "../lib/tracker/server.ts";

Deno.test("RpcClient.ask returns a tracker reply validated by the reply map", async () => {
  await using tracker = await startTracker({ hostname: "127.0.0.1", port: 0 });
  await using rpc = await RpcClient.connect(tracker.address);
  const listed = await rpc.ask(trackerReplies, { type: "list" });
  assert.equal(listed.type, "files");
  assert.deepEqual(listed.files, []);
  const peers = await rpc.ask(trackerReplies, {
    type: "getpeers",
    name: "a.txt",
  });
  assert.deepEqual(peers.peers, []);
});

Deno.test("RpcClient.ask refuses a reply that does not fit the request", async () => {
  await using tracker = await startTracker({ hostname: "127.0.0.1", port: 0 });
  await using rpc = await RpcClient.connect(tracker.address);
  // A tracker answers `list` with `files`, not with a peer's `pong`.
  await assert.rejects(
    rpc.ask({ list: peerReplies.ping }, { type: "list" }),
    ProtocolError,
  );
});
