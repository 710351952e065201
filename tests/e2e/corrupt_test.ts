/**
 * A malicious peer that serves an honest manifest but corrupted chunks: the
 * one-shot download must fail verification and never produce the final file.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { TrackerClient } from "../../lib/tracker/client.ts";
import {
  assertOneLineError,
  exists,
  runPeer,
  spawnTracker,
  startLyingPeer,
  tempDir,
  writeRandomFile,
} from "../_helpers.ts";

const CHUNK_SIZE = 256 * 1024;

Deno.test("A download from a peer sending corrupted chunks fails verification and saves nothing", async () => {
  // Hand-made registrations send no heartbeats: they must outlive a
  // slow run.
  await using tracker = await spawnTracker({ interval: "30s" });
  await using source = await tempDir();
  const path = join(source.path, "victim.bin");
  await writeRandomFile(path, 3 * CHUNK_SIZE + 1000);
  await using liar = await startLyingPeer(path, "victim.bin", CHUNK_SIZE);

  const client = new TrackerClient(tracker.address);
  const registration = await client.register(liar.port, [{
    name: "victim.bin",
    id: liar.manifest.id,
    size: liar.manifest.size,
  }]);
  assert.equal(registration.address, `127.0.0.1:${liar.port}`);

  await using out = await tempDir();
  const result = await runPeer(
    "download",
    "victim.bin",
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.equal(result.code, 1, result.stdout);
  assertOneLineError(result, "a corrupted download");
  assert.match(result.stderr, /failed verification/);
  assert.match(result.stderr, new RegExp(`127\\.0\\.0\\.1:${liar.port}`));
  assert.ok(liar.chunksServed > 0, "the liar was asked for chunks");
  assert.equal(
    await exists(join(out.path, "victim.bin")),
    false,
    "no final file from corrupted chunks",
  );
  await client.unregister(liar.port);
});
