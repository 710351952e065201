/**
 * The seed-protocol fallback of the tracker client, against a tracker in this
 * process that speaks only the seed protocol and behaves as the original Go
 * one does (a first byte that is not JSON closes the connection; `register`
 * only adds names; a heartbeat from an unknown address is "peer not
 * registered"; an empty `filemap` is left out).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startTracker } from "../mod.ts";
import { ProtocolError, RemoteError } from "../lib/errors.ts";
import { tcpTransport, type Transport } from "../lib/net/transport.ts";
import { writeAll } from "../lib/net/connection.ts";
import { TrackerClient } from "../lib/tracker/client.ts";
import {
  assertOneLineError,
  randomBytes,
  runPeer,
  serveEach,
  spawnPeer,
  startSeedPeer,
  tempDir,
} from "./_helpers.ts";

/** A seed-only tracker in this process. */
interface SeedTracker extends AsyncDisposable {
  readonly address: string;
  /** Registered address → names. */
  readonly peers: Map<string, Set<string>>;
  /** Requests served, by command. */
  readonly commands: string[];
}

/**
 * Starts a seed-only tracker. A request that is not a JSON line is closed
 * unanswered (the Go tracker), or with `answerBadInput` answered with a seed
 * error line (`{"status":"error: …"}`).
 */
