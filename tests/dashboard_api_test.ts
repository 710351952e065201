/**
 * Tests of the dashboard's JSON API without a browser: every endpoint with
 * good and bad input, the Host and token checks, the event stream, and the
 * bounds on tracker lookups, request bodies and slow event clients, over a
 * real tracker and peers on loopback.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startDashboard } from "../lib/dashboard/dashboard.ts";
import { EventHub } from "../lib/dashboard/_events.ts";
import {
  CELL_EARLIER,
  CELL_OTHER,
  foldMap,
  MAX_CELLS,
  pageSwarm,
} from "../lib/dashboard/_swarm.ts";
import { startPeer } from "../lib/peer/node.ts";
import { startTracker } from "../lib/tracker/server.ts";
import { TrackerClient } from "../lib/tracker/client.ts";

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
  const token = dashboard.token;
  return {
    dirs,
    content,
    tracker,
    seeder,
    leecher,
    dashboard,
    base,
    token,
    /** Calls the API at `path` with the token (unless `init` sets another). */
    call: (path: string, init: RequestInit = {}) =>
      fetchJson(`${base}${path}`, withToken(token, init)),
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

/** `init` with the dashboard token in its headers, unless it sets one. */
function withToken(token: string, init: RequestInit = {}): RequestInit {
  const headers = new Headers(init.headers);
  if (!headers.has("x-shoal-token")) headers.set("x-shoal-token", token);
  return { ...init, headers };
}

