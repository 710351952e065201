/**
 * Attack suite: hostile clients on real sockets against a running tracker and
 * peer — traversal names in every message that carries one, oversized,
 * truncated and garbage frames, floods of idle connections, huge seed-protocol
 * lines, spoofed addresses, request floods and a malicious peer's manifest.
 * After each attack an honest client is still served and nothing outside the
 * shared and download directories was read or written.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { RemoteError } from "../../lib/errors.ts";
import { RpcClient } from "../../lib/protocol/rpc.ts";
import { encodeLine, legacyRequest } from "../../lib/protocol/legacy.ts";
import { contentId, sha256Hex } from "../../lib/content/manifest.ts";
import { type Peer, startPeer } from "../../lib/peer/node.ts";
import { TrackerClient } from "../../lib/tracker/client.ts";
import {
  startTracker,
  type Tracker,
  type TrackerOptions,
} from "../../lib/tracker/server.ts";
import { download } from "../../lib/download/transfer.ts";
import { encodeJsonFrame } from "../../lib/net/wire.ts";
import { acceptFramed, pollUntil } from "../_helpers.ts";

const SECRET = "TOP-SECRET-CANARY-7f3a";
const HELLO = "hello, honest world\n";

/** What must never appear in a reply: the secret outside the share. */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A tracker, a peer, a shared dir, a download dir and canaries outside. */
interface Arena extends AsyncDisposable {
  root: string;
  shared: string;
  downloads: string;
  tracker: Tracker;
  peer: Peer;
  peerAddress: string;
  /** Names and contents of every file outside `shared/` and `downloads/`. */
  outside(): Promise<Map<string, string>>;
}

async function walk(dir: string, skip: Set<string>, into: Map<string, string>) {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (skip.has(path)) continue;
    if (entry.isDirectory) await walk(path, skip, into);
    else if (entry.isFile) into.set(path, await Deno.readTextFile(path));
    else if (entry.isSymlink) into.set(path, `-> ${await Deno.readLink(path)}`);
  }
}

async function arena(trackerOptions: TrackerOptions = {}): Promise<Arena> {
  const root = await Deno.makeTempDir({ prefix: "shoal_attack_" });
  const shared = join(root, "shared");
  const downloads = join(root, "downloads");
  await Deno.mkdir(join(shared, "docs"), { recursive: true });
  await Deno.mkdir(downloads);
  await Deno.writeTextFile(join(shared, "hello.txt"), HELLO);
  await Deno.writeTextFile(join(shared, "docs", "a.txt"), "alpha\n");
  await Deno.writeTextFile(join(root, "secret.txt"), SECRET);
  await Deno.writeTextFile(join(root, "canary.txt"), "canary: untouched\n");
  // Symlinks inside the share that lead outside it must never be served.
  await Deno.symlink(join(root, "secret.txt"), join(shared, "escape.txt"));
  await Deno.symlink(root, join(shared, "escdir"));
  const tracker = await startTracker({
    port: 0,
    hostname: "127.0.0.1",
    readTimeoutMs: 2000,
    ...trackerOptions,
  });
  const peer = await startPeer({
    tracker: tracker.address,
    shared,
    out: downloads,
    hostname: "127.0.0.1",
    stateDir: join(root, "state"),
    readTimeoutMs: 2000,
  });
  const peerAddress = `127.0.0.1:${peer.port}`;
  await pollUntil(
    async () =>
      (await tracker.store.getPeers({ name: "hello.txt" })).length > 0 ||
      undefined,
    "the peer to register hello.txt with the tracker",
  );
  const skip = new Set([shared, downloads, join(root, "state")]);
  return {
    root,
    shared,
    downloads,
    tracker,
    peer,
    peerAddress,
    outside: async () => {
      const files = new Map<string, string>();
      await walk(root, skip, files);
      return files;
    },
    [Symbol.asyncDispose]: async () => {
      await peer.close();
      await tracker.close();
      await Deno.remove(root, { recursive: true });
    },
  };
}

/** Asserts the tracker and the peer still serve an honest client. */
async function assertHonestServed(a: Arena): Promise<void> {
  const client = new TrackerClient(a.tracker.address, { timeoutMs: 3000 });
  const files = await client.list();
  const hello = files.find((f) => f.name === "hello.txt");
  assert.ok(hello?.id, `tracker lists hello.txt: ${JSON.stringify(files)}`);
  const holders = await client.getPeers({ name: "hello.txt" });
  assert.ok(
    holders.some((h) => h.address === a.peerAddress),
    `tracker gives the peer as a holder: ${JSON.stringify(holders)}`,
  );
  await using rpc = await RpcClient.connect(a.peerAddress, {
    requestTimeoutMs: 3000,
  });
  const manifest = await rpc.request({ type: "manifest", name: "hello.txt" });
  assert.ok(!(manifest instanceof Uint8Array));
  assert.equal((manifest.manifest as { id: string }).id, hello.id);
  const bytes = await rpc.request({ type: "chunk", id: hello.id, index: 0 });
  assert.ok(bytes instanceof Uint8Array);
  assert.equal(decoder.decode(bytes), HELLO);
  const legacy = await legacyRequest(a.tracker.address, { command: "list" });
  assert.equal(legacy.status, "ok");
}

