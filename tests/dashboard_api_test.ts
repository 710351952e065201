/**
 * Tests of the dashboard's JSON API without a browser: every endpoint with
 * good and bad input, the Host and token checks, and the event stream, over a
 * real tracker and peers on loopback.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startDashboard } from "../lib/dashboard.ts";
import { startPeer } from "../lib/peer_node.ts";
import { startTracker } from "../lib/tracker_server.ts";
import { TrackerClient } from "../lib/tracker_client.ts";

const CHUNK = 64 * 1024;

/** Random bytes of any length (getRandomValues takes 64 KiB at a time). */
function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, Math.min(length, i + 65536)));
  }
  return bytes;
}

/** Polls `probe` until it returns a value, or fails saying `what`. */
async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** A tracker, a seeder holding `big.bin`, and a leecher with a dashboard. */
async function network() {
  const dirs = {
    a: await Deno.makeTempDir({ prefix: "shoal-dash-a-" }),
    b: await Deno.makeTempDir({ prefix: "shoal-dash-b-" }),
  };
  const content = randomBytes(5 * CHUNK + 123);
  await Deno.writeFile(join(dirs.b, "big.bin"), content);
  await Deno.writeTextFile(join(dirs.b, "notes.txt"), "hello from b");
  await Deno.writeTextFile(join(dirs.a, "mine.txt"), "a's own file");
  const tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
  const options = {
    tracker: tracker.address,
    hostname: "127.0.0.1",
    heartbeatIntervalMs: 500,
  };
  const seeder = await startPeer({
    ...options,
    shared: dirs.b,
    chunkSize: CHUNK,
  });
  const leecher = await startPeer({ ...options, shared: dirs.a });
  // Both register with their files at start; wait until the tracker has them.
  await waitFor(
    "both peers to be listed",
    async () => (await leecher.list()).length === 3 ? true : undefined,
  );
  const dashboard = await startDashboard(leecher, { port: 0 });
  const base = dashboard.url.slice(0, -1);
  const token = (await (await fetch(`${base}/api/session`)).json()).token;
  return {
    dirs,
    content,
    tracker,
    seeder,
    leecher,
    dashboard,
    base,
    token: String(token),
    async [Symbol.asyncDispose]() {
      await dashboard.close();
      await leecher.close();
      await seeder.close();
      await tracker.close();
      await Deno.remove(dirs.a, { recursive: true });
      await Deno.remove(dirs.b, { recursive: true });
    },
  };
}

/** Fetches and parses a JSON reply, returning status and body. */
async function call(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, init);
  const text = await response.text();
  return { status: response.status, body: JSON.parse(text) };
}

/** Sends a raw HTTP/1.1 request (any Host header) and returns status and body. */
async function rawRequest(
  port: number,
  head: string,
): Promise<{ status: number; body: string }> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(head));
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(65536);
  for (
    let n = await conn.read(buffer);
    n !== null;
    n = await conn.read(buffer)
  ) {
    chunks.push(buffer.slice(0, n));
  }
  const text = new TextDecoder().decode(
    new Uint8Array(chunks.flatMap((c) => [...c])),
  );
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
  return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
}

Deno.test("Dashboard page carries the session token and serves only its own assets", async () => {
  await using net = await network();
  const page = await fetch(`${net.base}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type")!, /^text\/html/);
  assert.match(
    page.headers.get("content-security-policy")!,
    /default-src 'none'/,
  );
  const html = await page.text();
  assert.ok(html.includes(`content="${net.token}"`), "token missing from page");
  assert.match(net.token, /^[0-9a-f]{64}$/);

  const script = await fetch(`${net.base}/app.js`);
  assert.match(script.headers.get("content-type")!, /^text\/javascript/);
  assert.ok((await script.text()).includes("EventSource"));
  const css = await fetch(`${net.base}/style.css`);
  assert.match(css.headers.get("content-type")!, /^text\/css/);
  await css.body?.cancel();

  for (
    const path of ["/web/app.js", "/%2e%2e/deno.json", "/app.js/", "/.shoal"]
  ) {
    const { status, body } = await call(`${net.base}${path}`);
    assert.equal(status, 404, path);
    assert.match(String(body.error), /^Nothing at /);
  }
  const traversal = await rawRequest(
    net.dashboard.port,
    `GET /../deno.json HTTP/1.1\r\nHost: 127.0.0.1:${net.dashboard.port}\r\nConnection: close\r\n\r\n`,
  );
  assert.notEqual(traversal.status, 200);
  assert.ok(
    !traversal.body.includes('"imports"'),
    "served a file outside web/",
  );
});

Deno.test("Dashboard refuses requests whose Host header names another host", async () => {
  await using net = await network();
  const port = net.dashboard.port;
  const get = (host: string) =>
    rawRequest(
      port,
      `GET /api/status HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
    );
  const foreign = await get(`evil.example:${port}`);
  assert.equal(foreign.status, 403);
  assert.match(
    JSON.parse(foreign.body).error,
    /^Refused Host "evil\.example:\d+"/,
  );
  assert.equal((await get(`127.0.0.1:${port + 1}`)).status, 403);
  assert.equal((await get("127.0.0.1")).status, 403);
  assert.equal((await get(`localhost:${port}`)).status, 200);
  assert.equal((await get(`127.0.0.1:${port}`)).status, 200);
  const page = await rawRequest(
    port,
    `GET / HTTP/1.1\r\nHost: rebind.example:${port}\r\nConnection: close\r\n\r\n`,
  );
  assert.equal(page.status, 403);
  assert.ok(
    !page.body.includes(net.token),
    "leaked the token to a foreign host",
  );
});