/** Fetches and parses a JSON reply, returning status and body. */
async function fetchJson(
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

Deno.test("Dashboard page holds no token and serves only its own assets", async () => {
  await using net = await network();
  const page = await fetch(`${net.base}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type")!, /^text\/html/);
  assert.match(
    page.headers.get("content-security-policy")!,
    /default-src 'none'/,
  );
  const html = await page.text();
  assert.ok(!html.includes(net.token), "the page hands out the token");
  assert.match(net.token, /^[0-9a-f]{64}$/);
  assert.equal(
    net.dashboard.pageUrl,
    `${net.dashboard.url}#token=${net.token}`,
  );

  const script = await fetch(`${net.base}/app.js`);
  assert.match(script.headers.get("content-type")!, /^text\/javascript/);
  const code = await script.text();
  assert.ok(code.includes("/api/events") && !code.includes(net.token));
  const css = await fetch(`${net.base}/style.css`);
  assert.match(css.headers.get("content-type")!, /^text\/css/);
  await css.body?.cancel();

  for (
    const path of ["/web/app.js", "/%2e%2e/deno.json", "/app.js/", "/.shoal"]
  ) {
    const { status, body } = await fetchJson(`${net.base}${path}`);
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
      `GET /api/status HTTP/1.1\r\nHost: ${host}\r\nx-shoal-token: ${net.token}\r\nConnection: close\r\n\r\n`,
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
  const { status, body } = await net.call(`/api/status`);
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
  const all = await net.call(`/api/files`);
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

  const some = await net.call(`/api/files?query=*.txt`);
  assert.deepEqual(
    (some.body.files as { name: string }[]).map((f) => f.name).sort(),
    ["mine.txt", "notes.txt"],
  );
  const none = await net.call(`/api/files?query=nothing-like-this`);
  assert.deepEqual(none.body.files, []);

  const long = await net.call(`/api/files?query=${"x".repeat(257)}`);
  assert.equal(long.status, 400);
  assert.match(String(long.body.error), /query is 257 characters/);
});

Deno.test("GET /api/shared lists this peer's files without their paths", async () => {
  await using net = await network();
  const { status, body } = await net.call(`/api/shared`);
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
  const byName = await net.call(`/api/peers?target=big.bin`);
  assert.equal(byName.status, 200);
  const holders = byName.body.peers as { address: string; id: string }[];
  assert.equal(holders.length, 1);
  assert.equal(holders[0]!.address, `127.0.0.1:${net.seeder.port}`);
  const byId = await net.call(`/api/peers?target=${holders[0]!.id}`);
  assert.equal((byId.body.peers as unknown[]).length, 1);

  for (const bad of ["..%2Fetc%2Fpasswd", "", "%00x", "a".repeat(2000)]) {
    const { status, body } = await net.call(`/api/peers?target=${bad}`);
    assert.equal(status, 400, bad);
    assert.match(
      String(body.error),
      /^Cannot look up holders: Cannot accept name/,
    );
  }

  const known = await net.call(`/api/peers`);
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
    net.call(`/api/downloads`, {
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
  assert.match(String(noToken.body.error), /without the dashboard token/);
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
    const { body } = await net.call(`/api/downloads`);
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
    const { body } = await net.call(`/api/downloads`);
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
  const started = await net.call(`/api/downloads`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-shoal-token": net.token },
    body: JSON.stringify({ target: stuckId }),
  });
  assert.equal(started.status, 202);
  const key = (started.body.download as { key: string }).key;
  const again = await net.call(`/api/downloads`, {
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
    net.call(`/api/downloads/${k}`, {
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
  const listed = await net.call(`/api/downloads`);
  assert.equal(
    (listed.body.downloads as { key: string; state: string }[])
      .find((d) => d.key === key)?.state,
    "cancelled",
  );
  // Once the transfer has wound down, a second DELETE removes the entry.
  for (const conn of held.splice(0)) conn.close();
  await waitFor("the cancelled transfer to wind down", async () => {
    const { body } = await net.call(`/api/downloads`);
    return (body.downloads as { key: string; finishedAt: number | null }[])
      .find((d) => d.key === key && d.finishedAt !== null);
  });
  assert.equal((await del(key)).status, 200);
  const gone = await del(key);
  assert.equal(gone.status, 404);
  assert.match(String(gone.body.error), /there is none/);
  const get = await net.call(`/api/downloads/${key}`);
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
  const response = await fetch(
    `${net.base}/api/events`,
    withToken(net.token),
  );
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
  await net.call(`/api/downloads`, {
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
  const call = (url: string) => fetchJson(url, withToken(dashboard.token));
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

Deno.test("Peer CLI prints the dashboard address with the --http-token it was given", async () => {
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
      "--no-secret",
      "--tracker",
      tracker.address,
      "--shared",
      dir,
      "--host",
      "127.0.0.1",
      "--http-port",
      "0",
      "--http-token",
      "cli-chosen-token-1234",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  let url: string | undefined;
  // A peer that never prints the line must not hang the test.
  const deadline = setTimeout(() => lines.cancel(), 20_000);
  while (url === undefined) {
    const { value, done } = await lines.read();
    if (done) break;
    out += value;
    url = /Dashboard on (http:\/\/127\.0\.0\.1:\d+\/)#token=(\S+)\n/
      .exec(out)?.slice(1).join("#");
  }
  clearTimeout(deadline);
  try {
    assert.ok(url, `no "Dashboard on …#token=…" line in: ${out}`);
    const [base, token] = url.split("#");
    assert.equal(token, "cli-chosen-token-1234");
    assert.equal((await fetchJson(`${base}api/shared`)).status, 403);
    const shared = await waitFor("the CLI peer's shared file", async () => {
      const { body } = await fetchJson(
        `${base}api/shared`,
        withToken(token!),
      );
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

// --- hardening: the token, the tracker budget, bodies, event streams -------

/** Reads an HTTP reply's head from `conn`, or "" if none came in `ms`. */
async function readHead(conn: Deno.Conn, ms: number): Promise<string> {
  const timer = setTimeout(() => conn.close(), ms);
  const buffer = new Uint8Array(4096);
  let text = "";
  try {
    while (!text.includes("\r\n\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
  } catch {
    // Closed at the deadline, or reset by the server after its reply.
  } finally {
    clearTimeout(timer);
  }
  return text;
}

/**
 * A reader of `stream` whose `until(quietMs, wanted)` gives what arrives
 * until the stream is quiet for `quietMs`, ends, or what came matches
 * `wanted`; a read still pending then is kept for the next call.
 */
function quietReader(stream: ReadableStream<Uint8Array>) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let pending: Promise<ReadableStreamReadResult<string>> | undefined;
  return {
    async until(quietMs: number, wanted?: RegExp): Promise<string> {
      let text = "";
      while (!wanted?.test(text)) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const quiet = new Promise<"quiet">((resolve) =>
          timer = setTimeout(() => resolve("quiet"), quietMs)
        );
        pending ??= reader.read();
        const next = await Promise.race([pending, quiet]);
        clearTimeout(timer);
        if (next === "quiet") return text;
        pending = undefined;
        if (next.done) return text;
        text += next.value;
      }
      return text;
    },
    /** Whether the stream ends (after what is left). */
    async ends(): Promise<boolean> {
      for (;;) {
        const next = await (pending ?? reader.read());
        pending = undefined;
        if (next.done) return true;
      }
    },
  };
}

Deno.test("Dashboard API needs the token on every request, reading ones too, and never hands it out", async () => {
  await using net = await network();
  // What a page on another site (or another local process) can send.
  const strangers: Record<string, string>[] = [
    {},
    { origin: "http://evil.example", "sec-fetch-site": "cross-site" },
    { "x-shoal-token": "0".repeat(64) },
    { "x-shoal-token": net.token.slice(0, -1) },
    { "x-shoal-token": `${net.token}0` },
  ];
  const paths = [
    "/api/peers",
    "/api/peers?target=big.bin",
    "/api/files",
    "/api/status",
    "/api/shared",
    "/api/downloads",
    "/api/events",
    "/api/session",
  ];
  for (const path of paths) {
    for (const headers of strangers) {
      const reply = await fetch(`${net.base}${path}`, { headers });
      const text = await reply.text();
      assert.equal(reply.status, 403, `${path} ${JSON.stringify(headers)}`);
      assert.match(
        JSON.parse(text).error,
        /^Refused GET \/api\/\S+ without the dashboard token: open the address the peer printed/,
      );
      assert.ok(!text.includes(net.token), `${path} handed out the token`);
    }
  }
  // The token opens the API; /api/session no longer exists to give it away.
  assert.equal((await net.call("/api/peers")).status, 200);
  assert.equal((await net.call("/api/session")).status, 404);
  for (const path of ["/", "/index.html", "/app.js", "/style.css"]) {
    const text = await (await fetch(`${net.base}${path}`)).text();
    assert.ok(!text.includes(net.token), `${path} holds the token`);
  }
});

Deno.test("Known peers cost a bounded number of tracker calls however often they are asked", async () => {
  await using net = await network();
  // 80 more files, so a known-peers list used to cost 84 tracker calls.
  using holder = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await new TrackerClient(net.tracker.address).register(
    holder.addr.port,
    Array.from({ length: 80 }, (_, i) => ({
      name: `extra/f${String(i).padStart(2, "0")}.bin`,
      id: i.toString(16).padStart(2, "0").repeat(32),
      size: 1000 + i,
    })),
  );
  await waitFor(
    "the extra files to be listed",
    async () => (await net.leecher.list()).length === 83 ? true : undefined,
  );
  // Count the tracker calls a second dashboard on the leecher makes.
  const counts = { calls: 0, inFlight: 0, maxInFlight: 0 };
  const counted = async <T>(call: () => Promise<T>): Promise<T> => {
    counts.calls++;
    counts.maxInFlight = Math.max(counts.maxInFlight, ++counts.inFlight);
    try {
      return await call();
    } finally {
      counts.inFlight--;
    }
  };
  const leecher = net.leecher;
  const spy = new Proxy(leecher, {
    get(target, key) {
      if (key === "list") {
        return (query?: string) => counted(() => target.list(query));
      }
      if (key === "peers") {
        return (what: string) => counted(() => target.peers(what));
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  await using dashboard = await startDashboard(spy, { port: 0 });
  const ask = (path: string) =>
    fetchJson(`${dashboard.url}${path}`, withToken(dashboard.token));

  const first = await Promise.all(
    Array.from({ length: 20 }, () => ask("api/peers")),
  );
  // One list and at most 50 holder lookups for all 20, two at a time.
  assert.ok(counts.calls <= 51, `${counts.calls} tracker calls for 20 asks`);
  assert.ok(counts.maxInFlight <= 2, `${counts.maxInFlight} calls at once`);
  // And every ask got the whole answer: none was cut short by the tracker's
  // rate limit.
  for (const reply of first) {
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.body, first[0]!.body);
  }
  assert.ok(
    (first[0]!.body.peers as { address: string }[]).some((p) =>
      p.address === `127.0.0.1:${holder.addr.port}`
    ),
  );
  const afterSweep = counts.calls;
  for (let i = 0; i < 20; i++) {
    assert.equal((await ask("api/peers")).status, 200);
  }
  assert.equal(counts.calls, afterSweep, "asking again within 10 s called");

  // Holders of one file: one call, however many ask at once.
  const holders = await Promise.all(
    Array.from({ length: 20 }, () => ask("api/peers?target=notes.txt")),
  );
  assert.ok(holders.every((h) => h.status === 200));
  assert.ok(counts.calls <= afterSweep + 1, "holder lookups were repeated");
  assert.ok(counts.maxInFlight <= 2, `${counts.maxInFlight} calls at once`);
});

Deno.test("A JSON body declared over 4 KiB is refused before it is read", async () => {
  await using net = await network();
  const port = net.dashboard.port;
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  // Headers only: a server that waits for the 300 MiB body never answers.
  await conn.write(
    new TextEncoder().encode(
      `POST /api/downloads HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
        `x-shoal-token: ${net.token}\r\ncontent-type: application/json\r\n` +
        `content-length: ${300 * 1024 * 1024}\r\n\r\n`,
    ),
  );
  const head = await readHead(conn, 5000);
  assert.match(head, /^HTTP\/1\.1 413 /, `no 413 within 5 s: ${head}`);
});

Deno.test("A streamed JSON body is refused as soon as it passes 4 KiB", async () => {
  await using net = await network();
  const port = net.dashboard.port;
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const encoder = new TextEncoder();
  await conn.write(
    encoder.encode(
      `POST /api/downloads HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
        `x-shoal-token: ${net.token}\r\ncontent-type: application/json\r\n` +
        `transfer-encoding: chunked\r\n\r\n`,
    ),
  );
  // 64 KiB in 4 KiB chunks and no end: only a limit on reading answers.
  const chunk = encoder.encode(`1000\r\n${" ".repeat(4096)}\r\n`);
  const writing = (async () => {
    for (let i = 0; i < 16; i++) await conn.write(chunk);
  })().catch(() => {}); // The server may reset the connection after its 413.
  const head = await readHead(conn, 5000);
  await writing;
  assert.match(head, /^HTTP\/1\.1 413 /, `no 413 within 5 s: ${head}`);
});

Deno.test("An event stream that does not read holds the latest state, not every change", async () => {
  let n = 0;
  const hub = new EventHub(
    () => JSON.stringify({ n, pad: "x".repeat(1000) }),
    { maxStreams: 1 },
  );
  const response = hub.response();
  for (n = 1; n <= 1000; n++) hub.publish();
  const reader = quietReader(response.body!);
  // Everything queued for it, up to the latest state (then nothing more).
  const text = await reader.until(5000, /"n":1000,.*\n\n/) +
    await reader.until(300);
  const states = [...text.matchAll(/event: state\ndata: (.*)\n\n/g)]
    .map((m) => JSON.parse(m[1]!).n as number);
  assert.ok(states.length <= 2, `${states.length} states were queued`);
  assert.equal(states.at(-1), 1000, "the latest state was not kept");
  assert.ok(text.length < 4 * 1024, `${text.length} characters were queued`);
  // A reading client gets each change.
  n = 2000;
  hub.publish();
  assert.match(await reader.until(5000, /"n":2000/), /"n":2000/);
  // One stream is the limit here; another is refused.
  const another = hub.response();
  assert.equal(another.status, 503);
  assert.match((await another.json()).error, /1 are open/);
  hub.close();
  assert.ok(await reader.ends());
});

Deno.test("A client that stops reading its event stream is dropped and its connection closed", async () => {
  let n = 0;
  const pad = "x".repeat(1024 * 1024);
  const hub = new EventHub(() => `{"n":${n},"pad":"${pad}"}`, {
    stallMs: 300,
  });
  await using server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
    onError: () => new Response(null, { status: 500 }),
  }, () => hub.response());
  using conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  await conn.write(
    new TextEncoder().encode("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
  );
  const opening = new Uint8Array(1024);
  let head = "";
  while (!head.includes("retry: 2000")) {
    const n = await conn.read(opening);
    assert.ok(n !== null, "the event stream did not start");
    head += new TextDecoder().decode(opening.subarray(0, n));
  }
  // 80 states of 1 MiB, 25 ms apart, to a client that reads none of them,
  // until the hub lets the client go.
  for (n = 1; n <= 80 && hub.size !== 0; n++) {
    hub.publish();
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  // Now read: what was queued, then the end of the connection.
  const timer = setTimeout(() => conn.close(), 10_000);
  const buffer = new Uint8Array(1024 * 1024);
  let received = 0;
  let closed = false;
  try {
    for (let r = await conn.read(buffer); r !== null;) {
      received += r;
      r = await conn.read(buffer);
    }
    closed = true;
  } catch (error) {
    closed = error instanceof Deno.errors.ConnectionReset;
  } finally {
    clearTimeout(timer);
  }
  assert.ok(closed, "the connection was still open after 10 s");
  assert.equal(hub.size, 0);
  assert.ok(
    received < 40 * 1024 * 1024,
    `${received} bytes were queued for a client that did not read`,
  );
  hub.close();
});

Deno.test("Dashboard takes a chosen token and refuses a short or unsafe one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-dash-token-" });
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = closed.addr.port;
  closed.close();
  await using peer = await startPeer({
    tracker: `127.0.0.1:${deadPort}`,
    shared: dir,
    hostname: "127.0.0.1",
  });
  const token = "My-own.token_~2026";
  await using dashboard = await startDashboard(peer, { token });
  assert.equal(dashboard.token, token);
  assert.equal(dashboard.pageUrl, `${dashboard.url}#token=${token}`);
  const status = (t: string) =>
    fetch(`${dashboard.url}api/status`, { headers: { "x-shoal-token": t } })
      .then(async (r) => (await r.body?.cancel(), r.status));
  assert.equal(await status(token), 200);
  assert.equal(await status(token.toLowerCase()), 403);
  await assert.rejects(
    startDashboard(peer, { token: "too-short" }),
    (error: Error) =>
      error instanceof RangeError &&
      /9 characters, not 16 to 256/.test(error.message),
  );
  await assert.rejects(
    startDashboard(peer, { token: "has a space in it, 1234" }),
    (error: Error) =>
      error instanceof TypeError && /character " " at 3/.test(error.message),
  );
  await dashboard.close();
  await peer.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("A download from two seeders shows a filled chunk map naming both", async () => {
  const dirs = {
    a: await Deno.makeTempDir({ prefix: "shoal-dash-swarm-a-" }),
    b: await Deno.makeTempDir({ prefix: "shoal-dash-swarm-b-" }),
    c: await Deno.makeTempDir({ prefix: "shoal-dash-swarm-c-" }),
  };
  const content = randomBytes(48 * CHUNK + 77);
  await Deno.writeFile(join(dirs.b, "shared.bin"), content);
  await Deno.writeFile(join(dirs.c, "shared.bin"), content);
  await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
  const options = {
    tracker: tracker.address,
    hostname: "127.0.0.1",
    heartbeatIntervalMs: 500,
    chunkSize: CHUNK,
    // Capped, so neither seeder can hand over the whole file alone at once.
    maxUploadRate: 2 * 1024 * 1024,
  };
  await using seederB = await startPeer({ ...options, shared: dirs.b });
  await using seederC = await startPeer({ ...options, shared: dirs.c });
  await using leecher = await startPeer({
    tracker: tracker.address,
    hostname: "127.0.0.1",
    heartbeatIntervalMs: 500,
    shared: dirs.a,
  });
  await waitFor("both seeders to hold the file", async () => {
    const peers = await leecher.peers("shared.bin");
    return peers.length === 2 ? true : undefined;
  });
  await using dashboard = await startDashboard(leecher, { port: 0 });
  const call = (path: string, init: RequestInit = {}) =>
    fetchJson(
      `${dashboard.url}${path.slice(1)}`,
      withToken(dashboard.token, init),
    );
  const started = await call("/api/downloads", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: '{"target":"shared.bin"}',
  });
  assert.equal(started.status, 202);
  type Swarm = {
    chunks: number;
    cells: number;
    map: string;
    sources: { address: string; bytes: number; rate: number }[];
    uploads: unknown[];
  };
  const done = await waitFor("the download to finish", async () => {
    const { body } = await call("/api/downloads");
    const found = (body.downloads as { state: string; swarm: Swarm | null }[])
      .find((d) => d.state === "done");
    return found;
  }, 20_000);
  const swarm = done.swarm!;
  assert.ok(swarm, "a finished download carries its swarm");
  assert.equal(swarm.chunks, 49);
  assert.equal(swarm.cells, 49);
  const cells = Uint8Array.from(atob(swarm.map), (c) => c.charCodeAt(0));
  assert.equal(cells.length, swarm.cells);
  assert.ok(
    cells.every((c) => c >= 1 && c <= swarm.sources.length),
    `every cell names a source: ${[...cells]}`,
  );
  assert.deepEqual(
    swarm.sources.map((s) => s.address).sort(),
    [`127.0.0.1:${seederB.port}`, `127.0.0.1:${seederC.port}`].sort(),
  );
  assert.equal(
    swarm.sources.reduce((sum, s) => sum + s.bytes, 0),
    content.length,
  );
  // Both colours are on the map.
  assert.deepEqual(new Set(cells), new Set([1, 2]));
  // The event stream carries the same.
  const events = await fetch(
    `${dashboard.url}api/events`,
    withToken(dashboard.token),
  );
  const reader = events.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/\n\n/.test(text.slice(text.indexOf("data: ")))) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  await reader.cancel();
  const state = JSON.parse(/data: (.*)\n/.exec(text)![1]!);
  assert.equal(state.downloads[0].swarm.map, swarm.map);

  await dashboard.close();
  await leecher.close();
  await seederB.close();
  await seederC.close();
  for (const dir of Object.values(dirs)) {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("A swarm view stays bounded for a 131072-chunk file of many sources", () => {
  const chunks = 131072;
  const map = new Uint8Array(chunks);
  // 300 sources: 250 named by the peer, the rest "other"; a few resumed.
  for (let i = 0; i < chunks; i++) map[i] = 1 + (Math.floor(i / 64) % 251);
  map.fill(252, 0, 1024); // verified before this run
  map.fill(0, chunks - 4096); // missing
  const sources = Array.from({ length: 250 }, (_, i) => ({
    address: `10.0.${i >> 8}.${i & 255}:7000`,
    bytes: 1000 + i,
    chunks: 1,
    rate: i,
  }));
  const view = pageSwarm({
    id: "f".repeat(64),
    chunks,
    ended: false,
    map,
    sources,
    other: { bytes: 5, chunks: 1, rate: 1 },
    uploads: sources,
  });
  assert.equal(view.cells, MAX_CELLS);
  const cells = Uint8Array.from(atob(view.map), (c) => c.charCodeAt(0));
  assert.equal(cells.length, MAX_CELLS);
  assert.equal(view.sources.length, 12);
  assert.equal(view.uploads.length, 12);
  assert.equal(view.uploads[0]!.rate, 249, "fastest uploads first");
  assert.ok(view.other && view.other.bytes > 5);
  assert.equal(cells[0], CELL_EARLIER);
  assert.equal(cells[MAX_CELLS - 1], 0);
  assert.ok(cells.includes(CELL_OTHER));
  assert.ok(
    cells.every((c) => c <= 12 || c === CELL_OTHER || c === CELL_EARLIER),
  );
  assert.ok(JSON.stringify(view).length < 4096, "a few KiB at most");
  // A cell is the majority of its chunks: half missing plus one is missing.
  assert.deepEqual([...foldMap(Uint8Array.of(0, 0, 3, 1, 1, 0), 2)], [0, 1]);
});