/** Sends a framed request and returns the error code it is refused with. */
async function refusedCode(
  address: string,
  message: Record<string, unknown>,
): Promise<string> {
  await using rpc = await RpcClient.connect(address, {
    requestTimeoutMs: 3000,
  });
  try {
    const reply = await rpc.request(message);
    const text = reply instanceof Uint8Array
      ? decoder.decode(reply)
      : JSON.stringify(reply);
    assert.ok(!text.includes(SECRET), "a reply leaked the secret");
    throw new assert.AssertionError({
      message: `Expected ${JSON.stringify(message)} to be refused, got ${
        text.slice(0, 200)
      }`,
    });
  } catch (error) {
    if (!(error instanceof RemoteError)) throw error;
    assert.ok(!error.message.includes(SECRET), "an error leaked the secret");
    return error.code;
  }
}

/** Opens a raw TCP connection. */
function connect(address: string): Promise<Deno.TcpConn> {
  const [hostname, port] = address.split(":");
  return Deno.connect({ hostname: hostname!, port: Number(port) });
}

/**
 * Writes bytes (ignoring a server that already hung up), then reads until the
 * server closes; fails if it has not closed within `timeoutMs`.
 */
async function sendAndDrain(
  conn: Deno.TcpConn,
  bytes: Uint8Array,
  timeoutMs = 5000,
  halfClose = false,
): Promise<string> {
  try {
    let offset = 0;
    while (offset < bytes.length) {
      offset += await conn.write(bytes.subarray(offset));
    }
    if (halfClose) await conn.closeWrite();
  } catch {
    // The server may close before reading everything: that is the point.
  }
  return await drain(conn, timeoutMs);
}

/** Reads until the remote side closes; fails after `timeoutMs`. */
async function drain(conn: Deno.TcpConn, timeoutMs = 5000): Promise<string> {
  const timer = setTimeout(() => conn.close(), timeoutMs);
  const started = performance.now();
  let text = "";
  const buffer = new Uint8Array(64 * 1024);
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n));
    }
  } catch (error) {
    if (performance.now() - started >= timeoutMs) {
      throw new Error(`Server did not close the connection in ${timeoutMs} ms`);
    }
    if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
  return text;
}

const TRAVERSAL_NAMES: string[] = [
  "../secret.txt",
  "../../etc/passwd",
  "docs/../../secret.txt",
  "/etc/passwd",
  "C:/Windows/win.ini",
  "C:secret.txt",
  "..\\secret.txt",
  "docs\\..\\..\\secret.txt",
  "hello.txt\u0000.png",
  "docs/./a.txt",
  "docs//a.txt",
  "a\nb",
  "x".repeat(5000),
  `${"d/".repeat(40)}f`,
];

Deno.test("Peer refuses traversal names in framed manifest requests and serves nothing outside its share", async () => {
  await using a = await arena();
  const before = await a.outside();
  for (const name of TRAVERSAL_NAMES) {
    const code = await refusedCode(a.peerAddress, { type: "manifest", name });
    assert.equal(code, "bad_request", `manifest ${JSON.stringify(name)}`);
  }
  // Valid names that lead outside through symlinks are simply not shared.
  for (const name of ["escape.txt", "escdir/secret.txt", "escdir/canary.txt"]) {
    const code = await refusedCode(a.peerAddress, { type: "manifest", name });
    assert.equal(code, "not_found", `manifest ${name}`);
  }
  assert.ok(
    !a.peer.shares.files().some((f) => f.name.startsWith("esc")),
    "symlinks leading outside were indexed",
  );
  assert.deepEqual(await a.outside(), before);
  await assertHonestServed(a);
});