Deno.test("GET /api/status reports the peer and a connected tracker", async () => {
  await using net = await network();
  const { status, body } = await call(`${net.base}/api/status`);
  assert.equal(status, 200);
  assert.equal(body.port, net.leecher.port);
  assert.equal(body.tracker, "connected");
  assert.equal(body.trackerError, null);
  assert.equal(body.shared, 1);
  assert.match(String(body.address), /^127\.0\.0\.1:\d+$/);
  assert.deepEqual(body.uploads, []);
  const post = await fetch(`${net.base}/api/status`, {
    method: "POST",
    headers: { "x-shoal-token": net.token },
  });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET");
  assert.match(
    (await post.json()).error,
    /^Cannot POST \/api\/status: use GET/,
  );
});

Deno.test("GET /api/files lists the network, filters by query and bounds the query", async () => {
  await using net = await network();
  const all = await call(`${net.base}/api/files`);
  assert.equal(all.status, 200);
  const files = all.body.files as {
    name: string;
    size: number;
    holders: number;
    id: string;
  }[];
  assert.deepEqual(files.map((f) => f.name).sort(), [
    "big.bin",
    "mine.txt",
    "notes.txt",
  ]);
  const big = files.find((f) => f.name === "big.bin")!;
  assert.equal(big.size, net.content.length);
  assert.equal(big.holders, 1);
  assert.match(big.id, /^[0-9a-f]{64}$/);

  const some = await call(`${net.base}/api/files?query=*.txt`);
  assert.deepEqual(
    (some.body.files as { name: string }[]).map((f) => f.name).sort(),
    ["mine.txt", "notes.txt"],
  );
  const none = await call(`${net.base}/api/files?query=nothing-like-this`);
  assert.deepEqual(none.body.files, []);

  const long = await call(`${net.base}/api/files?query=${"x".repeat(257)}`);
  assert.equal(long.status, 400);
  assert.match(String(long.body.error), /query is 257 characters/);
});

Deno.test("GET /api/shared lists this peer's files without their paths", async () => {
  await using net = await network();
  const { status, body } = await call(`${net.base}/api/shared`);
  assert.equal(status, 200);
  const files = body.files as Record<string, unknown>[];
  assert.equal(files.length, 1);
  assert.equal(files[0]!.name, "mine.txt");
  assert.equal(files[0]!.size, 12);
  assert.equal(files[0]!.chunks, 1);
  assert.ok(!("path" in files[0]!), "leaked an absolute path");
  assert.ok(!JSON.stringify(body).includes(net.dirs.a), "leaked the directory");
});

