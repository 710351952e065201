/**
 * `deno task demo`: starts a tracker and two peers as real processes on
 * loopback, lists the network, downloads across in both directions, checks
 * every byte, and cleans up. Exits 0 on success, 1 with a clear message if not.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { cp } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { join, relative } from "node:path";
import { taskFlags } from "./_tasks.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DENO = Deno.execPath();
/** Chunk size the peers use, so photo.bin (150 000 bytes) spans 3 chunks. */
const CHUNK_SIZE = "64K";
const CHUNK_BYTES = 64 * 1024;
/** Longest wait for any one step. */
const STEP_TIMEOUT_MS = 15_000;

/** A failed demo step; the message says which and why. */
class DemoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DemoError";
  }
}

/** A long-running child process whose output lines are collected. */
class Child {
  readonly name: string;
  readonly lines: string[] = [];
  #process: Deno.ChildProcess;
  #waiters = new Set<() => void>();
  #pumps: Promise<void>[];
  #exited = false;
  readonly status: Promise<Deno.CommandStatus>;

  constructor(name: string, args: string[]) {
    this.name = name;
    this.#process = new Deno.Command(DENO, {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#pumps = [
      this.#pump(this.#process.stdout),
      this.#pump(this.#process.stderr),
    ];
    this.status = this.#process.status.then((status) => {
      this.#exited = true;
      this.#notify();
      return status;
    });
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    let buffered = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      buffered += text;
      const parts = buffered.split("\n");
      buffered = parts.pop()!;
      this.lines.push(...parts);
      this.#notify();
    }
    if (buffered) this.lines.push(buffered);
    this.#notify();
  }

  #notify(): void {
    for (const wake of this.#waiters) wake();
  }

  /** Waits for an output line matching `pattern`; fails on exit or timeout. */
  async waitFor(pattern: RegExp, what: string): Promise<RegExpMatchArray> {
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    while (true) {
      for (const line of this.lines) {
        const match = line.match(pattern);
        if (match) return match;
      }
      const left = deadline - Date.now();
      if (this.#exited || left <= 0) {
        throw new DemoError(
          `${this.name} ${
            this.#exited
              ? "exited"
              : `did not report within ${STEP_TIMEOUT_MS} ms`
          } before ${what}`,
        );
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.#waiters.add(wake);
      });
    }
  }

  /** Stops the process (SIGTERM, then SIGKILL after 5 s) and reaps it. */
  async stop(): Promise<void> {
    if (!this.#exited) {
      try {
        this.#process.kill("SIGTERM");
      } catch { /* already gone */ }
      const timer = setTimeout(() => {
        try {
          this.#process.kill("SIGKILL");
        } catch { /* already gone */ }
      }, 5000);
      await this.status;
      clearTimeout(timer);
    }
    await Promise.all(this.#pumps);
  }
}

/** Runs a one-shot command to completion; fails on a non-zero exit. */
async function runOnce(args: string[], what: string): Promise<string[]> {
  const output = await new Deno.Command(DENO, {
    args,
    cwd: ROOT,
    stdin: "null",
    signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
  }).output();
  const decoder = new TextDecoder();
  const stdout = decoder.decode(output.stdout).trimEnd();
  const stderr = decoder.decode(output.stderr).trimEnd();
  if (!output.success) {
    throw new DemoError(
      `Cannot ${what}: exit code ${output.code}${
        output.signal ? ` (${output.signal})` : ""
      }\n${indent([stdout, stderr].filter(Boolean).join("\n"))}`,
    );
  }
  return stdout ? stdout.split("\n") : [];
}

async function sha256(path: string): Promise<string> {
  return createHash("sha256").update(await Deno.readFile(path)).digest("hex");
}

function indent(text: string, prefix = "    "): string {
  return text.split("\n").map((line) => prefix + line).join("\n");
}

const children: Child[] = [];
let workDir: string | undefined;

let cleaning: Promise<void> | undefined;

