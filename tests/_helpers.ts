/**
 * Helpers for end-to-end tests: start the real `tracker.ts` and `peer.ts`
 * CLIs as subprocesses (with the permissions of their deno.json tasks), wait
 * for their output, run one-shot commands, make temp dirs with files, and
 * run a malicious peer that serves corrupted chunks.
 *
 * @module
 */
import { cp } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  FrameConnection,
  type FrameConnectionOptions,
  writeAll,
} from "../lib/net/connection.ts";
import { SECURE_MARKER, secureAccept } from "../lib/net/secure.ts";
import {
  chunkLength,
  hashFile,
  type Manifest,
} from "../lib/content/manifest.ts";
import { taskFlags } from "../scripts/_tasks.ts";

/** The repository root (absolute path). */
export const ROOT: string = fileURLToPath(new URL("../", import.meta.url));
/** Path of the tracker entrypoint. */
export const TRACKER_TS: string = join(ROOT, "tracker.ts");
/** Path of the peer entrypoint. */
export const PEER_TS: string = join(ROOT, "peer.ts");
/** Path of the fixtures directory. */
export const FIXTURES: string = join(ROOT, "fixtures");

const DEFAULT_WAIT_MS = 15_000;

/**
 * The `--allow-*` flags of a deno.json task, so that tests run the CLIs with
 * exactly the permissions a user gets from `deno task`.
 *
 * @param task Task name in deno.json (`tracker` or `peer`).
 * @returns The permission flags.
 */
export function taskPermissions(task: string): string[] {
  const flags = taskFlags(task).filter((flag) => flag.startsWith("--allow-"));
  if (flags.length === 0) {
    throw new Error(`Task "${task}" in deno.json has no --allow-* flags`);
  }
  return flags;
}

/** The argument list to run `script` the way its deno.json task does. */
function denoArgs(task: "tracker" | "peer", args: string[]): string[] {
  return [
    "run",
    ...taskPermissions(task),
    task === "tracker" ? TRACKER_TS : PEER_TS,
    ...args,
  ];
}

const childEnv = { NO_COLOR: "1" };

/**
 * `args` with `--quiet` after `run`, so that Deno's own messages (the npm
 * `Download …` lines of a first run with an empty cache, for one) never mix
 * into the program's stderr, which tests read line by line. The program's
 * own output and uncaught errors are unaffected.
 */
function quiet(args: string[]): string[] {
  return args[0] === "run" && !args.includes("--quiet")
    ? ["run", "--quiet", ...args.slice(1)]
    : args;
}

/** A running CLI subprocess whose output is collected line by line. */
export class CliProcess implements AsyncDisposable {
  /** The child process. */
  readonly child: Deno.ChildProcess;
  /** Every stdout line so far. */
  readonly lines: string[] = [];
  /** Every stderr line so far. */
  readonly errorLines: string[] = [];
  readonly #description: string;
  readonly #readers: Promise<void>[];
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  readonly #waiters = new Set<() => void>();
  #ended = false;
  #status: Deno.CommandStatus | undefined;
  readonly #statusPromise: Promise<Deno.CommandStatus>;