Deno.test("GET /api/peers finds holders by name or id and rejects bad targets", async () => {
  await using net = await network();
  const byName = await call(`${net.base}/api/peers?target=big.bin`);
  assert.equal(byName.status, 200);
  const holders = byName.body.peers as { address: string; id: string }[];
  assert.equal(holders.length, 1);
  assert.equal(holders[0]!.address, `127.0.0.1:${net.seeder.port}`);
  const byId = await call(`${net.base}/api/peers?target=${holders[0]!.id}`);
  assert.equal((byId.body.peers as unknown[]).length, 1);

  for (const bad of ["..%2Fetc%2Fpasswd", "", "%00x", "a".repeat(2000)]) {
    const { status, body } = await call(`${net.base}/api/peers?target=${bad}`);
    assert.equal(status, 400, bad);
    assert.match(
      String(body.error),
      /^Cannot look up holders: Cannot accept name/,
    );
  }

  const known = await call(`${net.base}/api/peers`);
  assert.equal(known.status, 200);
  const peers = known.body.peers as { address: string; files: number }[];
  assert.deepEqual(
    peers.map((p) => [p.address, p.files]),
    [
      [`127.0.0.1:${net.seeder.port}`, 2],
      [`127.0.0.1:${net.leecher.port}`, 1],
    ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
  );
});

Deno.test("POST /api/downloads needs the token and a valid target, then downloads byte-exact", async () => {
  await using net = await network();
  const post = (body: string, headers: Record<string, string> = {}) =>
    call(`${net.base}/api/downloads`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-shoal-token": net.token,
        ...headers,
      },
      body,
    });
  const noToken = await post('{"target":"big.bin"}', { "x-shoal-token": "" });
  assert.equal(noToken.status, 403);
  assert.match(String(noToken.body.error), /session token/);
  const wrongToken = await post('{"target":"big.bin"}', {
    "x-shoal-token": "0".repeat(64),
  });
  assert.equal(wrongToken.status, 403);
  const foreign = await post('{"target":"big.bin"}', {
    origin: "http://evil.example",
  });
  assert.equal(foreign.status, 403);
  assert.match(String(foreign.body.error), /origin "http:\/\/evil\.example"/);

  const cases: [string, Record<string, string>, number, RegExp][] = [
    ['{"target":"../../etc/passwd"}', {}, 400, /Cannot accept name/],
    ['{"target":"/etc/passwd"}', {}, 400, /Cannot accept name/],
    ['{"target":42}', {}, 400, /expected a string, got number/],
    ["{}", {}, 400, /expected a string, got undefined/],
    ["null", {}, 400, /expected a string/],
    ["{not json", {}, 400, /not JSON/],
    [
      '{"target":"big.bin"}',
      { "content-type": "text/plain" },
      415,
      /application\/json/,
    ],
    [JSON.stringify({ target: "x".repeat(5000) }), {}, 413, /4096-byte limit/],
  ];
  for (const [body, headers, status, message] of cases) {
    const reply = await post(body, headers);
    assert.equal(reply.status, status, body.slice(0, 40));
    assert.match(String(reply.body.error), message);
  }
  const missing = await post('{"target":"no-such-file.bin"}');
  assert.equal(missing.status, 202);

  const started = await post('{"target":"big.bin"}');
  assert.equal(started.status, 202);
  const key = (started.body.download as { key: string }).key;
  const done = await waitFor("the download to finish", async () => {
    const { body } = await call(`${net.base}/api/downloads`);
    const found = (body.downloads as { key: string; state: string }[])
      .find((d) => d.key === key);
    return found?.state === "done" ? found : undefined;
  });
  assert.equal(
    (done as unknown as { bytes: number }).bytes,
    net.content.length,
  );
  assert.deepEqual(
    await Deno.readFile(join(net.dirs.a, "big.bin")),
    net.content,
  );
  const failed = await waitFor("the missing file to fail", async () => {
    const { body } = await call(`${net.base}/api/downloads`);
    return (body.downloads as {
      state: string;
      error: string;
      target: string;
    }[])
      .find((d) => d.target === "no-such-file.bin" && d.state === "failed");
  });
  assert.match(failed.error, /^Cannot download no-such-file\.bin: /);
  assert.ok(!failed.error.includes("\n    at "), "a stack trace leaked");
});

Deno.test("DELETE /api/downloads/:key cancels a running download, then removes it", async () => {
  await using net = await network();
  // A holder that accepts connections and never answers keeps the download
  // waiting until it is cancelled.
  using silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn);
  })().catch(() => {});
  const stuckId = "ab".repeat(32);
  await new TrackerClient(net.tracker.address).register(silent.addr.port, [
    { name: "stuck.bin", id: stuckId, size: 10 * CHUNK },
  ]);
  const started = await call(`${net.base}/api/downloads`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-shoal-token": net.token },
    body: JSON.stringify({ target: stuckId }),
  });
  assert.equal(started.status, 202);
  const key = (started.body.download as { key: string }).key;
  const again = await call(`${net.base}/api/downloads`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-shoal-token": net.token },
    body: JSON.stringify({ target: stuckId }),
  });
  assert.equal(again.status, 409);
  assert.match(String(again.body.error), /already running/);
  await waitFor(
    "the silent holder to be contacted",
    () => held.length > 0 ? true : undefined,
  );

  const del = (k: string, token = net.token) =>
    call(`${net.base}/api/downloads/${k}`, {
      method: "DELETE",
      headers: { "x-shoal-token": token },
    });
  assert.equal((await del(key, "nope")).status, 403);
  const cancelled = await del(key);
  assert.equal(cancelled.status, 200);
  assert.equal(
    (cancelled.body.download as { state: string }).state,
    "cancelled",
  );
  const listed = await call(`${net.base}/api/downloads`);
  assert.equal(
    (listed.body.downloads as { key: string; state: string }[])
      .find((d) => d.key === key)?.state,
    "cancelled",
  );
  // Once the transfer has wound down, a second DELETE removes the entry.
  for (const conn of held.splice(0)) conn.close();
  await waitFor("the cancelled transfer to wind down", async () => {
    const { body } = await call(`${net.base}/api/downloads`);
    return (body.downloads as { key: string; finishedAt: number | null }[])
      .find((d) => d.key === key && d.finishedAt !== null);
  });
  assert.equal((await del(key)).status, 200);
  const gone = await del(key);
  assert.equal(gone.status, 404);
  assert.match(String(gone.body.error), /there is none/);
  const get = await call(`${net.base}/api/downloads/${key}`);
  assert.equal(get.status, 405);
  const garbled = await del("%E0%A4%A");
  assert.equal(garbled.status, 400);
  assert.match(String(garbled.body.error), /bad key encoding/);

  silent.close();
  await accepting;
  for (const conn of held) conn.close();
});

