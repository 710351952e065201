/**
 * Private swarms end to end: a tracker and peers started with `--secret` (or
 * `SHOAL_SECRET`) serve only clients that pass the HMAC challenge–response;
 * everyone else — no secret, a wrong secret, seed-protocol clients, stalled
 * handshakes — is refused with a clear error, and the secret never crosses
 * the wire.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { AuthenticationError } from "../../lib/protocol/auth.ts";
import { FrameConnection } from "../../lib/net/connection.ts";
import { RemoteError } from "../../lib/errors.ts";
import { RpcClient } from "../../lib/protocol/rpc.ts";
import { legacyRequest } from "../../lib/protocol/legacy.ts";
import { TrackerClient } from "../../lib/tracker/client.ts";
import { startTracker } from "../../lib/tracker/server.ts";
import {
  assertOneLineError,
  CliProcess,
  pollUntil,
  run,
  sha256File,
  spawnPeer,
  spawnTracker,
  taskPermissions,
  tempDir,
  TRACKER_TS,
  writeRandomFile,
} from "../_helpers.ts";
import { startRelay } from "./_relay.ts";

const SECRET = `shoal-test-${crypto.randomUUID()}`;
const WRONG = `shoal-test-${crypto.randomUUID()}`;
const PRIVATE = /this swarm is private; a secret is required/;

/** Whether `needle` occurs in `haystack`. */
function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack).includes(Buffer.from(needle));
}