/** Stops every child (peers first, so they can unregister) and removes the temp dir. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    const peers = children.filter((c) => c.name !== "tracker");
    await Promise.all(peers.map((c) => c.stop()));
    await Promise.all(children.map((c) => c.stop()));
    if (workDir) {
      await Deno.remove(workDir, { recursive: true }).catch(() => {});
    }
  })();
  return cleaning;
}

async function main(): Promise<void> {
  const started = performance.now();
  const trackerFlags = taskFlags("tracker");
  const peerFlags = taskFlags("peer");
  workDir = await Deno.makeTempDir({ prefix: "shoal-demo-" });
  const show = (path: string) => "$DEMO/" + relative(workDir!, path);

  console.log(
    "Shoal demo: a tracker and two peers as real processes on 127.0.0.1",
  );
  console.log(
    `(each "deno task" below runs as "deno run <the task's flags from deno.json>"; DEMO=${workDir})\n`,
  );

  console.log(`1. Start the tracker`);
  console.log(
    "   $ deno task tracker --port 0 --host 127.0.0.1",
  );
  const tracker = new Child("tracker", [
    "run",
    ...trackerFlags,
    "tracker.ts",
    "--port",
    "0",
    "--host",
    "127.0.0.1",
  ]);
  children.push(tracker);
  const listening = await tracker.waitFor(
    /^Shoal tracker listening on (\S+):(\d+)/,
    "listening",
  );
  const trackerAddress = `127.0.0.1:${listening[2]}`;
  console.log(`   ${listening.input}\n`);

  console.log(
    `2. Start two peers (daemon mode, ${CHUNK_SIZE} chunks) on copies of the fixtures`,
  );
  const peerDirs: string[] = [];
  const peerAddresses: string[] = [];
  for (const n of [1, 2]) {
    const dir = join(workDir, `peer${n}`);
    // Leave out state a peer run on the fixtures may have left (.shoal/).
    await cp(join(ROOT, "fixtures", `shared${n}`), dir, {
      recursive: true,
      filter: (source) => !/[\\/]\.shoal$/.test(source),
    });
    peerDirs.push(dir);
    console.log(
      `   $ deno task peer --daemon --tracker ${trackerAddress} --port 0 --host 127.0.0.1 --chunk-size ${CHUNK_SIZE} --shared ${
        show(dir)
      }`,
    );
    const peer = new Child(`peer ${n}`, [
      "run",
      ...peerFlags,
      "peer.ts",
      "--daemon",
      "--tracker",
      trackerAddress,
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--chunk-size",
      CHUNK_SIZE,
      "--shared",
      dir,
    ]);
    children.push(peer);
  }
  for (const [i, peer] of children.slice(1).entries()) {
    const serving = await peer.waitFor(
      /^Shoal peer serving (\d+) files? \(.+?\) from .* on port (\d+)/,
      "serving",
    );
    const registered = await peer.waitFor(
      /^registered as (\S+)/,
      "registering with the tracker",
    );
    peerAddresses.push(registered[1]!);
    console.log(
      `   peer ${i + 1}: serving ${serving[1]} files on port ${
        serving[2]
      }, registered as ${registered[1]}`,
    );
  }
  console.log();

  console.log("3. List the network");
  console.log(
    `   $ deno task peer list --tracker ${trackerAddress}`,
  );
  const table = await runOnce(
    ["run", ...peerFlags, "peer.ts", "list", "--tracker", trackerAddress],
    "list the network",
  );
  console.log(indent(table.join("\n"), "   "));
  const listed = JSON.parse(
    (await runOnce(
      [
        "run",
        ...peerFlags,
        "peer.ts",
        "list",
        "--json",
        "--tracker",
        trackerAddress,
      ],
      "list the network as JSON",
    )).join("\n"),
  ).files as { name: string; size: number; id: string; holders: number }[];
  const expected = [
    "beta.txt",
    "common.txt",
    "docs/alpha.md",
    "notes.txt",
    "photo.bin",
  ];
  const names = [...new Set(listed.map((f) => f.name))].sort();
  if (JSON.stringify(names) !== JSON.stringify(expected)) {
    throw new DemoError(
      `Cannot find every shared file on the network: expected ${
        expected.join(", ")
      }, got ${names.join(", ")}`,
    );
  }
  console.log();

  const transfers = [
    { step: 4, file: "photo.bin", from: 2, to: 1 },
    { step: 5, file: "docs/alpha.md", from: 1, to: 2 },
  ];
  for (const { step, file, from, to } of transfers) {
    const entry = listed.find((f) => f.name === file)!;
    const chunks = Math.ceil(entry.size / CHUNK_BYTES);
    console.log(
      `${step}. Peer ${to} downloads ${file} (${entry.size} bytes, ${chunks} chunk${
        chunks === 1 ? "" : "s"
      }) from peer ${from} (${peerAddresses[from - 1]})`,
    );
    const outDir = peerDirs[to - 1]!;
    console.log(
      `   $ deno task peer download ${file} --tracker ${trackerAddress} --out ${
        show(outDir)
      }`,
    );
    const lines = await runOnce(
      [
        "run",
        ...peerFlags,
        "peer.ts",
        "download",
        file,
        "--tracker",
        trackerAddress,
        "--out",
        outDir,
      ],
      `download ${file} into peer ${to}`,
    );
    const done = lines.find((line) => line.startsWith("Downloaded"));
    if (!done) {
      throw new DemoError(
        `Cannot confirm the download of ${file}: no "Downloaded" line in\n${
          indent(lines.join("\n"))
        }`,
      );
    }
    console.log(`   ${done.replace(workDir, "$DEMO")}`);
    const original = join(ROOT, "fixtures", `shared${from}`, file);
    const copy = join(outDir, file);
    const [want, got] = await Promise.all([sha256(original), sha256(copy)]);
    if (want !== got) {
      throw new DemoError(
        `Cannot verify ${
          show(copy)
        }: SHA-256 ${got} differs from ${want} of fixtures/shared${from}/${file}`,
      );
    }
    console.log(
      `   SHA-256 ${got.slice(0, 16)}… equals fixtures/shared${from}/${file}\n`,
    );
  }

  console.log("6. Stop the peers and the tracker, remove $DEMO");
  await cleanUp();
  const unregistered = tracker.lines.filter((l) => / unregister /.test(l));
  console.log(
    `   tracker saw ${unregistered.length} peers unregister; ${children.length} processes stopped\n`,
  );
  console.log(
    `Demo passed in ${((performance.now() - started) / 1000).toFixed(1)} s.`,
  );
}

const onInterrupt = () => {
  console.error("\nInterrupted; stopping the demo's processes.");
  void cleanUp().finally(() => Deno.exit(130));
};
Deno.addSignalListener("SIGINT", onInterrupt);
try {
  await main();
  Deno.exit(0);
} catch (error) {
  await cleanUp();
  const message = error instanceof Error ? error.message : String(error);
  console.error(`\nDemo failed: ${message}`);
  for (const child of children) {
    const tail = child.lines.slice(-20).join("\n") || "(nothing)";
    console.error(`Output of ${child.name}:\n${indent(tail)}`);
  }
  Deno.exit(1);
}