Deno.test("GET /api/events streams live state, including a finished download", async () => {
  await using net = await network();
  const response = await fetch(`${net.base}/api/events`);
  assert.match(response.headers.get("content-type")!, /^text\/event-stream/);
  const reader = response.body!.pipeThrough(new TextDecoderStream())
    .getReader();
  let buffered = "";
  const nextState = async (): Promise<Record<string, unknown>> => {
    while (true) {
      const match = /event: state\ndata: (.*)\n\n/.exec(buffered);
      if (match) {
        buffered = buffered.slice(match.index + match[0].length);
        return JSON.parse(match[1]!);
      }
      const { value, done } = await reader.read();
      if (done) throw new Error("Event stream ended early");
      buffered += value;
    }
  };
  const first = await nextState();
  assert.equal((first.status as { tracker: string }).tracker, "connected");
  assert.deepEqual(first.downloads, []);
  await call(`${net.base}/api/downloads`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-shoal-token": net.token },
    body: '{"target":"big.bin"}',
  });
  const deadline = Date.now() + 10_000;
  let finished = false;
  while (!finished && Date.now() < deadline) {
    const state = await nextState();
    const downloads = state.downloads as {
      name: string;
      state: string;
      bytes: number;
    }[];
    finished = downloads.some((d) =>
      d.name === "big.bin" && d.state === "done" &&
      d.bytes === net.content.length
    );
  }
  assert.ok(finished, "no event showed the download done");
  await reader.cancel();
});

Deno.test("Dashboard of a peer whose tracker is down says so in readable errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-dash-down-" });
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = closed.addr.port;
  closed.close();
  await using peer = await startPeer({
    tracker: `127.0.0.1:${deadPort}`,
    shared: dir,
    hostname: "127.0.0.1",
  });
  await using dashboard = await startDashboard(peer);
  const base = dashboard.url.slice(0, -1);
  const status = await waitFor(
    "the tracker to be reported unreachable",
    async () => {
      const { body } = await call(`${base}/api/status`);
      return body.tracker === "unreachable" ? body : undefined;
    },
  );
  assert.equal(typeof status.trackerError, "string");
  const files = await call(`${base}/api/files`);
  assert.equal(files.status, 502);
  assert.match(
    String(files.body.error),
    /^Cannot list files: the tracker is unreachable/,
  );
  assert.ok(!String(files.body.error).includes("\n"));
  const peers = await call(`${base}/api/peers?target=a.txt`);
  assert.equal(peers.status, 502);
  await dashboard.close();
  await peer.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("Peer CLI serves the dashboard with --http-port in daemon mode", async () => {
  await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
  const dir = await Deno.makeTempDir({ prefix: "shoal-dash-cli-" });
  await Deno.writeTextFile(join(dir, "cli.txt"), "from the cli");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      new URL("../peer.ts", import.meta.url).pathname,
      "--daemon",
      "--tracker",
      tracker.address,
      "--shared",
      dir,
      "--host",
      "127.0.0.1",
      "--http-port",
      "0",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  let url: string | undefined;
  const deadline = Date.now() + 20_000;
  while (url === undefined && Date.now() < deadline) {
    const { value, done } = await lines.read();
    if (done) break;
    out += value;
    url = /Dashboard on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out)?.[1];
  }
  try {
    assert.ok(url, `no "Dashboard on" line in: ${out}`);
    const shared = await waitFor("the CLI peer's shared file", async () => {
      const { body } = await call(`${url}api/shared`);
      const files = body.files as { name: string }[];
      return files.length ? files : undefined;
    });
    assert.equal(shared[0]!.name, "cli.txt");
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await lines.cancel();
    await child.stderr.cancel();
    await Deno.remove(dir, { recursive: true });
  }
});
