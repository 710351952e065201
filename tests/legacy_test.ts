/**
 * Unit tests of the seed protocol helpers: request validation, line encoding,
 * and bounded line reading over real loopback sockets.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  DOWNLOAD_HEADER_BYTES,
  encodeDownloadHeader,
  encodeLine,
  legacyDownload,
  MAX_LEGACY_FILES,
  readLine,
  validateLegacyRequest,
} from "../lib/protocol/legacy.ts";
import { TimeoutError } from "../lib/errors.ts";
import { ProtocolError } from "../lib/net/wire.ts";

function assertRefused(value: unknown, pattern: RegExp): void {
  assert.throws(() => validateLegacyRequest(value), (error: unknown) => {
    assert.ok(
      error instanceof ProtocolError,
      `${JSON.stringify(value)}: expected a ProtocolError, got ${error}`,
    );
    assert.match(error.message, pattern);
    return true;
  }, JSON.stringify(value)?.slice(0, 100));
}

Deno.test("validateLegacyRequest accepts every seed command", () => {
  assert.deepEqual(
    validateLegacyRequest({
      command: "register",
      address: "127.0.0.1:10001",
      files: ["a.txt", "docs/b.txt"],
    }),
    {
      command: "register",
      address: "127.0.0.1:10001",
      files: ["a.txt", "docs/b.txt"],
    },
  );
  assert.deepEqual(
    validateLegacyRequest({ command: "heartbeat", address: "host:1" }),
    { command: "heartbeat", address: "host:1" },
  );
  assert.deepEqual(
    validateLegacyRequest({
      command: "heartbeat",
      address: "host:1",
      files: [],
    }),
    { command: "heartbeat", address: "host:1", files: [] },
  );
  assert.deepEqual(validateLegacyRequest({ command: "list" }), {
    command: "list",
  });
  assert.deepEqual(
    validateLegacyRequest({ command: "getpeers", filename: "a.txt" }),
    { command: "getpeers", filename: "a.txt" },
  );
  assert.deepEqual(
    validateLegacyRequest({ command: "download", filename: "d/e.bin" }),
    { command: "download", filename: "d/e.bin" },
  );
});

Deno.test("validateLegacyRequest refuses non-objects and unknown commands", () => {
  for (const value of [null, [], "list", 1, false]) {
    assertRefused(value, /not a JSON object/);
  }
  assertRefused({}, /unknown command undefined/);
  assertRefused({ command: "LIST" }, /unknown command "LIST"/);
  assertRefused({ command: 1 }, /unknown command 1/);
  assertRefused({ type: "list" }, /unknown command/);
  // A huge command is cut short in the message.
  assert.throws(
    () => validateLegacyRequest({ command: "x".repeat(10_000) }),
    (error: unknown) =>
      error instanceof ProtocolError && error.message.length < 200,
  );
});

Deno.test("validateLegacyRequest refuses bad addresses", () => {
  for (
    const address of [
      undefined,
      10001,
      "127.0.0.1",
      "127.0.0.1:",
      "host:123456",
      "h".repeat(300) + ":1",
    ]
  ) {
    assertRefused(
      { command: "register", address, files: [] },
      /"address" is not host:port/,
    );
    assertRefused({ command: "heartbeat", address }, /"address"/);
  }
});

Deno.test("validateLegacyRequest refuses bad file lists and file names", () => {
  const base = { command: "register", address: "127.0.0.1:1" };
  assertRefused(base, /"files" is not a list/);
  assertRefused({ ...base, files: "a.txt" }, /"files" is not a list/);
  assertRefused(
    { ...base, files: Array(MAX_LEGACY_FILES + 1).fill("a") },
    /at most 10000 names/,
  );
  assertRefused({ ...base, files: ["ok.txt", "../bad"] }, /".." segment/);
  assertRefused({ ...base, files: [7] }, /expected a string/);
  assertRefused(
    { command: "heartbeat", address: "h:1", files: null },
    /"files" is not a list/,
  );
  assertRefused({ command: "getpeers" }, /expected a string/);
  assertRefused({ command: "download", filename: "/etc/passwd" }, /absolute/);
  assertRefused({ command: "download", filename: "C:\\x" }, /backslash|drive/);
});

Deno.test("encodeLine writes one JSON object and a newline", () => {
  const bytes = encodeLine({ status: "ok", text: "a\nb" });
  const text = new TextDecoder().decode(bytes);
  assert.ok(text.endsWith("\n"));
  assert.equal(text.indexOf("\n"), text.length - 1, "newline inside the line");
  assert.deepEqual(JSON.parse(text), { status: "ok", text: "a\nb" });
});

/** A connected pair of loopback sockets, both closed on dispose. */
async function socketPair(): Promise<
  { client: Deno.TcpConn; server: Deno.TcpConn } & AsyncDisposable
> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const client = await Deno.connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
  });
  const server = await accepted;
  const closeQuietly = (conn: Deno.Conn) => {
    try {
      conn.close();
    } catch { /* already closed by the code under test */ }
  };
  return {
    client,
    server,
    [Symbol.asyncDispose]: () => {
      closeQuietly(client);
      closeQuietly(server);
      return Promise.resolve();
    },
  };
}

const encoder = new TextEncoder();

Deno.test("readLine joins a line split across writes and returns the bytes after it", async () => {
  await using pair = await socketPair();
  const reading = readLine(pair.server, encoder.encode('{"comm'), 1024, 5000);
  await pair.client.write(encoder.encode('and":"list"'));
  await pair.client.write(encoder.encode("}\nRAW"));
  const { line, rest } = await reading;
  assert.equal(line, '{"command":"list"}');
  assert.deepEqual(rest, encoder.encode("RAW"));
});

Deno.test("readLine returns a line found entirely in the prefix without reading", async () => {
  await using pair = await socketPair();
  const { line, rest } = await readLine(
    pair.server,
    encoder.encode('{"a":1}\n\x00\x01'),
    1024,
    5000,
  );
  assert.equal(line, '{"a":1}');
  assert.deepEqual(rest, new Uint8Array([0, 1]));
});

Deno.test("readLine accepts a line of exactly the limit and refuses one byte more", async () => {
  {
    await using pair = await socketPair();
    const reading = readLine(pair.server, new Uint8Array(), 100, 5000);
    await pair.client.write(encoder.encode("x".repeat(100) + "\n"));
    assert.equal((await reading).line, "x".repeat(100));
  }
  {
    await using pair = await socketPair();
    const reading = readLine(pair.server, new Uint8Array(), 100, 5000);
    await pair.client.write(encoder.encode("x".repeat(101) + "\n"));
    await assert.rejects(
      reading,
      (error: unknown) =>
        error instanceof ProtocolError &&
        /exceeds the 100-byte limit/.test(error.message),
    );
  }
});

Deno.test("readLine grows its buffer for a long line sent in pieces, and refuses a prefix already past the limit", async () => {
  {
    await using pair = await socketPair();
    const long = "y".repeat(300 * 1024);
    const reading = readLine(
      pair.server,
      encoder.encode("{"),
      1024 * 1024,
      5000,
    );
    for (let at = 0; at < long.length; at += 7000) {
      await pair.client.write(encoder.encode(long.slice(at, at + 7000)));
    }
    await pair.client.write(encoder.encode("}\nnext"));
    const { line, rest } = await reading;
    assert.equal(line, `{${long}}`);
    assert.deepEqual(rest, encoder.encode("next"));
  }
  {
    await using pair = await socketPair();
    await assert.rejects(
      readLine(pair.server, encoder.encode("z".repeat(200)), 100, 5000),
      /exceeds the 100-byte limit/,
    );
  }
});

