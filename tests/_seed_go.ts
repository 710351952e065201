/**
 * The original seed implementation, in Go, for the interop tests: fetched from
 * its public repository (never stored in ours), patched to build and to stay
 * on loopback, built with the local `go`, and run as real processes.
 *
 * Where the source comes from: `SHOAL_SEED_GO_SOURCE` (a git URL or the path
 * of a git repository), by default {@linkcode SEED_GO_REPOSITORY}. The tests
 * using it are skipped, with the reason printed, when `go` or `git` is not
 * installed or the source cannot be reached (e.g. a machine without access to
 * github.com); `.ci/setup` installs Go.
 *
 * @module
 */
import { join } from "node:path";

/** The public repository of the original Go tracker and peer. */
export const SEED_GO_REPOSITORY =
  "https://github.com/BasitRaza228/gnutella-like-p2p-system";

/** Where the Go source is cloned from: the env override or the repository. */
export function seedGoSource(): string {
  return Deno.env.get("SHOAL_SEED_GO_SOURCE") || SEED_GO_REPOSITORY;
}

async function runQuiet(
  program: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } =
    {},
): Promise<{ ok: boolean; output: string }> {
  try {
    const output = await new Deno.Command(program, {
      args,
      ...(options.cwd ? { cwd: options.cwd } : {}),
      env: { GIT_TERMINAL_PROMPT: "0", ...options.env },
      stdin: "null",
      signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
    }).output();
    const decoder = new TextDecoder();
    return {
      ok: output.success,
      output: (decoder.decode(output.stdout) + decoder.decode(output.stderr))
        .trim(),
    };
  } catch (error) {
    return { ok: false, output: (error as Error).message };
  }
}

/**
 * Why the Go interop tests cannot run here, or `undefined` when they can:
 * `go` and `git` run, and the source answers `git ls-remote`.
 *
 * @returns The reason to skip, one line.
 */
export async function seedGoSkipReason(): Promise<string | undefined> {
  const go = await runQuiet("go", ["version"], { timeoutMs: 20_000 });
  if (!go.ok) {
    return "Go is not installed (install golang-go, as .ci/setup does)";
  }
  const git = await runQuiet("git", ["--version"], { timeoutMs: 20_000 });
  if (!git.ok) return "git is not installed";
  const source = seedGoSource();
  const remote = await runQuiet("git", ["ls-remote", source, "HEAD"], {
    timeoutMs: 30_000,
  });
  if (!remote.ok) {
    return `cannot reach the Go source at ${source} (${
      remote.output.split("\n").at(-1)
    }); set SHOAL_SEED_GO_SOURCE to a reachable clone`;
  }
  return undefined;
}

/** Built Go binaries. */
export interface SeedGoBuild {
  /** The `tracker` executable: `tracker <port>`. */
  tracker: string;
  /** The `peer` executable: `peer <tracker> <port> <shared dir>`. */
  peer: string;
}

/**
 * Replaces `from` by `to` in a file, failing if `from` is not there (the
 * upstream source changed: the patch must be looked at again).
 */
async function patch(path: string, from: string, to: string): Promise<void> {
  const text = await Deno.readTextFile(path);
  if (!text.includes(from)) {
    throw new Error(`Cannot patch ${path}: ${JSON.stringify(from)} not found`);
  }
  await Deno.writeTextFile(path, text.replaceAll(from, to));
}

/**
 * Clones the Go source into `dir`, patches it and builds both programs.
 *
 * The patches: the `go` line of go.mod is set to 1.19 (Debian's Go); the
 * peer's own-address lookup (a UDP "connection" to 8.8.8.8) points at
 * 127.0.0.1, so it registers a loopback address and needs no route out; and
 * both listeners bind 127.0.0.1 instead of every interface. The protocol
 * code is untouched.
 *
 * @param dir An empty temporary directory.
 * @returns The executables.
 * @throws {Error} With git's or go's output when a step fails.
 */