  /**
   * Spawns `deno` with `args` (`deno run` gets `--quiet`: only the
   * program's own output is collected).
   *
   * @param args Arguments after `deno`.
   * @param stdin Whether to pipe stdin (for the interactive prompt).
   */
  constructor(args: string[], stdin = false) {
    this.#description = `deno ${args.slice(-6).join(" ")}`;
    this.child = new Deno.Command(Deno.execPath(), {
      args: quiet(args),
      cwd: ROOT,
      env: childEnv,
      stdin: stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = stdin ? this.child.stdin.getWriter() : undefined;
    this.#readers = [
      this.#collect(this.child.stdout, this.lines),
      this.#collect(this.child.stderr, this.errorLines),
    ];
    this.#statusPromise = this.child.status.then((status) => {
      this.#status = status;
      this.#notify();
      return status;
    });
  }

  async #collect(
    stream: ReadableStream<Uint8Array>,
    into: string[],
  ): Promise<void> {
    let pending = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      pending += text;
      let newline: number;
      while ((newline = pending.indexOf("\n")) >= 0) {
        into.push(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
      }
      this.#notify();
    }
    if (pending) into.push(pending);
    if (into === this.lines) this.#ended = true;
    this.#notify();
  }

  #notify(): void {
    for (const wake of this.#waiters) wake();
  }

  /** All stdout so far, one string. */
  get stdout(): string {
    return this.lines.join("\n");
  }

  /** All stderr so far, one string. */
  get stderr(): string {
    return this.errorLines.join("\n");
  }

  /** The exit status once the process ended. */
  get status(): Deno.CommandStatus | undefined {
    return this.#status;
  }

  /**
   * Waits for a stdout line matching `pattern`, starting at line `from`.
   *
   * @param pattern What to look for.
   * @param options `from`: first line index to consider; `timeoutMs`.
   * @returns The match and the index of its line.
   * @throws {Error} With the output so far if the line does not come in time
   *   or the process ends first.
   */
  async waitFor(
    pattern: RegExp,
    options: { from?: number; timeoutMs?: number } = {},
  ): Promise<{ match: RegExpExecArray; index: number }> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_MS;
    let next = options.from ?? 0;
    const deadline = Date.now() + timeoutMs;
    while (true) {
      for (; next < this.lines.length; next++) {
        const match = pattern.exec(this.lines[next]!);
        if (match) return { match, index: next };
      }
      const left = deadline - Date.now();
      if (this.#ended || this.#status !== undefined || left <= 0) {
        // An ended process may have printed its last lines: read them all.
        if (left > 0) await this.#readers[0];
        for (; next < this.lines.length; next++) {
          const match = pattern.exec(this.lines[next]!);
          if (match) return { match, index: next };
        }
        throw new Error(
          `Cannot find a line matching ${pattern} from ${this.#description} ${
            left <= 0 ? `within ${timeoutMs} ms` : "before it ended"
          }\n--- stdout ---\n${this.stdout}\n--- stderr ---\n${this.stderr}`,
        );
      }
      await new Promise<void>((resolve) => {
        const waiters = this.#waiters;
        const done = () => {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, left);
        waiters.add(done);
      });
    }
  }

  /**
   * Writes a line to the process's stdin (interactive prompt).
   *
   * @param line The text, without the newline.
   */
  async writeLine(line: string): Promise<void> {
    if (!this.#stdin) throw new Error("Cannot write: stdin is not piped");
    await this.#stdin.write(new TextEncoder().encode(line + "\n"));
  }

  /** Closes stdin (end of input for the prompt). */
  async closeStdin(): Promise<void> {
    await this.#stdin?.close().catch(() => {});
  }

  /**
   * Sends a signal (ignored if the process already ended).
   *
   * @param signal The signal. @default {"SIGTERM"}
   */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#status !== undefined) return;
    try {
      this.child.kill(signal);
    } catch {
      // It exited between the check and the signal.
    }
  }

  /**
   * Waits for the process to end and its output to be read.
   *
   * @param timeoutMs Deadline before the wait fails.
   * @returns The exit status.
   */
  async exited(timeoutMs = DEFAULT_WAIT_MS): Promise<Deno.CommandStatus> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `${this.#description} did not exit within ${timeoutMs} ms\n--- stdout ---\n${this.stdout}\n--- stderr ---\n${this.stderr}`,
            ),
          ),
        timeoutMs,
      );
    });
    try {
      const status = await Promise.race([this.#statusPromise, timeout]);
      await Promise.race([Promise.all(this.#readers), timeout]);
      return status;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Stops the process (SIGTERM, then SIGKILL after a grace period) and
   * drains its streams.
   */
  async close(): Promise<void> {
    await this.closeStdin();
    this.kill("SIGTERM");
    const grace = setTimeout(() => this.kill("SIGKILL"), 3000);
    try {
      await this.#statusPromise;
      await Promise.all(this.#readers);
    } finally {
      clearTimeout(grace);
    }
  }

  /** Same as {@linkcode CliProcess.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A tracker subprocess. */
export class TrackerProcess extends CliProcess {
  /** The port it listens on (known after {@linkcode spawnTracker}). */
  port = 0;
  /** `127.0.0.1:PORT`. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }
}

/** Options for {@linkcode spawnTracker}. */
export interface SpawnTrackerOptions {
  /** Port to bind. @default {0} */
  port?: number;
  /** Heartbeat interval flag. @default {"500ms"} */
  interval?: string;
  /** Extra arguments. */
  args?: string[];
  /**
   * Run with the whole environment readable (`--allow-env`), as a tracker
   * with a Redis store needs. @default {false}
   */
  allowEnv?: boolean;
}

/**
 * Starts `tracker.ts --port 0 --host 127.0.0.1` and waits until it listens.
 *
 * @param options Port, interval, extra flags.
 * @returns The running tracker; `await using` it.
 */
export async function spawnTracker(
  options: SpawnTrackerOptions = {},
): Promise<TrackerProcess> {
  const args = denoArgs("tracker", [
    "--port",
    String(options.port ?? 0),
    "--host",
    "127.0.0.1",
    "--interval",
    options.interval ?? "500ms",
    ...(options.args ?? []),
  ]);
  const tracker = new TrackerProcess(
    options.allowEnv
      ? args.map((a) => a.startsWith("--allow-env") ? "--allow-env" : a)
      : args,
  );
  try {
    const { match } = await tracker.waitFor(
      /^Shoal tracker listening on 127\.0\.0\.1:(\d+) /,
    );
    tracker.port = Number(match[1]);
  } catch (error) {
    await tracker.close();
    throw error;
  }
  return tracker;
}

/** A peer subprocess. */
export class PeerProcess extends CliProcess {
  /** The port it serves on. */
  port = 0;
  /** The address the tracker gave out (daemons only). */
  address = "";
}

/** Options for {@linkcode spawnPeer}. */
export interface SpawnPeerOptions {
  /** Tracker `host:port`. */
  tracker: string;
  /** Shared directory. */
  shared: string;
  /** Run headless. @default {true} */
  daemon?: boolean;
  /** Chunk size flag, e.g. `256K`. */
  chunkSize?: string;
  /** Heartbeat flag, e.g. `300ms`. */
  heartbeat?: string;
  /** Extra arguments. */
  args?: string[];
}

/**
 * Starts `peer.ts [--daemon] --port 0 --host 127.0.0.1 --tracker … --shared
 * …` and waits until it serves (and, as a daemon, until it registered).
 *
 * @param options Tracker, directory and flags.
 * @returns The running peer; `await using` it.
 */
export async function spawnPeer(
  options: SpawnPeerOptions,
): Promise<PeerProcess> {
  const daemon = options.daemon ?? true;
  const peer = new PeerProcess(
    denoArgs("peer", [
      ...(daemon ? ["--daemon"] : []),
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--tracker",
      options.tracker,
      "--shared",
      options.shared,
      ...(options.chunkSize ? ["--chunk-size", options.chunkSize] : []),
      ...(options.heartbeat ? ["--heartbeat", options.heartbeat] : []),
      ...(options.args ?? []),
    ]),
    !daemon,
  );
  try {
    const serving = await peer.waitFor(
      /^Shoal peer serving \d+ files? \(.+?\) from .+ on port (\d+)$/,
    );
    peer.port = Number(serving.match[1]);
    if (daemon) {
      const registered = await peer.waitFor(/^registered as (\S+)$/, {
        from: serving.index,
      });
      peer.address = registered.match[1]!;
    } else {
      peer.address = `127.0.0.1:${peer.port}`;
    }
  } catch (error) {
    await peer.close();
    throw error;
  }
  return peer;
}

/** The outcome of a one-shot command. */
export interface RunResult {
  /** Exit code. */
  code: number;
  /** Everything written to stdout. */
  stdout: string;
  /** Everything written to stderr. */
  stderr: string;
}

/**
 * Runs a one-shot command to completion.
 *
 * @param task Which entrypoint (`peer` or `tracker`), run with its task's
 *   permissions.
 * @param args Arguments after the script.
 * @param timeoutMs Kill the process after this long.
 * @returns Exit code and output.
 */
export async function run(
  task: "tracker" | "peer",
  args: string[],
  timeoutMs = 30_000,
): Promise<RunResult> {
  return await runDeno(denoArgs(task, args), timeoutMs);
}

/**
 * Runs `deno` with arbitrary arguments to completion (cwd: the repo root;
 * `deno run` gets `--quiet`, as in {@linkcode CliProcess}).
 *
 * @param args Arguments after `deno`.
 * @param timeoutMs Kill the process after this long.
 * @returns Exit code and output.
 */
export async function runDeno(
  args: string[],
  timeoutMs = 30_000,
): Promise<RunResult> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: quiet(args),
      cwd: ROOT,
      env: childEnv,
      stdin: "null",
      signal: controller.signal,
    }).output();
    const decoder = new TextDecoder();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `peer.ts` with arguments.
 *
 * @param args Arguments, e.g. `["list", "--json", "--tracker", addr]`.
 * @returns Exit code and output.
 */
export function runPeer(...args: string[]): Promise<RunResult> {
  return run("peer", args);
}

/** Asserts a result's stderr is exactly one non-empty line without a stack. */
export function assertOneLineError(result: RunResult, what: string): void {
  const text = result.stderr.trim();
  if (
    text === "" || text.includes("\n") || /^\s+at /m.test(result.stderr) ||
    /Uncaught/.test(result.stderr)
  ) {
    throw new Error(
      `Expected one error line for ${what}, got stderr:\n${result.stderr}\nstdout:\n${result.stdout}`,
    );
  }
}

/** A temporary directory removed on dispose. */
export interface TempDir extends AsyncDisposable {
  /** Its path. */
  readonly path: string;
}

/**
 * Makes a temporary directory, optionally a copy of a fixture directory.
 *
 * @param fixture Name under `fixtures/` to copy in.
 * @returns The directory; `await using` it.
 */
export async function tempDir(fixture?: string): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix: "shoal_e2e_" });
  if (fixture) {
    await cp(join(FIXTURES, fixture), path, { recursive: true });
  }
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/**
 * Random bytes of any length (`crypto.getRandomValues` fills 64 KiB at a
 * time).
 *
 * @param size Number of bytes.
 * @returns The bytes.
 */
export function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65536) {
    crypto.getRandomValues(bytes.subarray(offset, offset + 65536));
  }
  return bytes;
}

/**
 * Writes a file of random bytes.
 *
 * @param path Where.
 * @param size How many bytes.
 * @returns The bytes written.
 */
export async function writeRandomFile(
  path: string,
  size: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = randomBytes(size);
  await Deno.writeFile(path, bytes);
  return bytes;
}

/**
 * SHA-256 of bytes as hex.
 *
 * @param bytes The data.
 * @returns 64 hex digits.
 */
export async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * SHA-256 of a file's contents as hex.
 *
 * @param path The file.
 * @returns 64 hex digits.
 */
export async function sha256File(path: string): Promise<string> {
  return await sha256(await Deno.readFile(path));
}

/**
 * Whether a path exists (without following a final symlink).
 *
 * @param path The path.
 * @returns `true` if something is there.
 */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * A port that was free a moment ago (listen on 0, read it, close).
 *
 * @returns The port.
 */
export function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/**
 * Waits `ms` milliseconds.
 *
 * @param ms Duration.
 */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `check` until it returns a value other than `undefined`, or fails
 * with `message` after `timeoutMs`.
 *
 * @param check The condition; may be async.
 * @param message What was awaited (for the failure).
 * @param options Deadline and poll interval.
 * @returns The first defined value.
 */
export async function pollUntil<T>(
  check: () => T | undefined | Promise<T | undefined>,
  message: string,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_WAIT_MS);
  while (true) {
    const value = await check();
    // `false` is "not yet" too, so a plain boolean check waits as it reads.
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) {
      throw new Error(
        `Timed out after ${
          options.timeoutMs ?? DEFAULT_WAIT_MS
        } ms: ${message}`,
      );
    }
    await delay(options.intervalMs ?? 25);
  }
}

