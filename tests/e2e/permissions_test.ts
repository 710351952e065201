/**
 * Permission-scoped runs (open swarms: `--no-secret`, no `--allow-env`): the
 * tracker with `--allow-net` alone, a peer with
 * `--allow-net` plus reads and writes of its shared and state directories
 * only, and a downloader with its download directory only. Traversal
 * attempts against them are stopped by Shoal's own checks (the error
 * messages show which layer), and a probe run with the same flags shows what
 * Deno's permission check would have stopped too.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { RemoteError } from "../../lib/errors.ts";
import { RpcClient } from "../../lib/protocol/rpc.ts";
import { legacyRequest } from "../../lib/protocol/legacy.ts";
import { hashFile } from "../../lib/content/manifest.ts";
import { TrackerClient } from "../../lib/tracker/client.ts";
import {
  CliProcess,
  PEER_TS,
  runDeno,
  startFakePeer,
  tempDir,
  TRACKER_TS,
} from "../_helpers.ts";

const SECRET_TEXT = `TOP SECRET ${crypto.randomUUID()}`;

/** `--allow-*` flags granting exactly these reads and writes, and the net. */
function scoped(read: string[], write: string[]): string[] {
  return [
    "--no-prompt",
    "--allow-net",
    `--allow-read=${read.join(",")}`,
    `--allow-write=${write.join(",")}`,
  ];
}

/** Every file under `dir`, as relative paths. */
async function listTree(dir: string, prefix = ""): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const name = prefix + entry.name;
    names.push(name);
    if (entry.isDirectory) {
      names.push(...await listTree(join(dir, entry.name), `${name}/`));
    }
  }
  return names.sort();
}

/**
 * A hostile holder: answers `manifest` with a valid manifest of real content
 * under the name `name` (a traversal attempt).
 */
async function hostileHolder(path: string, name: string) {
  const manifest = await hashFile(path, "placeholder.bin");
  const peer = startFakePeer(async (request, connection) => {
    if (request.type === "manifest") {
      const { id, size, chunkSize, hashes } = manifest;
      await connection.send({
        type: "manifest",
        manifest: { id, name, size, chunkSize, hashes },
        rid: request.rid,
      });
    } else {
      await connection.send({ type: "have", complete: true, rid: request.rid });
    }
  });
  return {
    port: peer.port,
    manifest,
    [Symbol.asyncDispose]: () => peer[Symbol.asyncDispose](),
  };
}