Deno.test("A private swarm serves peers that know the secret and refuses everyone else", async (t) => {
  await using shared = await tempDir();
  await using downloads = await tempDir();
  const content = await writeRandomFile(join(shared.path, "big.bin"), 600_000);
  await using tracker = await spawnTracker({ args: ["--secret", SECRET] });
  assert.match(tracker.stdout, /, private swarm\)$/m);
  await using seeder = await spawnPeer({
    tracker: tracker.address,
    shared: shared.path,
    chunkSize: "64K",
    args: ["--secret", SECRET],
  });
  const common = ["--tracker", tracker.address];

  await t.step(
    "with the secret: list, peers and a verified download",
    async () => {
      const listed = await run("peer", [
        "list",
        "--json",
        ...common,
        "--secret",
        SECRET,
      ]);
      assert.equal(listed.code, 0, listed.stderr);
      assert.deepEqual(
        JSON.parse(listed.stdout).files.map((f: { name: string }) => f.name),
        ["big.bin"],
      );
      const got = await run("peer", [
        "download",
        "big.bin",
        "--json",
        ...common,
        "--out",
        downloads.path,
        "--secret",
        SECRET,
      ]);
      assert.equal(got.code, 0, got.stderr);
      assert.equal(
        await sha256File(join(downloads.path, "big.bin")),
        await sha256File(join(shared.path, "big.bin")),
      );
      assert.equal(JSON.parse(got.stdout).size, content.length);
    },
  );

  await t.step(
    "without the secret: list, peers and download fail with one clear line",
    async () => {
      for (
        const args of [
          ["list"],
          ["peers", "big.bin"],
          ["download", "big.bin", "--out", downloads.path, "--overwrite"],
        ]
      ) {
        const result = await run("peer", [...args, ...common]);
        assert.equal(result.code, 1, `${args[0]}: ${result.stderr}`);
        assertOneLineError(result, args[0]!);
        assert.match(result.stderr, PRIVATE);
      }
    },
  );

  await t.step("a wrong secret fails with one clear line", async () => {
    const result = await run("peer", ["list", ...common, "--secret", WRONG]);
    assert.equal(result.code, 1, result.stderr);
    assertOneLineError(result, "list with a wrong secret");
    assert.equal(
      result.stderr.trim(),
      `peer: Cannot authenticate with ${tracker.address}: wrong secret`,
    );
  });

  await t.step("a peer without the secret cannot register", async () => {
    await using outsider = await tempDir();
    await Deno.writeTextFile(join(outsider.path, "intruder.txt"), "let me in");
    await using intruder = new CliProcess([
      "run",
      ...taskPermissions("peer"),
      "peer.ts",
      "--daemon",
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      ...common,
      "--shared",
      outsider.path,
    ]);
    await intruder.waitFor(/^Shoal peer serving 1 file /);
    await pollUntil(
      () =>
        intruder.errorLines.find((l) =>
          /^tracker refused this peer: .*this swarm is private/.test(l)
        ),
      `the intruder is told the swarm is private\n${intruder.stderr}`,
    );
    assert.ok(!intruder.lines.some((l) => l.startsWith("registered as")));
    const names = (await new TrackerClient(tracker.address, { secret: SECRET })
      .list()).map((f) => f.name);
    assert.deepEqual(names, ["big.bin"]);
  });

  await t.step(
    "framed requests to the peer without a handshake are refused and the connection closed",
    async () => {
      const manifest = await pollUntil(async () => {
        const rpc = await RpcClient.connect(seeder.address, { secret: SECRET });
        try {
          return await rpc.call(
            { type: "manifest", name: "big.bin" },
            "manifest",
          );
        } finally {
          await rpc.close();
        }
      }, "the seeder serves its manifest with the secret");
      const id = (manifest.manifest as { id: string }).id;
      for (
        const request of [
          { type: "manifest", name: "big.bin" },
          { type: "manifest", id },
          { type: "have", id },
          { type: "chunk", id, index: 0 },
          { type: "ping" },
        ]
      ) {
        // Plaintext, so the requests reach the server unauthenticated.
        await using rpc = await RpcClient.connect(seeder.address, {
          encryption: false,
        });
        await assert.rejects(rpc.request(request), (error: unknown) => {
          assert.ok(error instanceof RemoteError, String(error));
          assert.equal(error.code, "auth_required");
          assert.match(error.message, PRIVATE);
          return true;
        }, `${request.type} without the secret`);
        // The server hung up: nothing more is answered on that connection.
        await assert.rejects(rpc.request({ type: "ping" }, 2000));
      }
      // Encrypted (the default): refused in the handshake.
      await assert.rejects(
        RpcClient.connect(seeder.address),
        (error: unknown) => {
          assert.ok(error instanceof RemoteError, String(error));
          assert.equal(error.code, "auth_required");
          assert.match(error.message, PRIVATE);
          return true;
        },
      );
      await assert.rejects(
        RpcClient.connect(seeder.address, { secret: WRONG }),
        (error: unknown) => {
          assert.ok(error instanceof AuthenticationError, String(error));
          assert.equal(
            error.message,
            `Cannot authenticate with ${seeder.address}: wrong secret`,
          );
          return true;
        },
      );
    },
  );

  await t.step(
    "seed-protocol clients get a clear status from tracker and peer",
    async () => {
      assert.deepEqual(
        await legacyRequest(tracker.address, { command: "list" }),
        { status: "error: this swarm is private; a secret is required" },
      );
      assert.deepEqual(
        await legacyRequest(seeder.address, {
          command: "download",
          filename: "big.bin",
        }),
        { status: "error: this swarm is private; a secret is required" },
      );
    },
  );

  await t.step("the secret never crosses the wire", async () => {
    await using proxy = startRelay(seeder.port);
    {
      await using rpc = await RpcClient.connect(proxy.address, {
        secret: SECRET,
      });
      await rpc.call({ type: "manifest", name: "big.bin" }, "manifest");
    }
    const seen = proxy.bytes();
    // The handshake is Noise XXpsk3: nothing readable crosses.
    assert.ok(seen.length > 200, "the relayed handshake completed");
    assert.equal(
      contains(seen, new TextEncoder().encode("big.bin")),
      false,
      "the file name leaked",
    );
    const secret = Buffer.from(SECRET);
    for (
      const form of [
        secret,
        Buffer.from(secret.toString("hex")),
        Buffer.from(secret.toString("base64")),
      ]
    ) {
      assert.equal(contains(seen, form), false, "the secret leaked");
    }
  });
});

