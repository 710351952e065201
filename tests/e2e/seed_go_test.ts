/**
 * Seed interop against the real thing: the original Go tracker and peer
 * (built from their public repository, see `tests/_seed_go.ts`) with Shoal's
 * CLI, both ways. A Shoal peer falls back to the seed protocol with the Go
 * tracker (registers, heartbeats, downloads unverified), and Go peers use a
 * Shoal tracker and download from Shoal peers.
 *
 * Skipped, with the reason printed, when Go or git is missing or the Go
 * source cannot be reached (`SHOAL_SEED_GO_SOURCE` points at another clone).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assertOneLineError,
  freePort,
  pollUntil,
  randomBytes,
  runPeer,
  spawnPeer,
  spawnTracker,
  tempDir,
} from "../_helpers.ts";
import {
  buildSeedGo,
  GoProcess,
  type SeedGoBuild,
  seedGoSkipReason,
} from "../_seed_go.ts";
import { TrackerClient } from "../../lib/tracker/client.ts";

const skip = await seedGoSkipReason();
if (skip !== undefined) {
  console.warn(`Skipping the Go seed interop tests: ${skip}`);
}

/** Starts the Go tracker on a free port and waits until it listens. */
async function startGoTracker(
  go: SeedGoBuild,
  port = freePort(),
): Promise<GoProcess & { address: string }> {
  const tracker = Object.assign(new GoProcess(go.tracker, [String(port)]), {
    address: `127.0.0.1:${port}`,
  });
  try {
    await tracker.waitFor(/Tracker running on port/);
  } catch (error) {
    await tracker.close();
    throw error;
  }
  return tracker;
}

/** Starts a Go peer sharing `shared` and waits until it registered. */
async function startGoPeer(
  go: SeedGoBuild,
  tracker: string,
  shared: string,
): Promise<GoProcess> {
  const peer = new GoProcess(go.peer, [tracker, String(freePort()), shared]);
  try {
    await peer.waitFor(/Peer server listening/);
    await peer.waitFor(/Registered with tracker/);
  } catch (error) {
    await peer.close();
    throw error;
  }
  return peer;
}

/** Types `download <name>` at the Go peer's prompt and waits for the result. */
async function goDownload(peer: GoProcess, name: string): Promise<void> {
  const from = peer.lines.length;
  await peer.writeLine(`download ${name}`);
  const at = await peer.waitFor(/Download (successful!|failed)/, from);
  assert.match(
    peer.lines[at]!,
    /Download successful!/,
    peer.lines.slice(from).join("\n"),
  );
}

/** Names the tracker lists, seen through Shoal's client. */
async function listed(tracker: string): Promise<string[]> {
  const files = await new TrackerClient(tracker).list().catch(() => []);
  return files.map((f) => f.name).sort();
}

