/**
 * Command-line behaviour: bad flags and an unreachable tracker give one error
 * line and a non-zero exit; the documented ways of starting a tracker work.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  assertOneLineError,
  CliProcess,
  freePort,
  run,
  runPeer,
  tempDir,
  TRACKER_TS,
} from "../_helpers.ts";

Deno.test("Bad flags give one error line and a non-zero exit", async () => {
  const cases: [string, Promise<Awaited<ReturnType<typeof run>>>, RegExp][] = [
    [
      "tracker --port abc",
      run("tracker", ["--port", "abc"]),
      /Invalid port "abc"/,
    ],
    [
      "peer --port abc",
      runPeer(
        "--daemon",
        "--shared",
        "fixtures/shared1",
        "--port",
        "abc",
        "--tracker",
        "127.0.0.1:1",
      ),
      /Invalid port "abc"/,
    ],
    [
      "peer --chunk-size 1",
      runPeer(
        "--daemon",
        "--shared",
        "fixtures/shared1",
        "--chunk-size",
        "1",
        "--tracker",
        "127.0.0.1:1",
      ),
      /Invalid --chunk-size "1"/,
    ],
    [
      "peer list --tracker nonsense",
      runPeer("list", "--tracker", "nonsense"),
      /Invalid --tracker "nonsense"/,
    ],
    [
      "peer download --tracker nonsense",
      runPeer("download", "a.txt", "--tracker", "nonsense"),
      /Invalid --tracker "nonsense"/,
    ],
    [
      "tracker --interval soon",
      run("tracker", ["--port", "0", "--interval", "soon"]),
      /Invalid --interval "soon"/,
    ],
  ];
  for (const [what, pending, message] of cases) {
    const result = await pending;
    assert.notEqual(result.code, 0, `${what} exits non-zero`);
    assertOneLineError(result, what);
    assert.match(result.stderr, message, what);
  }
});

Deno.test("An unreachable tracker gives exit 1 and one line", async () => {
  const address = `127.0.0.1:${freePort()}`;
  await using out = await tempDir();
  for (
    const args of [
      ["list", "--tracker", address],
      ["peers", "a.txt", "--tracker", address],
      ["download", "a.txt", "--tracker", address, "--out", out.path],
    ]
  ) {
    const result = await runPeer(...args);
    assert.equal(result.code, 1, `${args[0]}: ${result.stdout}`);
    assertOneLineError(result, `${args[0]} with the tracker down`);
    assert.match(result.stderr, /refused|unreachable|running/i, args[0]);
  }
});

Deno.test("The tracker starts with only --allow-net --allow-read and --no-secret", async () => {
  await using tracker = new CliProcess([
    "run",
    "--allow-net",
    "--allow-read",
    TRACKER_TS,
    "--no-secret",
    "--port",
    "0",
    "--host",
    "127.0.0.1",
  ]);
  const { match } = await tracker.waitFor(
    /^Shoal tracker listening on 127\.0\.0\.1:(\d+) /,
  );
  assert.notEqual(Number(match[1]), 0);
  const listed = await runPeer(
    "list",
    "--json",
    "--tracker",
    `127.0.0.1:${match[1]}`,
  );
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual(JSON.parse(listed.stdout), {
    version: 1,
    query: null,
    files: [],
  });
});

Deno.test("The tracker takes a seed-style positional :PORT", async () => {
  const port = freePort();
  await using tracker = new CliProcess([
    "run",
    "--allow-net",
    TRACKER_TS,
    "--no-secret",
    `:${port}`,
    "--host",
    "127.0.0.1",
  ]);
  await tracker.waitFor(
    new RegExp(`^Shoal tracker listening on 127\\.0\\.0\\.1:${port} `),
  );
  const listed = await runPeer("list", "--tracker", `127.0.0.1:${port}`);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /No files on the network/);
});