Deno.test("A peer runs with only net and its own directories, and traversal is stopped by Shoal's checks first", async (t) => {
  await using root = await tempDir();
  const shared = join(root.path, "shared");
  const state = join(root.path, "state");
  const downloads = join(root.path, "downloads");
  const outside = join(root.path, "outside");
  for (const dir of [shared, state, downloads, outside]) await Deno.mkdir(dir);
  const secretPath = join(outside, "secret.txt");
  await Deno.writeTextFile(secretPath, SECRET_TEXT);
  await Deno.writeTextFile(join(shared, "ok.txt"), "fine to share\n");
  await Deno.writeTextFile(join(shared, "swap.txt"), "swapped out later\n");
  await Deno.symlink(secretPath, join(shared, "leak.txt"));
  const probePath = join(root.path, "probe.ts");
  const before = await listTree(root.path);

  // The tracker needs nothing but the network.
  await using tracker = new CliProcess([
    "run",
    "--no-prompt",
    "--allow-net",
    TRACKER_TS,
    "--no-secret",
    "--port",
    "0",
    "--host",
    "127.0.0.1",
    "--interval",
    "30s",
  ]);
  const trackerAddress = `127.0.0.1:${
    (await tracker.waitFor(/listening on 127\.0\.0\.1:(\d+) /)).match[1]
  }`;

  // The peer: reads and writes of its shared and state directories only (it
  // downloads into the shared one). No rescan for a minute, so a file
  // swapped for a symlink stays indexed and reaches the serve-time check.
  const peerFlags = scoped([shared, state], [shared, state]);
  await using peer = new CliProcess([
    "run",
    ...peerFlags,
    PEER_TS,
    "--daemon",
    "--no-secret",
    "--port",
    "0",
    "--host",
    "127.0.0.1",
    "--tracker",
    trackerAddress,
    "--shared",
    shared,
    "--state",
    state,
    "--no-watch",
    "--heartbeat",
    "60s",
  ]);
  const serving = await peer.waitFor(
    /^Shoal peer serving (\d+) files? \(.+?\) from .+ on port (\d+)$/,
  );
  assert.equal(serving.match[1], "2", "the symlink out is not indexed");
  await peer.waitFor(/^registered as /, { from: serving.index });
  const peerAddress = `127.0.0.1:${serving.match[2]}`;
  assert.deepEqual(peer.errorLines, [], "no permission errors");

  await using rpc = await RpcClient.connect(peerAddress);
  const refusal = async (request: Record<string, unknown>) => {
    try {
      const reply = await rpc.request(request);
      throw new Error(`Expected a refusal, got ${JSON.stringify(reply)}`);
    } catch (error) {
      assert.ok(error instanceof RemoteError, String(error));
      assert.doesNotMatch(error.message, /TOP SECRET/);
      // Shoal answered, not Deno: no permission error reached the client.
      assert.doesNotMatch(error.message, /Requires (read|write) access/);
      return error;
    }
  };

  await t.step(
    "a manifest for a symlink leading out: never indexed",
    async () => {
      const error = await refusal({ type: "manifest", name: "leak.txt" });
      assert.equal(error.code, "not_found");
      assert.equal(error.message, "No file leak.txt here");
    },
  );

  await t.step(
    "a manifest for ../ names: refused by the name validator",
    async () => {
      for (const name of ["../x", "../outside/secret.txt"]) {
        const error = await refusal({ type: "manifest", name });
        assert.equal(error.code, "bad_request");
        assert.match(
          error.message,
          new RegExp(`^Cannot accept name ${JSON.stringify(name)}: `),
        );
      }
    },
  );

  await t.step(
    "a shared file swapped for a symlink: refused at serve time",
    async () => {
      const reply = await rpc.call(
        { type: "manifest", name: "swap.txt" },
        "manifest",
      );
      const id = (reply.manifest as { id: string }).id;
      await Deno.remove(join(shared, "swap.txt"));
      await Deno.symlink(secretPath, join(shared, "swap.txt"));
      const error = await refusal({ type: "chunk", id, index: 0 });
      assert.equal(error.code, "bad_request");
      assert.equal(
        error.message,
        'Cannot serve "swap.txt": it resolves outside the shared directory',
      );
      const seed = await legacyRequest(peerAddress, {
        command: "download",
        filename: "swap.txt",
      });
      assert.match(
        String(seed.status),
        /^error: Cannot serve "swap\.txt": it resolves outside the shared directory$/,
      );
    },
  );

  await t.step(
    "Deno's permission check, with the same flags, stops the ../ paths too",
    async () => {
      await Deno.writeTextFile(
        probePath,
        `const attempts = {
  traversalRead: () => Deno.readTextFile(${
          JSON.stringify(join(shared, "..", "outside", "secret.txt"))
        }),
  outsideRead: () => Deno.readTextFile(${JSON.stringify(secretPath)}),
  traversalWrite: () => Deno.writeTextFile(${
          JSON.stringify(join(shared, "..", "escape.txt"))
        }, "x"),
  symlinkRead: () => Deno.readTextFile(${
          JSON.stringify(join(shared, "swap.txt"))
        }),
};
const outcome = {};
for (const [name, attempt] of Object.entries(attempts)) {
  try {
    await attempt();
    outcome[name] = "allowed";
  } catch (error) {
    outcome[name] = error.name;
  }
}
console.log(JSON.stringify(outcome));
`,
      );
      const probe = await runDeno(["run", ...peerFlags, probePath]);
      assert.equal(probe.code, 0, probe.stderr);
      const outcome = JSON.parse(probe.stdout);
      assert.equal(outcome.traversalRead, "NotCapable");
      assert.equal(outcome.outsideRead, "NotCapable");
      assert.equal(outcome.traversalWrite, "NotCapable");
      // Deno checks the path it is given and does not follow symlinks: the
      // swapped-in symlink is stopped only by Shoal's realpath check above.
      // (If this changes, Deno now resolves symlinks: update SECURITY.md.)
      assert.equal(outcome.symlinkRead, "allowed");
      await Deno.remove(probePath);
    },
  );

  await t.step(
    "a downloader with only its download directory saves a verified file",
    async () => {
      const flags = scoped([downloads], [downloads]);
      const result = await runDeno([
        "run",
        ...flags,
        PEER_TS,
        "download",
        "--no-secret",
        "ok.txt",
        "--tracker",
        trackerAddress,
        "--out",
        downloads,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /Downloaded ok\.txt .*verified/);
      assert.equal(
        await Deno.readTextFile(join(downloads, "ok.txt")),
        "fine to share\n",
      );
    },
  );

  await t.step(
    "a hostile manifest naming ../escape.txt: refused by the manifest validator",
    async () => {
      await using elsewhere = await tempDir();
      const content = join(elsewhere.path, "evil.bin");
      await Deno.writeTextFile(content, `not shared by anyone ${SECRET_TEXT}`);
      await using hostile = await hostileHolder(content, "../escape.txt");
      await new TrackerClient(trackerAddress).register(hostile.port, [
        {
          name: "evil.bin",
          id: hostile.manifest.id,
          size: hostile.manifest.size,
        },
      ]);
      const result = await runDeno([
        "run",
        ...scoped([downloads], [downloads]),
        PEER_TS,
        "download",
        "--no-secret",
        hostile.manifest.id,
        "--tracker",
        trackerAddress,
        "--out",
        downloads,
      ]);
      assert.equal(result.code, 1, result.stdout);
      assert.match(
        result.stderr,
        /^peer: Cannot fetch the manifest of [0-9a-f]{12}… from any of 1 holders \(127\.0\.0\.1:\d+: Cannot accept name "\.\.\/escape\.txt": /,
      );
      assert.doesNotMatch(result.stderr, /Requires (read|write) access/);
    },
  );

  // Nothing appeared or vanished outside the shared and download dirs, and
  // the secret never left.
  const after = (await listTree(root.path)).filter((name) =>
    !name.startsWith("state/") && name !== "downloads/ok.txt"
  );
  assert.deepEqual(after, before.filter((name) => !name.startsWith("state/")));
  assert.equal(
    Buffer.from(peer.stdout + peer.stderr).includes(SECRET_TEXT),
    false,
  );
});