Deno.test({
  name:
    "Shoal and the original Go tracker and peer share files both ways over the seed protocol",
  ignore: skip !== undefined,
  async fn(t) {
    await using work = await tempDir();
    const go = await buildSeedGo(work.path);

    const fromGo = randomBytes(200_000);
    const fromShoal = randomBytes(300_000);

    await t.step(
      "a Shoal peer falls back to the seed protocol with the Go tracker",
      async () => {
        await using goShared = await tempDir();
        await using shoalShared = await tempDir();
        await using out = await tempDir();
        await Deno.writeFile(join(goShared.path, "from-go.bin"), fromGo);
        await Deno.writeFile(
          join(shoalShared.path, "from-shoal.bin"),
          fromShoal,
        );

        let tracker = await startGoTracker(go);
        try {
          await using goPeer = await startGoPeer(
            go,
            tracker.address,
            goShared.path,
          );
          // spawnPeer waits for "registered as …": the fallback registered.
          await using shoal = await spawnPeer({
            tracker: tracker.address,
            shared: shoalShared.path,
            heartbeat: "300ms",
          });
          assert.match(
            shoal.stdout,
            /tracker 127\.0\.0\.1:\d+ speaks only the seed protocol: registered as 127\.0\.0\.1:\d+ by file name/,
          );
          assert.equal(shoal.address, `127.0.0.1:${shoal.port}`);
          assert.deepEqual(await listed(tracker.address), [
            "from-go.bin",
            "from-shoal.bin",
          ]);

          // The CLI lists both, by name only.
          const list = await runPeer(
            "list",
            "--json",
            "--tracker",
            tracker.address,
          );
          assert.equal(list.code, 0, list.stderr);
          const files = JSON.parse(list.stdout) as {
            name: string;
            id: string | null;
          }[];
          assert.deepEqual(files.map((f) => [f.name, f.id]).sort(), [
            ["from-go.bin", null],
            ["from-shoal.bin", null],
          ]);

          // Unverifiable bytes are never taken silently…
          const refused = await runPeer(
            "download",
            "from-go.bin",
            "--tracker",
            tracker.address,
            "--out",
            out.path,
          );
          assert.equal(refused.code, 1, refused.stderr);
          assertOneLineError(refused, "an unverified download");
          assert.match(
            refused.stderr,
            /speaks only the seed protocol, so the bytes it points to cannot be verified; allow unverified sources \(--unverified\)/,
          );
          // …and with --unverified they are, size-checked and marked.
          const taken = await runPeer(
            "download",
            "from-go.bin",
            "--tracker",
            tracker.address,
            "--out",
            out.path,
            "--unverified",
          );
          assert.equal(taken.code, 0, taken.stderr);
          assert.match(taken.stdout, /NOT verified/);
          assert.deepEqual(
            await Deno.readFile(join(out.path, "from-go.bin")),
            fromGo,
          );

          // The Go peer downloads from the Shoal peer it found on its tracker.
          await goDownload(goPeer, "from-shoal.bin");
          assert.deepEqual(
            await Deno.readFile(join(goShared.path, "from-shoal.bin")),
            fromShoal,
          );

          // Heartbeats: a restarted tracker answers "peer not registered",
          // and the Shoal peer registers again by itself.
          const before = shoal.lines.length;
          const port = Number(tracker.address.split(":")[1]);
          await tracker.close();
          tracker = await startGoTracker(go, port);
          await shoal.waitFor(/^registered as 127\.0\.0\.1:\d+$/, {
            from: before,
            timeoutMs: 20_000,
          });
          await pollUntil(
            async () =>
              (await listed(tracker.address)).includes("from-shoal.bin"),
            "the restarted Go tracker to list the Shoal peer's file again",
          );
        } finally {
          await tracker.close();
        }
      },
    );

    await t.step(
      "Go peers use a Shoal tracker and download from a Shoal peer",
      async () => {
        await using goShared = await tempDir();
        await using shoalShared = await tempDir();
        await using out = await tempDir();
        await Deno.writeFile(join(goShared.path, "from-go.bin"), fromGo);
        await Deno.writeFile(
          join(shoalShared.path, "from-shoal.bin"),
          fromShoal,
        );

        await using tracker = await spawnTracker({ interval: "30s" });
        await using goPeer = await startGoPeer(
          go,
          tracker.address,
          goShared.path,
        );
        await using _shoal = await spawnPeer({
          tracker: tracker.address,
          shared: shoalShared.path,
        });

        const taken = await runPeer(
          "download",
          "from-go.bin",
          "--tracker",
          tracker.address,
          "--out",
          out.path,
          "--unverified",
        );
        assert.equal(taken.code, 0, taken.stderr);
        assert.match(taken.stdout, /NOT verified/);
        assert.deepEqual(
          await Deno.readFile(join(out.path, "from-go.bin")),
          fromGo,
        );

        await goDownload(goPeer, "from-shoal.bin");
        assert.deepEqual(
          await Deno.readFile(join(goShared.path, "from-shoal.bin")),
          fromShoal,
        );
      },
    );
  },
});
