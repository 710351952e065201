/**
 * Seed-protocol compatibility, end to end: a client written only from the
 * seed protocol's description talks to a Shoal tracker and peer, and a Shoal
 * one-shot download fetches from a seed-only peer implemented here.
 *
 * Seed protocol: one newline-terminated JSON object per request, one request
 * per connection; replies carry `status` ("ok" or an error text); a download
 * reply is `{"status":"ok","size":N}\n` followed by exactly N raw bytes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  randomBytes,
  runPeer,
  spawnPeer,
  spawnTracker,
  startSeedPeer,
  tempDir,
  writeRandomFile,
} from "../_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function parseAddress(address: string): { hostname: string; port: number } {
  const colon = address.lastIndexOf(":");
  return {
    hostname: address.slice(0, colon),
    port: Number(address.slice(colon + 1)),
  };
}

/** Writes every byte. */
async function writeFully(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

/** Reads a connection until the remote side closes it. */
async function readToEnd(conn: Deno.Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  const buffer = new Uint8Array(256 * 1024);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    parts.push(buffer.slice(0, n));
    total += n;
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Sends raw bytes on a fresh connection and returns everything the server
 * sent back before closing.
 */
async function exchange(address: string, request: Uint8Array) {
  using conn = await Deno.connect(parseAddress(address));
  await writeFully(conn, request);
  return await readToEnd(conn);
}

/** One seed request: a JSON line out, a JSON line back. */
async function seedRequest(
  address: string,
  request: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const reply = await exchange(
    address,
    encoder.encode(JSON.stringify(request) + "\n"),
  );
  const newline = reply.indexOf(10);
  assert.ok(newline >= 0, `reply to ${request.command} has no newline`);
  assert.equal(newline, reply.length - 1, "reply is exactly one line");
  return JSON.parse(decoder.decode(reply.subarray(0, newline)));
}

/** A seed download: header line, then exactly `size` bytes. */
async function seedDownload(
  address: string,
  filename: string,
): Promise<Uint8Array> {
  const reply = await exchange(
    address,
    encoder.encode(JSON.stringify({ command: "download", filename }) + "\n"),
  );
  const newline = reply.indexOf(10);
  assert.ok(newline >= 0, "download reply has a header line");
  const header = JSON.parse(decoder.decode(reply.subarray(0, newline)));
  assert.equal(header.status, "ok", JSON.stringify(header));
  assert.equal(typeof header.size, "number");
  const body = reply.subarray(newline + 1);
  assert.equal(body.length, header.size, "exactly size bytes follow");
  return body;
}

Deno.test("A seed-protocol client registers, lists and downloads from Shoal", async () => {
  // Hand-made registrations send no heartbeats: they must outlive a
  // slow run.
  await using tracker = await spawnTracker({ interval: "30s" });
  await using shared = await tempDir();
  const data = await writeRandomFile(
    join(shared.path, "shoal-data.bin"),
    3 * 1024 * 1024 + 3,
  );
  await Deno.writeTextFile(join(shared.path, "hello.txt"), "hello, seed\n");
  await using peer = await spawnPeer({
    tracker: tracker.address,
    shared: shared.path,
    chunkSize: "256K",
  });

  // Nobody listens there: the tracker only stores the address.
  const me = "127.0.0.1:45678";
  assert.deepEqual(
    await seedRequest(tracker.address, {
      command: "register",
      address: me,
      files: ["seed-only.txt", "hello.txt"],
    }),
    { status: "ok" },
  );
  assert.deepEqual(
    await seedRequest(tracker.address, { command: "heartbeat", address: me }),
    { status: "ok" },
  );

  const listed = await seedRequest(tracker.address, { command: "list" });
  assert.equal(listed.status, "ok");
  const filemap = listed.filemap as Record<string, string[]>;
  assert.deepEqual(filemap["seed-only.txt"], [me]);
  assert.deepEqual(filemap["shoal-data.bin"], [peer.address]);
  assert.deepEqual(
    [...filemap["hello.txt"]!].sort(),
    [me, peer.address].sort(),
  );

  const holders = await seedRequest(tracker.address, {
    command: "getpeers",
    filename: "shoal-data.bin",
  });
  assert.deepEqual(holders, { status: "ok", peers: [peer.address] });

  assert.deepEqual(await seedDownload(peer.address, "shoal-data.bin"), data);
  assert.equal(
    decoder.decode(await seedDownload(peer.address, "hello.txt")),
    "hello, seed\n",
  );
});

Deno.test("A Shoal download fetches a whole file from a seed-only peer", async () => {
  // Hand-made registrations send no heartbeats: they must outlive a
  // slow run.
  await using tracker = await spawnTracker({ interval: "30s" });
  const content = randomBytes(2 * 1024 * 1024 + 99);
  await using seedPeer = startSeedPeer(
    new Map([["from-seed.bin", content]]),
  );
  assert.deepEqual(
    await seedRequest(tracker.address, {
      command: "register",
      address: `127.0.0.1:${seedPeer.port}`,
      files: ["from-seed.bin"],
    }),
    { status: "ok" },
  );

  await using out = await tempDir();
  const result = await runPeer(
    "download",
    "from-seed.bin",
    "--unverified",
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.match(
    result.stdout,
    /NOT verified \(seed-protocol source: only the size was checked\)/,
  );
  const got = await Deno.readFile(join(out.path, "from-seed.bin"));
  assert.equal(got.length, content.length);
  assert.deepEqual(got, content);
});

Deno.test("Tracker and peer answer garbage with a status error and keep serving", async () => {
  await using tracker = await spawnTracker();
  await using shared = await tempDir();
  await Deno.writeTextFile(join(shared.path, "still.txt"), "still here\n");
  await using peer = await spawnPeer({
    tracker: tracker.address,
    shared: shared.path,
  });

  const bad = [
    encoder.encode("hello, is this a tracker?\n"),
    encoder.encode("{this is not json\n"),
    encoder.encode('{"command": "register", "address": \n'),
    encoder.encode('{"command":"teleport","filename":"x"}\n'),
    encoder.encode('{"command":"download"}\n'),
  ];
  for (const server of [tracker.address, peer.address]) {
    for (const request of bad) {
      const reply = await exchange(server, request);
      const text = decoder.decode(reply);
      assert.ok(
        text.endsWith("\n") && text.indexOf("\n") === text.length - 1,
        `one reply line from ${server} for ${
          JSON.stringify(decoder.decode(request))
        }, got ${JSON.stringify(text)}`,
      );
      const parsed = JSON.parse(text);
      assert.equal(typeof parsed.status, "string");
      assert.match(parsed.status, /^error/, text);
    }
  }

  // Both still serve, in both protocols.
  const listed = await seedRequest(tracker.address, { command: "list" });
  assert.deepEqual(
    (listed.filemap as Record<string, string[]>)["still.txt"],
    [peer.address],
  );
  assert.equal(
    decoder.decode(await seedDownload(peer.address, "still.txt")),
    "still here\n",
  );
  await using out = await tempDir();
  const result = await runPeer(
    "download",
    "still.txt",
    "--tracker",
    tracker.address,
    "--out",
    out.path,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(
    await Deno.readTextFile(join(out.path, "still.txt")),
    "still here\n",
  );
});