/** A seed-protocol peer started by {@linkcode startSeedPeer}. */
export interface SeedPeer extends AsyncDisposable {
  /** The port it serves on (127.0.0.1). */
  readonly port: number;
}

/**
 * Starts a peer in this process that speaks only the seed protocol and
 * serves `files` from memory: a `download` of a known name gets the
 * `{"status":"ok","size":N}` line and the bytes, anything else a status
 * error. With `sendBytes`, it sends only that many bytes of a body and then
 * falls silent until the client hangs up (a stalled sender).
 *
 * @param files Name → content.
 * @param options `sendBytes`: where each body stops.
 * @returns The peer; `await using` it.
 */
export function startSeedPeer(
  files: Map<string, Uint8Array>,
  options: { sendBytes?: number } = {},
): SeedPeer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const encoder = new TextEncoder();
  const serve = async (conn: Deno.Conn) => {
    const buffer = new Uint8Array(4096);
    let received = new Uint8Array();
    while (!received.includes(10)) {
      const n = await conn.read(buffer);
      if (n === null) return;
      const grown = new Uint8Array(received.length + n);
      grown.set(received);
      grown.set(buffer.subarray(0, n), received.length);
      received = grown;
    }
    const line = new TextDecoder().decode(
      received.subarray(0, received.indexOf(10)),
    );
    let reply: Record<string, unknown>;
    let body: Uint8Array | undefined;
    try {
      const request = JSON.parse(line);
      body = request.command === "download"
        ? files.get(request.filename)
        : undefined;
      reply = body
        ? { status: "ok", size: body.length }
        : { status: "error: not found" };
    } catch {
      reply = { status: "error: bad request" };
    }
    await writeAll(conn, encoder.encode(JSON.stringify(reply) + "\n"));
    if (!body) return;
    await writeAll(conn, body.subarray(0, options.sendBytes ?? body.length));
    // A stalled sender stays silent until the client gives up.
    if (options.sendBytes !== undefined) await conn.read(buffer);
  };
  const server = serveEach(listener, serve);
  return {
    port: listener.addr.port,
    [Symbol.asyncDispose]: () => server[Symbol.asyncDispose](),
  };
}