Deno.test("readLine stops reading an endless line at the limit", async () => {
  await using pair = await socketPair();
  const reading = readLine(pair.server, new Uint8Array(), 64 * 1024, 5000);
  // Keep sending without a newline; the reader must give up at the limit,
  // not buffer everything.
  const junk = new Uint8Array(16 * 1024).fill(0x61);
  const writing = (async () => {
    try {
      for (let i = 0; i < 64; i++) await pair.client.write(junk);
    } catch { /* the reader gave up and the socket closed */ }
  })();
  await assert.rejects(reading, /exceeds the 65536-byte limit/);
  pair.server.close();
  await writing;
});

Deno.test("readLine refuses a line that is not UTF-8", async () => {
  await using pair = await socketPair();
  const reading = readLine(pair.server, new Uint8Array(), 1024, 5000);
  await pair.client.write(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d, 0x0a]));
  await assert.rejects(
    reading,
    (error: unknown) =>
      error instanceof ProtocolError && /not valid UTF-8/.test(error.message),
  );
});

Deno.test("readLine reports a connection that ends before a newline", async () => {
  await using pair = await socketPair();
  const reading = readLine(pair.server, new Uint8Array(), 1024, 5000);
  await pair.client.write(encoder.encode('{"command":"li'));
  pair.client.close();
  await assert.rejects(
    reading,
    (error: unknown) =>
      error instanceof ProtocolError &&
      /ended before a newline/.test(error.message),
  );
});

Deno.test("readLine times out when no newline arrives", async () => {
  await using pair = await socketPair();
  await pair.client.write(encoder.encode('{"slow":'));
  const started = performance.now();
  await assert.rejects(
    readLine(pair.server, new Uint8Array(), 1024, 100),
    TimeoutError,
  );
  assert.ok(performance.now() - started < 3000, "timeout took far too long");
});

/**
 * Serves one seed-protocol connection with a canned reply line, after reading
 * the request line.
 */
function cannedSeedPeer(reply: string): { address: string } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await listener.accept();
    try {
      await readLine(conn, new Uint8Array(), 1024, 5000);
      await conn.write(encoder.encode(reply));
    } finally {
      conn.close();
    }
  })();
  return {
    address: `127.0.0.1:${listener.addr.port}`,
    async [Symbol.asyncDispose]() {
      listener.close();
      await served;
    },
  };
}

Deno.test("legacyDownload refuses hostile status and size fields with a ProtocolError", async () => {
  const replies = [
    '{"status":{"toString":1,"valueOf":1}}\n',
    '{"status":"ok","size":{"toString":null,"valueOf":null}}\n',
    '{"status":"ok","size":-1}\n',
    '{"status":"error: no such file"}\n',
  ];
  const path = await Deno.makeTempFile({ prefix: "shoal_legacy_" });
  try {
    for (const reply of replies) {
      await using peer = cannedSeedPeer(reply);
      using file = await Deno.open(path, { write: true, truncate: true });
      await assert.rejects(
        legacyDownload(peer.address, "a.txt", file, { timeoutMs: 5000 }),
        ProtocolError,
        reply,
      );
    }
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("legacyDownload writes exactly the announced bytes", async () => {
  await using peer = cannedSeedPeer('{"status":"ok","size":5}\nhello');
  const path = await Deno.makeTempFile({ prefix: "shoal_legacy_" });
  try {
    using file = await Deno.open(path, { write: true, truncate: true });
    assert.equal(await legacyDownload(peer.address, "a.txt", file), 5);
    assert.equal(await Deno.readTextFile(path), "hello");
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("A download's ok line fills the first 512-byte read of the Go client's JSON decoder", () => {
  for (const size of [0, 150_000, Number.MAX_SAFE_INTEGER]) {
    const line = encodeDownloadHeader(size);
    assert.equal(line.length, DOWNLOAD_HEADER_BYTES);
    assert.equal(line.at(-1), 10);
    // Leading spaces are JSON whitespace: any seed client parses it.
    const text = new TextDecoder().decode(line);
    assert.deepEqual(JSON.parse(text), { status: "ok", size });
    assert.equal(text.trim().indexOf("\n"), -1);
  }
});