Deno.test("Tracker refuses traversal names in register, heartbeat and getpeers on both protocols", async () => {
  await using a = await arena();
  const id = "a".repeat(64);
  for (const name of TRAVERSAL_NAMES) {
    const files = [{ name, id, size: 1 }];
    assert.equal(
      await refusedCode(a.tracker.address, {
        type: "register",
        port: 40001,
        files,
      }),
      "bad_request",
      `register ${JSON.stringify(name)}`,
    );
    assert.equal(
      await refusedCode(a.tracker.address, {
        type: "heartbeat",
        port: a.peer.port,
        files,
      }),
      "bad_request",
      `heartbeat ${JSON.stringify(name)}`,
    );
    assert.equal(
      await refusedCode(a.tracker.address, { type: "getpeers", name }),
      "bad_request",
      `getpeers ${JSON.stringify(name)}`,
    );
    for (
      const request of [
        { command: "register", address: ":40002", files: ["ok.txt", name] },
        { command: "heartbeat", address: ":40002", files: [name] },
        { command: "getpeers", filename: name },
      ]
    ) {
      const reply = await legacyRequest(a.tracker.address, request);
      assert.match(
        String(reply.status),
        /^error: /,
        `${request.command} ${JSON.stringify(name)}`,
      );
    }
  }
  assert.equal(await a.tracker.store.get("127.0.0.1:40001"), undefined);
  assert.equal(await a.tracker.store.get("127.0.0.1:40002"), undefined);
  const names = (await a.tracker.store.search()).files.map((f) => f.name);
  assert.deepEqual(names.sort(), ["docs/a.txt", "hello.txt"]);
  await assertHonestServed(a);
});