/**
 * Serves every connection `listener` accepts with `serve` (errors ignored,
 * the connection closed after). Disposing closes the listener and the open
 * connections, and waits for their handlers.
 *
 * @param listener Where connections come from (owned from now on).
 * @param serve What to do with one connection.
 * @returns The server; `await using` it.
 */
export function serveEach(
  listener: Deno.TcpListener,
  serve: (conn: Deno.Conn) => Promise<void>,
): AsyncDisposable {
  const conns = new Set<Deno.Conn>();
  const handlers = new Set<Promise<void>>();
  const loop = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      const handler = serve(conn).catch(() => {}).finally(() => {
        conns.delete(conn);
        try {
          conn.close();
        } catch { /* closed */ }
      });
      handlers.add(handler);
      handler.finally(() => handlers.delete(handler));
    }
  })();
  return {
    async [Symbol.asyncDispose]() {
      listener.close();
      await loop.catch(() => {});
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
      await Promise.all(handlers);
    },
  };
}

/**
 * Accepts a Shoal client's connection the way a peer does: through the
 * secure (Noise) handshake when the client starts one, with this process's
 * throwaway identity, the same key a `TrackerClient` of this process
 * registers with. Plaintext framed clients are served as they are.
 *
 * @param conn The accepted connection.
 * @param options Options of the framed connection.
 * @returns The framed connection.
 */