function startSeedTracker(
  options: { answerBadInput?: boolean } = {},
): SeedTracker {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peers = new Map<string, Set<string>>();
  const commands: string[] = [];
  const encoder = new TextEncoder();
  const answer = (request: Record<string, unknown>) => {
    const address = String(request.address);
    switch (request.command) {
      case "register": {
        const names = peers.get(address) ?? new Set<string>();
        for (const name of request.files as string[] ?? []) names.add(name);
        peers.set(address, names);
        return { status: "ok" };
      }
      case "heartbeat":
        return peers.has(address)
          ? { status: "ok" }
          : { status: "peer not registered" };
      case "list": {
        const filemap: Record<string, string[]> = {};
        for (const [peer, names] of peers) {
          for (const name of names) (filemap[name] ??= []).push(peer);
        }
        return Object.keys(filemap).length > 0
          ? { status: "ok", filemap }
          : { status: "ok" };
      }
      case "getpeers":
        return {
          status: "ok",
          peers: [...peers].filter(([, names]) =>
            names.has(String(request.filename))
          ).map(([peer]) => peer),
        };
    }
    return undefined;
  };
  const serve = async (conn: Deno.Conn) => {
    const buffer = new Uint8Array(64 * 1024);
    let text = "";
    while (!text.includes("\n")) {
      const n = await conn.read(buffer);
      if (n === null) return;
      // Like Go's JSON decoder: a value must start with "{".
      if (text === "" && buffer[0] !== 0x7b) {
        if (options.answerBadInput) {
          await writeAll(
            conn,
            encoder.encode('{"status":"error: not a JSON request"}\n'),
          );
        }
        return;
      }
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    const request = JSON.parse(text.slice(0, text.indexOf("\n")));
    commands.push(request.command);
    const reply = answer(request);
    if (reply) {
      await writeAll(conn, encoder.encode(JSON.stringify(reply) + "\n"));
    }
  };
  const server = serveEach(listener, serve);
  return {
    address: `127.0.0.1:${listener.addr.port}`,
    peers,
    commands,
    [Symbol.asyncDispose]: () => server[Symbol.asyncDispose](),
  };
}

const file = (name: string) => ({ name, id: "0".repeat(64), size: 1 });

Deno.test("TrackerClient falls back to the seed protocol when the tracker speaks only that", async () => {
  await using tracker = startSeedTracker();
  const client = new TrackerClient(tracker.address);
  assert.equal(client.protocol, undefined);

  const registration = await client.register(4100, [
    file("a.txt"),
    file("docs/b.md"),
  ]);
  assert.equal(client.protocol, "seed");
  assert.deepEqual(registration, {
    address: "127.0.0.1:4100",
    heartbeatIntervalMs: 30_000,
    expiryMs: 180_000,
    deltas: false,
    protocol: "seed",
  });
  assert.deepEqual([...tracker.peers.get("127.0.0.1:4100")!], [
    "a.txt",
    "docs/b.md",
  ]);

  assert.deepEqual(await client.list(), [
    { name: "a.txt", id: null, size: null, holders: 1 },
    { name: "docs/b.md", id: null, size: null, holders: 1 },
  ]);
  assert.deepEqual((await client.list("*.md")).map((f) => f.name), [
    "docs/b.md",
  ]);
  assert.deepEqual(await client.getPeers({ name: "a.txt" }), [
    { address: "127.0.0.1:4100", protocol: "legacy", name: "a.txt", id: null },
  ]);
  // A seed tracker knows no content ids.
  assert.deepEqual(await client.getPeers({ id: "f".repeat(64) }), []);

  // Heartbeats; a new full list goes as a register (the one command that
  // changes a seed tracker's list); there is no unregister.
  await client.heartbeat(4100);
  await client.heartbeat(4100, [file("a.txt"), file("c.bin")]);
  assert.ok(tracker.peers.get("127.0.0.1:4100")!.has("c.bin"));
  await client.unregister(4100);
  await assert.rejects(
    client.announceChanges(4100, 1, [], []),
    (error: unknown) => error instanceof RemoteError && error.code === "resync",
  );
  // Only the first call tried the framed protocol; then seed requests only.
  assert.deepEqual(tracker.commands, [
    "list", // the probe
    "register",
    "list",
    "list",
    "getpeers",
    "heartbeat",
    "register",
  ]);
});

Deno.test("TrackerClient also falls back when a seed tracker answers a framed request in the seed shape", async () => {
  await using tracker = startSeedTracker({ answerBadInput: true });
  const client = new TrackerClient(tracker.address);
  await client.register(4150, [file("a.txt")]);
  assert.equal(client.protocol, "seed");
  assert.deepEqual((await client.list()).map((f) => f.name), ["a.txt"]);
});

Deno.test("A heartbeat to a seed tracker that forgot the peer is unknown_peer", async () => {
  await using tracker = startSeedTracker();
  const client = new TrackerClient(tracker.address);
  await client.register(4200, [file("a.txt")]);
  tracker.peers.clear(); // a restarted tracker
  await assert.rejects(
    client.heartbeat(4200),
    (error: unknown) =>
      error instanceof RemoteError && error.code === "unknown_peer",
  );
});

Deno.test("A client with a secret refuses a seed-only tracker with one clear error", async () => {
  await using tracker = startSeedTracker();
  const client = new TrackerClient(tracker.address, {
    secret: "a-long-enough-secret-for-tests",
  });
  await assert.rejects(
    client.list(),
    /it speaks only the seed protocol, which has no private swarms/,
  );
});

Deno.test("TrackerClient stays on the framed protocol with a Shoal tracker, and does not fall back on a refused connection", async () => {
  await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
  const client = new TrackerClient(tracker.address);
  const registration = await client.register(4300, [file("a.txt")]);
  assert.equal(registration.protocol, "shoal");
  assert.equal(client.protocol, "shoal");
  await client.unregister(4300);

  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = listener.addr.port;
  listener.close();
  const nobody = new TrackerClient(`127.0.0.1:${closedPort}`);
  await assert.rejects(nobody.list(), Deno.errors.ConnectionRefused);
  assert.equal(nobody.protocol, undefined);
});

Deno.test("A connection a Shoal tracker drops at first contact never turns a client to the seed protocol", async () => {
  await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
  let dials = 0;
  // The first connection is cut before the handshake's answer (a restart,
  // an overload, a connection cap): the tracker answers seed `list` too,
  // but says it is Shoal, so the failure stays a failure.
  const flaky: Transport = {
    async dial(address, options) {
      const conn = await tcpTransport.dial(address, options);
      if (dials++ > 0) return conn;
      return {
        read: () => {
          conn.close();
          return Promise.resolve(null);
        },
        write: (p) => conn.write(p),
        close: () => {
          try {
            conn.close();
          } catch { /* closed */ }
        },
        remoteAddr: conn.remoteAddr,
      };
    },
    listen: (options) => tcpTransport.listen(options),
  };
  const client = new TrackerClient(tracker.address, { transport: flaky });
  await assert.rejects(client.list(), ProtocolError);
  assert.notEqual(client.protocol, "seed");
  // The next call goes over the framed, encrypted protocol again.
  const registration = await client.register(4301, [file("b.txt")]);
  assert.equal(registration.protocol, "shoal");
  assert.equal(client.protocol, "shoal");
  await client.unregister(4301);
});

Deno.test("A Shoal peer registers with a seed-only tracker and downloads what it lists, unverified", async () => {
  await using tracker = startSeedTracker();
  const bytes = randomBytes(100_000);
  await using seedPeer = startSeedPeer(new Map([["old.bin", bytes]]));
  tracker.peers.set(
    `127.0.0.1:${seedPeer.port}`,
    new Set(["old.bin"]),
  );
  await using shared = await tempDir();
  await using out = await tempDir();
  await Deno.writeTextFile(join(shared.path, "new.txt"), "from shoal\n");

  await using peer = await spawnPeer({
    tracker: tracker.address,
    shared: shared.path,
  });
  assert.match(
    peer.stdout,
    /speaks only the seed protocol: registered as 127\.0\.0\.1:\d+ by file name; what it lists downloads whole and NOT verified \(needs --unverified\)/,
  );
  assert.deepEqual([...tracker.peers.get(peer.address)!], ["new.txt"]);

  const refused = await runPeer(
    "download",
    "old.bin",
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.equal(refused.code, 1);
  assertOneLineError(refused, "a download from a seed-only tracker");
  assert.match(refused.stderr, /--unverified/);

  const taken = await runPeer(
    "download",
    "old.bin",
    "--tracker",
    tracker.address,
    "--out",
    out.path,
    "--unverified",
  );
  assert.equal(taken.code, 0, taken.stderr);
  assert.match(taken.stdout, /NOT verified/);
  assert.deepEqual(await Deno.readFile(join(out.path, "old.bin")), bytes);

  // A content id means nothing to a seed tracker: the error says so.
  const byId = await runPeer(
    "download",
    "a".repeat(64),
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.equal(byId.code, 1);
  assert.match(byId.stderr, /knows names, not content ids: download by name/);
});
