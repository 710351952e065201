/**
 * What a new user meets first, driven as they would: a secret in the
 * environment that Deno may not read, a peer started without `--shared`,
 * mistyped commands, `--version`, and durations with and without units.
 *
 * @module
 */
import assert from "node:assert/strict";
import denoConfig from "../../deno.json" with { type: "json" };
import {
  assertOneLineError,
  CliProcess,
  freePort,
  PEER_TS,
  ROOT,
  run,
  runPeer,
  spawnPeer,
  spawnTracker,
  tempDir,
  TRACKER_TS,
} from "../_helpers.ts";

const SECRET = "a-secret-of-more-than-sixteen-bytes";

/** Runs `deno run --quiet <flags> <script> <args>` with SHOAL_SECRET set. */
async function runWithSecret(
  flags: string[],
  script: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...flags, script, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", SHOAL_SECRET: SECRET },
    stdin: "null",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("A secret Deno may not read stops the tracker and the peer instead of running open", async () => {
  const port = freePort();
  const tracker = await runWithSecret(["--allow-net"], TRACKER_TS, [
    "--port",
    String(port),
    "--host",
    "127.0.0.1",
  ]);
  assert.equal(tracker.code, 2, tracker.stdout);
  assertOneLineError(tracker, "tracker without --allow-env");
  assert.match(
    tracker.stderr,
    /^tracker: Cannot read SHOAL_SECRET without --allow-env=SHOAL_SECRET: .*--no-secret/,
  );
  assert.doesNotMatch(tracker.stdout, /listening/, "it never listened");

  await using out = await tempDir();
  for (
    const args of [
      ["list", "--tracker", `127.0.0.1:${port}`],
      ["--daemon", "--shared", out.path, "--tracker", `127.0.0.1:${port}`],
    ]
  ) {
    const peer = await runWithSecret(
      ["--allow-net", "--allow-read", "--allow-write"],
      PEER_TS,
      args,
    );
    assert.equal(peer.code, 2, `${args[0]}: ${peer.stdout}`);
    assertOneLineError(peer, `peer ${args[0]} without --allow-env`);
    assert.match(peer.stderr, /--allow-env=SHOAL_SECRET/);
    assert.doesNotMatch(peer.stdout, /serving/);
  }
});

Deno.test("With --allow-env the secret is used; --no-secret runs open on purpose", async () => {
  await using privateTracker = new CliProcess([
    "run",
    "--allow-net",
    "--allow-env=SHOAL_SECRET",
    TRACKER_TS,
    "--port",
    "0",
    "--host",
    "127.0.0.1",
    "--secret",
    SECRET,
  ]);
  await privateTracker.waitFor(
    /^Shoal tracker listening on .*private swarm\)$/,
  );
  const open = await runWithSecret(["--allow-net"], TRACKER_TS, [
    "--no-secret",
    "--port",
    "0",
    "--host",
    "127.0.0.1",
    "--interval",
    "not-a-duration",
  ]);
  // Past the secret (no refusal about SHOAL_SECRET): the next flag fails.
  assert.equal(open.code, 2);
  assert.match(open.stderr, /Invalid --interval "not-a-duration"/);
  await using openTracker = new CliProcess([
    "run",
    "--allow-net",
    TRACKER_TS,
    "--no-secret",
    "--port",
    "0",
    "--host",
    "127.0.0.1",
  ]);
  await openTracker.waitFor(/^Shoal tracker listening on .*open swarm\)$/);
});

Deno.test("A peer shares only a folder it was given, and says what it shares", async () => {
  await using tracker = await spawnTracker({ interval: "30s" });
  // Run from the repository root, as the issue saw: nothing is shared.
  const bare = await runPeer("--daemon", "--tracker", tracker.address);
  assert.equal(bare.code, 2, bare.stdout);
  assertOneLineError(bare, "peer without --shared");
  assert.match(bare.stderr, /^peer: Missing --shared <dir>: .*never shared/);
  assert.doesNotMatch(bare.stdout, /serving/);

  const seeding = await runPeer(
    "download",
    "notes.txt",
    "--seed",
    "10s",
    "--tracker",
    tracker.address,
  );
  assert.equal(seeding.code, 2, seeding.stdout);
  assertOneLineError(seeding, "download --seed without a folder");
  assert.match(seeding.stderr, /Cannot seed without a folder to share/);

  await using shared = await tempDir("shared1");
  await using peer = await spawnPeer({
    tracker: tracker.address,
    shared: shared.path,
  });
  const first = peer.lines.find((l) => l.startsWith("Shoal peer serving"));
  assert.equal(
    first,
    `Shoal peer serving 3 files (140 B) from ${await Deno.realPath(
      shared.path,
    )} on port ${peer.port}`,
  );
  await using one = await tempDir();
  await Deno.writeTextFile(`${one.path}/only.txt`, "one file\n");
  await using single = await spawnPeer({
    tracker: tracker.address,
    shared: one.path,
  });
  assert.ok(
    single.lines.some((l) =>
      /^Shoal peer serving 1 file \(9 B\) from /.test(l)
    ),
    single.stdout,
  );
  await tracker.waitFor(/register 127\.0\.0\.1:\d+ \(1 file\)$/);

  const help = await runPeer("download", "--help");
  assert.equal(help.code, 0);
  assert.match(
    help.stdout.replace(/\s+/g, " "),
    /--shared <dir> download into this directory when --out is not given; with --seed, the directory shared meanwhile/,
  );
});