export async function acceptFramed(
  conn: Deno.TcpConn,
  options: FrameConnectionOptions = {},
): Promise<FrameConnection> {
  const first = new Uint8Array(4096);
  const n = await conn.read(first);
  const prefix = first.subarray(0, n ?? 0);
  if (prefix[0] === SECURE_MARKER) {
    return new FrameConnection(await secureAccept(conn, prefix), options);
  }
  return new FrameConnection(conn, { ...options, prefix });
}

/** A scripted framed-protocol peer started by {@linkcode startFakePeer}. */
export interface FakePeer extends AsyncDisposable {
  /** The port it serves on (127.0.0.1). */
  readonly port: number;
}

/**
 * Starts a framed-protocol peer in this process whose every JSON request is
 * answered by `answer` (for peers that misbehave on purpose). Register it
 * with a tracker yourself (`TrackerClient`).
 *
 * @param answer Called with each request and its connection.
 * @returns The peer; `await using` it.
 */
export function startFakePeer(
  answer: (
    request: Record<string, unknown>,
    connection: FrameConnection,
  ) => Promise<void>,
): FakePeer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connections = new Set<FrameConnection>();
  const accepting = new Set<Deno.TcpConn>();
  const handlers = new Set<Promise<void>>();
  const serve = async (connection: FrameConnection) => {
    try {
      for await (const frame of connection.frames()) {
        if (frame.kind !== "json") continue;
        await answer(frame.message as Record<string, unknown>, connection);
      }
    } catch {
      // The downloader hung up on it: expected.
    } finally {
      connection.close();
      connections.delete(connection);
    }
  };
  const loop = (async () => {
    for await (const conn of listener) {
      accepting.add(conn);
      const handler = acceptFramed(conn, { readTimeoutMs: 0 }).then(
        (connection) => {
          accepting.delete(conn);
          connections.add(connection);
          return serve(connection);
        },
        () => {
          if (accepting.delete(conn)) conn.close();
        },
      );
      handlers.add(handler);
      handler.finally(() => handlers.delete(handler));
    }
  })();
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await loop.catch(() => {});
      for (const connection of connections) connection.close();
      for (const conn of accepting) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
      accepting.clear();
      await Promise.all(handlers);
    },
  };
}