Deno.test("SHOAL_SECRET is read under the tasks' scoped --allow-env", async () => {
  assert.ok(
    taskPermissions("tracker").includes("--allow-env=SHOAL_SECRET"),
    "the tracker task grants exactly SHOAL_SECRET",
  );
  assert.ok(taskPermissions("peer").includes("--allow-env=SHOAL_SECRET"));
  const command = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...taskPermissions("tracker"),
      TRACKER_TS,
      "--port",
      "0",
      "--host",
      "127.0.0.1",
    ],
    env: { SHOAL_SECRET: SECRET, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  });
  await using tracker = command.spawn();
  const reader = tracker.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  const match = /listening on 127\.0\.0\.1:(\d+) .*private swarm/.exec(text);
  assert.ok(match, `the tracker says it is private: ${text}`);
  const address = `127.0.0.1:${match[1]}`;

  await assert.rejects(
    new TrackerClient(address).list(),
    (error: unknown) =>
      error instanceof RemoteError && PRIVATE.test(error.message),
  );
  assert.deepEqual(
    await new TrackerClient(address, { secret: SECRET }).list(),
    [],
  );
  tracker.kill("SIGTERM");
  await reader.cancel();
  await tracker.stderr.cancel();
  await tracker.status;
});

Deno.test("A client with a secret refuses a tracker that has none", async () => {
  await using tracker = await spawnTracker();
  const result = await run("peer", [
    "list",
    "--tracker",
    tracker.address,
    "--secret",
    SECRET,
  ]);
  assert.equal(result.code, 1, result.stderr);
  assertOneLineError(result, "list against an open tracker");
  assert.match(
    result.stderr,
    /Cannot authenticate with 127\.0\.0\.1:\d+: it runs without a secret/,
  );
  // An open tracker still serves clients without a secret, no handshake.
  const open = await run("peer", ["list", "--tracker", tracker.address]);
  assert.equal(open.code, 0, open.stderr);
});

Deno.test("A short secret is a usage error", async () => {
  const result = await run("tracker", ["--port", "0", "--secret", "hunter2"]);
  assert.equal(result.code, 2, result.stderr);
  assertOneLineError(result, "a 7-byte secret");
  assert.match(result.stderr, /Invalid --secret: .*use 16 to 1024 bytes/);
});

Deno.test("A private tracker drops a client that stalls or lies in the handshake", async () => {
  await using tracker = await startTracker({
    port: 0,
    hostname: "127.0.0.1",
    secret: SECRET,
    readTimeoutMs: 300,
  });
  const dropped: string[] = [];
  tracker.addEventListener("protocol-error", (e) => {
    dropped.push(e.detail.message);
  });
  const open = async () =>
    new FrameConnection(
      await Deno.connect({ hostname: "127.0.0.1", port: tracker.port }),
      { readTimeoutMs: 5000 },
    );
  const nonce = "ab".repeat(32);

  // Stalls after the challenge: closed by the server within its budget.
  {
    const client = await open();
    try {
      await client.send({ type: "hello", nonce, rid: 1 });
      const frames = client.frames();
      const challenge = await frames.next();
      assert.equal(
        (challenge.value as { message: { type: string } }).message.type,
        "challenge",
      );
      const started = performance.now();
      assert.equal((await frames.next()).done, true, "the server hung up");
      assert.ok(performance.now() - started < 3000);
    } finally {
      client.close();
    }
  }
  // Answers the challenge with a made-up proof: refused, then closed.
  {
    const client = await open();
    try {
      await client.send({ type: "hello", nonce, rid: 1 });
      const frames = client.frames();
      await frames.next();
      await client.send({ type: "auth", proof: "cd".repeat(32), rid: 2 });
      const reply = (await frames.next()).value as {
        message: Record<string, unknown>;
      };
      assert.deepEqual(
        [reply.message.type, reply.message.code, reply.message.rid],
        ["error", "auth_failed", 2],
      );
      assert.equal((await frames.next()).done, true, "the server hung up");
    } finally {
      client.close();
    }
  }
  await pollUntil(
    () => dropped.some((m) => /wrong secret/.test(m)) || undefined,
    `the tracker reports the wrong proof (${dropped.join("; ")})`,
  );
  assert.equal(await tracker.store.size(), 0);
});