export async function buildSeedGo(dir: string): Promise<SeedGoBuild> {
  const src = join(dir, "src");
  const clone = await runQuiet(
    "git",
    ["clone", "--quiet", "--depth", "1", seedGoSource(), src],
    { timeoutMs: 120_000 },
  );
  if (!clone.ok) throw new Error(`Cannot clone the Go source: ${clone.output}`);
  await patch(join(src, "go.mod"), "\ngo 1.22.3", "\ngo 1.19");
  await patch(
    join(src, "common", "protocol.go"),
    '"8.8.8.8:80"',
    '"127.0.0.1:80"',
  );
  await patch(
    join(src, "tracker", "tracker.go"),
    'net.Listen("tcp", ":"+port)',
    'net.Listen("tcp", "127.0.0.1:"+port)',
  );
  await patch(
    join(src, "peer", "server.go"),
    'net.Listen("tcp", ":"+p.ServerPort)',
    'net.Listen("tcp", "127.0.0.1:"+p.ServerPort)',
  );
  const env: Record<string, string> = {
    // Build with the installed Go only: no toolchain or module downloads.
    GOTOOLCHAIN: "local",
    GOPROXY: "off",
    GOFLAGS: "-mod=mod",
    CGO_ENABLED: "0",
  };
  if (!Deno.env.get("HOME") && !Deno.env.get("GOCACHE")) {
    env.GOCACHE = join(dir, "gocache");
  }
  const built: SeedGoBuild = {
    tracker: join(dir, "bin", "tracker"),
    peer: join(dir, "bin", "peer"),
  };
  for (const [name, out] of Object.entries(built)) {
    const result = await runQuiet("go", ["build", "-o", out, `./${name}`], {
      cwd: src,
      env,
      timeoutMs: 300_000,
    });
    if (!result.ok) {
      throw new Error(`Cannot build the Go ${name}: ${result.output}`);
    }
  }
  return built;
}

/**
 * A running Go program; stdout and stderr (where Go's `log` writes) are
 * collected together, line by line.
 */
export class GoProcess implements AsyncDisposable {
  /** Every output line so far, both streams. */
  readonly lines: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #readers: Promise<void>[];
  readonly #status: Promise<Deno.CommandStatus>;
  #exited = false;

  /**
   * Starts `program` with `args`, stdin piped (closing it ends the Go
   * peer's prompt).
   *
   * @param program The executable.
   * @param args Its arguments.
   */
  constructor(readonly program: string, args: string[]) {
    this.#child = new Deno.Command(program, {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    this.#readers = [this.#child.stdout, this.#child.stderr].map((s) =>
      this.#collect(s)
    );
    this.#status = this.#child.status.then((status) => {
      this.#exited = true;
      return status;
    });
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    let pending = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      pending += text;
      let newline: number;
      while ((newline = pending.indexOf("\n")) >= 0) {
        this.lines.push(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
      }
    }
    if (pending) this.lines.push(pending);
  }

  /**
   * Waits for an output line matching `pattern` at or after line `from`.
   *
   * @param pattern What to look for.
   * @param from First line index to consider.
   * @param timeoutMs Deadline.
   * @returns The index of the matching line.
   */
  async waitFor(
    pattern: RegExp,
    from = 0,
    timeoutMs = 15_000,
  ): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const index = this.lines.findIndex((line, i) =>
        i >= from && pattern.test(line)
      );
      if (index >= 0) return index;
      if (this.#exited || Date.now() > deadline) {
        throw new Error(
          `Cannot find ${pattern} in the output of ${this.program} ${
            this.#exited ? "before it exited" : `within ${timeoutMs} ms`
          }:\n${this.lines.join("\n")}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /**
   * Types a line at the Go peer's prompt.
   *
   * @param line The command, e.g. `download a.txt`.
   */
  async writeLine(line: string): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(line + "\n"));
  }

  /** Stops the program (SIGKILL: the Go programs have no clean stop). */
  async close(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    if (!this.#exited) {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
    }
    await this.#status;
    await Promise.all(this.#readers);
  }

  /** Same as {@linkcode GoProcess.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