Deno.test("Mistyped commands get the nearest one; help and --version work", async () => {
  for (
    const [typed, near] of [
      [["lsit"], "list"],
      [["dowload", "x"], "download"],
      [["peer"], "peers"],
    ] as const
  ) {
    const result = await runPeer(...typed);
    assert.equal(result.code, 2, typed.join(" "));
    assertOneLineError(result, typed.join(" "));
    assert.match(
      result.stderr,
      new RegExp(
        `^peer: Unknown command "${typed[0]}": did you mean "${near}"\\?`,
      ),
    );
  }
  const nonsense = await runPeer("frobnicate");
  assert.equal(nonsense.code, 2);
  assert.match(nonsense.stderr, /Unknown command "frobnicate" \(commands: /);

  const help = await runPeer("help");
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Commands:$/m);
  assert.match(help.stdout, /^\s+help \[command\]/m);
  const helpDownload = await runPeer("help", "download");
  assert.equal(helpDownload.code, 0, helpDownload.stderr);
  assert.match(
    helpDownload.stdout,
    /^Usage: peer download \[options\] <target>/,
  );

  for (const task of ["peer", "tracker"] as const) {
    const version = await run(task, ["--version"]);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout.trim(), denoConfig.version, task);
  }
});

Deno.test("The prompt suggests the nearest command too", async () => {
  await using tracker = await spawnTracker({ interval: "30s" });
  await using shared = await tempDir("shared1");
  await using prompt = await spawnPeer({
    tracker: tracker.address,
    shared: shared.path,
    daemon: false,
  });
  const from = prompt.lines.length;
  await prompt.writeLine("lsit");
  await prompt.waitFor(/Unknown command "lsit"\. Did you mean "list"\?/, {
    from,
  });
});

Deno.test("Durations take ms, s, m or h, and a bare number is refused", async () => {
  await using tracker = new CliProcess([
    "run",
    "--allow-net",
    TRACKER_TS,
    "--no-secret",
    "--port",
    "0",
    "--host",
    "127.0.0.1",
    "--interval",
    "1h",
    "--expiry",
    "90m",
  ]);
  await tracker.waitFor(/heartbeat 3600000 ms, expiry 5400000 ms/);

  const cases: [string[], RegExp][] = [
    [
      ["tracker", "--port", "0", "--interval", "30"],
      /Invalid --interval "30": give a unit, e\.g\. 30s or 30ms/,
    ],
    [
      ["tracker", "--port", "0", "--interval", "25h"],
      /Invalid --interval "25h": use 10ms to 24h/,
    ],
    [
      [
        "peer",
        "download",
        "x",
        "--stall-timeout",
        "90",
        "--tracker",
        "127.0.0.1:1",
      ],
      /Invalid --stall-timeout "90": give a unit/,
    ],
  ];
  for (const [[task, ...args], message] of cases) {
    const result = await run(task as "peer" | "tracker", args);
    assert.equal(result.code, 2, args.join(" "));
    assertOneLineError(result, args.join(" "));
    assert.match(result.stderr, message);
  }
});

Deno.test("The dashboard parses durations with the same parser", async () => {
  await using tracker = await spawnTracker({ interval: "30s" });
  await using shared = await tempDir("shared1");
  await using peer = await spawnPeer({
    tracker: tracker.address,
    shared: shared.path,
    args: ["--http-port", "0"],
  });
  const { match } = await peer.waitFor(
    /^Dashboard on (http:\/\/[^/]+\/)#token=(\S+)$/,
  );
  const post = async (body: unknown) => {
    const response = await fetch(`${match[1]}api/downloads`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-shoal-token": match[2]!,
      },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  };
  const bare = await post({ target: "common.txt", stallTimeout: "30" });
  assert.equal(bare.status, 400);
  assert.match(
    bare.body.error,
    /Invalid stallTimeout "30": give a unit, e\.g\. 30s or 30ms/,
  );
  const good = await post({ target: "common.txt", stallTimeout: "2m" });
  assert.equal(good.status, 202, JSON.stringify(good.body));
});