Deno.test("Peer refuses seed-protocol downloads of traversal names and symlinks out of its share", async () => {
  await using a = await arena();
  const before = await a.outside();
  for (
    const filename of [
      ...TRAVERSAL_NAMES,
      "escape.txt",
      "escdir/secret.txt",
      "state/hashes.json",
    ]
  ) {
    const conn = await connect(a.peerAddress);
    const reply = await sendAndDrain(
      conn,
      encodeLine({ command: "download", filename }),
    );
    assert.ok(!reply.includes(SECRET), `download ${filename} leaked`);
    assert.match(reply, /^\{"status":"error: /, `download ${filename}`);
  }
  // The honest seed-protocol download still works.
  const conn = await connect(a.peerAddress);
  const reply = await sendAndDrain(
    conn,
    encodeLine({ command: "download", filename: "hello.txt" }),
  );
  // The ok line is padded with leading spaces (JSON whitespace) to 512 bytes.
  assert.equal(
    reply.trimStart(),
    `{"status":"ok","size":${HELLO.length}}\n${HELLO}`,
  );
  assert.deepEqual(await a.outside(), before);
  await assertHonestServed(a);
});

Deno.test("Oversized, truncated and garbage frames are dropped and both servers keep serving", async () => {
  await using a = await arena();
  const header = (kind: number, length: number) => {
    const bytes = new Uint8Array(5);
    bytes[0] = kind;
    new DataView(bytes.buffer).setUint32(1, length);
    return bytes;
  };
  const valid = encodeJsonFrame({ type: "list", rid: 1 });
  const attacks: [string, Uint8Array][] = [
    ["4 GiB length", header(1, 0xffffffff)],
    ["17 MiB length", header(1, 17 * 1024 * 1024)],
    ["unknown kind", header(9, 10)],
    ["data frame to a server", new Uint8Array([...header(2, 8), 0, 0, 0, 1])],
    ["invalid JSON", new Uint8Array([...header(1, 4), 0x7b, 0x7b, 0x7b, 0x7b])],
    ["JSON array", new Uint8Array([...header(1, 2), 0x5b, 0x5d])],
    ["not UTF-8", new Uint8Array([...header(1, 3), 0xff, 0xfe, 0xfd])],
    ["truncated payload", valid.subarray(0, valid.length - 3)],
    ["truncated header", valid.subarray(0, 3)],
    [
      "garbage",
      crypto.getRandomValues(new Uint8Array(4096)).map((b) =>
        b === 0x7b ? 0 : b
      ).map((b, i) => i === 0 ? 0xee : b),
    ],
  ];
  let dropped = 0;
  a.tracker.addEventListener("protocol-error", () => dropped++);
  a.peer.addEventListener("protocol-error", () => dropped++);
  for (const address of [a.tracker.address, a.peerAddress]) {
    for (const [what, bytes] of attacks) {
      const conn = await connect(address);
      // Truncated frames end with the client half-closing the stream.
      const reply = await sendAndDrain(conn, bytes, 5000, true).catch(
        (error) => {
          throw new Error(`${what} to ${address}: ${error.message}`);
        },
      );
      assert.ok(!reply.includes(SECRET));
      // Nothing is answered to a stream that is not a valid frame sequence
      // (except errors for well-framed but invalid requests).
      assert.ok(
        reply === "" || reply.includes("error"),
        `${what} to ${address}: ${reply}`,
      );
    }
  }
  assert.ok(dropped >= 12, `expected protocol errors, saw ${dropped}`);
  await assertHonestServed(a);
});

Deno.test("A flood of 300 idle and half-open connections neither locks out honest clients nor lingers past the timeouts", async () => {
  // Honest clients must be served well before the flood times out; the
  // bounds leave room for a busy machine on both sides of that line.
  const readTimeoutMs = 4000;
  await using a = await arena({ readTimeoutMs });
  const flood: Deno.TcpConn[] = [];
  const closed: Promise<string>[] = [];
  try {
    for (let i = 0; i < 300; i++) {
      const address = i % 2 === 0 ? a.tracker.address : a.peerAddress;
      const conn = await connect(address);
      flood.push(conn);
      // A third say nothing, a third start a frame, a third start a line.
      if (i % 3 === 1) await conn.write(new Uint8Array([1, 0, 0]));
      if (i % 3 === 2) await conn.write(encoder.encode('{"command":'));
    }
    // While the flood is open, honest clients from the same address are
    // served at once, not when the flood times out.
    for (let round = 0; round < 3; round++) {
      const started = performance.now();
      await assertHonestServed(a);
      const ms = performance.now() - started;
      assert.ok(
        ms < readTimeoutMs / 2,
        `honest round ${round} took ${ms.toFixed(0)} ms`,
      );
    }
    // Every flood connection is closed by the servers: displaced by newer
    // ones at the per-address cap, or dropped by the read timeouts (drain
    // fails if one is still open after the timeout and as much again).
    for (const conn of flood) closed.push(drain(conn, 2 * readTimeoutMs));
    await Promise.all(closed);
  } finally {
    if (closed.length === 0) {
      for (const conn of flood) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
    }
  }
  await assertHonestServed(a);
});

Deno.test("Seed-protocol clients sending huge lines are refused with a bounded buffer", async () => {
  await using a = await arena();
  for (const address of [a.tracker.address, a.peerAddress]) {
    const huge = new Uint8Array(3 * 1024 * 1024).fill(0x61);
    huge[0] = 0x7b; // "{"
    const conn = await connect(address);
    const reply = await sendAndDrain(conn, huge, 8000);
    // The server answers once the 1 MiB limit is passed and hangs up (the
    // reply may be lost to a reset if we were still writing).
    assert.ok(
      reply === "" || /exceeds the 1048576-byte limit/.test(reply),
      `reply from ${address}: ${reply.slice(0, 200)}`,
    );
  }
  await assertHonestServed(a);
});

Deno.test("Tracker records the source address, not the host a registration claims", async () => {
  await using a = await arena();
  const client = new TrackerClient(a.tracker.address);
  const id = "b".repeat(64);
  const registration = await client.register(
    40010,
    [{ name: "claimed.txt", id, size: 3 }],
    "203.0.113.9",
  );
  assert.equal(registration.address, "127.0.0.1:40010");
  const legacy = await legacyRequest(a.tracker.address, {
    command: "register",
    address: "198.51.100.7:40011",
    files: ["legacy-claimed.txt"],
  });
  assert.equal(legacy.status, "ok");
  const holders = [
    ...await client.getPeers({ name: "claimed.txt" }),
    ...await client.getPeers({ name: "legacy-claimed.txt" }),
  ].map((p) => p.address);
  assert.deepEqual(holders, ["127.0.0.1:40010", "127.0.0.1:40011"]);
  // Unregistering "someone else" only ever touches the sender's own address.
  await client.unregister(a.peer.port, "203.0.113.9");
  await pollUntil(
    async () =>
      (await a.tracker.store.get(a.peerAddress)) === undefined || undefined,
    "the sender's own registration to go",
  );
  await a.peer.refresh();
  await pollUntil(
    async () => (await a.tracker.store.get(a.peerAddress)) ? true : undefined,
    "the peer to re-register",
  );
  await assertHonestServed(a);
});

Deno.test("A tracker told to trust advertised addresses records the claimed host", async () => {
  await using tracker = await startTracker({
    port: 0,
    hostname: "127.0.0.1",
    trustAdvertisedAddress: true,
  });
  const registration = await new TrackerClient(tracker.address).register(
    40012,
    [],
    "203.0.113.9",
  );
  assert.equal(registration.address, "203.0.113.9:40012");
});

Deno.test("Tracker answers a request flood from one address with rate_limited, then serves it again", async () => {
  // A burst of 30 and one new token every 4 s: however slowly this machine
  // gets through the flood, it earns only a token or two meanwhile, so the
  // limit (not the clock) decides how many requests are served.
  const rate = 0.25;
  const burst = 30;
  await using a = await arena({
    maxRequestsPerSecond: rate,
    requestBurst: burst,
  });
  await using rpc = await RpcClient.connect(a.tracker.address);
  const started = performance.now();
  const replies = await Promise.allSettled(
    Array.from({ length: 100 }, () => rpc.request({ type: "list" })),
  );
  const elapsed = (performance.now() - started) / 1000;
  const limited =
    replies.filter((r) =>
      r.status === "rejected" && r.reason instanceof RemoteError &&
      r.reason.code === "rate_limited"
    ).length;
  const served = replies.filter((r) => r.status === "fulfilled").length;
  assert.equal(served + limited, 100, JSON.stringify(replies.slice(0, 3)));
  // The peer's own registration used a little of the burst.
  const earned = Math.ceil(elapsed * rate) + 1;
  assert.ok(
    served >= burst - 10 && served <= burst + earned,
    `served ${served} of 100 in ${elapsed.toFixed(1)} s (burst ${burst})`,
  );
  // The seed protocol shares the address's budget, which is spent.
  const legacy = await legacyRequest(a.tracker.address, { command: "list" });
  assert.match(String(legacy.status), /requests per second/);
  // Tokens refill at the configured rate.
  await pollUntil(
    async () => {
      try {
        await new TrackerClient(a.tracker.address).list();
        return true;
      } catch (error) {
        if (error instanceof RemoteError && error.code === "rate_limited") {
          return undefined;
        }
        throw error;
      }
    },
    "the tracker to serve the address again",
    { timeoutMs: 4 * 1000 / rate, intervalMs: 100 },
  );
});

Deno.test("A malicious peer's manifest cannot make a downloader write outside its download directory", async () => {
  await using a = await arena();
  const before = await a.outside();
  const data = encoder.encode("evil payload\n");
  const hashes = [sha256Hex(data)];
  const id = contentId(data.length, 4096, hashes);
  const names = ["../evil.txt", "../../evil.txt", "/tmp/evil.txt", "ok.txt"];
  let manifestName = names[0]!;
  let corrupt = false;
  // A hand-rolled hostile peer: answers manifests with the chosen name and
  // chunks with the chosen bytes.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const handlers: Promise<void>[] = [];
  const served = (async () => {
    for await (const conn of listener) {
      const handle = async () => {
        const frames = await acceptFramed(conn, { readTimeoutMs: 5000 });
        try {
          for await (const frame of frames.frames()) {
            if (frame.kind !== "json") break;
            const m = frame.message as Record<string, unknown>;
            if (m.type === "manifest") {
              await frames.send({
                type: "manifest",
                rid: m.rid,
                manifest: {
                  id,
                  name: manifestName,
                  size: data.length,
                  chunkSize: 4096,
                  hashes,
                },
              });
            } else if (m.type === "have") {
              await frames.send({ type: "have", complete: true, rid: m.rid });
            } else if (m.type === "chunk") {
              const bytes = corrupt ? encoder.encode("EVIL PAYLOAD\n") : data;
              await frames.sendData(m.rid as number, bytes);
            }
          }
        } catch {
          /* the downloader hung up */
        } finally {
          frames.close();
        }
      };
      handlers.push(handle());
    }
  })();
  const source = {
    address: `127.0.0.1:${listener.addr.port}`,
    protocol: "shoal" as const,
    name: "evil.txt",
    id,
  };
  try {
    for (const name of names.slice(0, 3)) {
      manifestName = name;
      await assert.rejects(
        download(id, {
          sources: [source],
          outDir: a.downloads,
          requestTimeoutMs: 2000,
          refreshIntervalMs: 200,
        }),
        (error: Error) => {
          assert.match(error.message, /Cannot accept name/);
          return true;
        },
      );
    }
    // A valid name with bytes that do not match the hashes is never saved.
    manifestName = "ok.txt";
    corrupt = true;
    await assert.rejects(
      download(id, {
        sources: [source],
        outDir: a.downloads,
        requestTimeoutMs: 2000,
        refreshIntervalMs: 200,
        maxStrikes: 1,
      }),
      (error: Error) => {
        assert.match(error.message, /hash|verif/i);
        return true;
      },
    );
    assert.ok(
      !(await Array.fromAsync(Deno.readDir(a.downloads))).some((e) =>
        e.name === "ok.txt"
      ),
      "a corrupt file was saved",
    );
  } finally {
    listener.close();
    await served.catch(() => {});
    await Promise.all(handlers);
  }
  assert.deepEqual(await a.outside(), before);
  await assertHonestServed(a);
});