/** A malicious peer started by {@linkcode startLyingPeer}. */
export interface LyingPeer extends AsyncDisposable {
  /** The port it serves on (127.0.0.1). */
  readonly port: number;
  /** The honest manifest it hands out. */
  readonly manifest: Manifest;
  /** How many (corrupted) chunks it sent so far. */
  readonly chunksServed: number;
}

/**
 * Starts a malicious framed-protocol peer in this process: it answers
 * `manifest` honestly for the real file at `path` but sends every chunk with
 * bytes flipped. Register it with a tracker yourself (`TrackerClient`).
 *
 * @param path The real file.
 * @param name The name it serves the file under.
 * @param chunkSize Chunk size of its manifest.
 * @returns The peer; `await using` it.
 */
export async function startLyingPeer(
  path: string,
  name: string,
  chunkSize: number = 256 * 1024,
): Promise<LyingPeer> {
  const manifest = await hashFile(path, name, { chunkSize });
  const content = await Deno.readFile(path);
  let chunksServed = 0;
  const peer = startFakePeer(async (request, connection) => {
    const rid = request.rid;
    switch (request.type) {
      case "ping":
        return await connection.send({ type: "pong", rid });
      case "have":
        return await connection.send({ type: "have", complete: true, rid });
      case "manifest": {
        const { id, size, chunkSize, hashes } = manifest;
        return await connection.send({
          type: "manifest",
          manifest: { id, name, size, chunkSize, hashes },
          rid,
        });
      }
      case "chunk": {
        const index = Number(request.index);
        const start = index * manifest.chunkSize;
        const bytes = content.slice(
          start,
          start + chunkLength(manifest, index),
        );
        for (let i = 0; i < bytes.length; i += 997) bytes[i]! ^= 0xff;
        chunksServed++;
        return await connection.sendData(Number(rid), bytes);
      }
    }
  });
  return {
    port: peer.port,
    manifest,
    get chunksServed() {
      return chunksServed;
    },
    [Symbol.asyncDispose]: () => peer[Symbol.asyncDispose](),
  };
}
