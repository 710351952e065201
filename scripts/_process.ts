/**
 * Private helper for the benchmarks: a `deno` child process whose output is
 * collected line by line, with a wait for a matching line and readings of
 * its peak memory and CPU time from `/proc`.
 *
 * @module
 */

/** How a {@linkcode LineProcess} is started. */
export interface LineProcessOptions {
  /** Keep stdin open for {@linkcode LineProcess.send}. @default {false} */
  stdin?: boolean;
  /** Collect stderr lines too, or pass stderr through. @default {"collect"} */
  stderr?: "collect" | "inherit";
}

/** A `deno` child process whose output lines are collected. */
export class LineProcess {
  /** The running process. */
  readonly child: Deno.ChildProcess;
  /** Every line written so far (stdout, and stderr when collected). */
  readonly lines: string[] = [];
  /** Settles once the collected streams ended. */
  readonly done: Promise<void>;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #waiters: (() => void)[] = [];

  /**
   * Starts `deno` with `args`.
   *
   * @param args Arguments after `deno` (e.g. `run`, flags, a script).
   * @param options Stdin and stderr handling.
   */
  constructor(args: string[], options: LineProcessOptions = {}) {
    const collectStderr = (options.stderr ?? "collect") === "collect";
    this.child = new Deno.Command(Deno.execPath(), {
      args,
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: collectStderr ? "piped" : "inherit",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#stdin = options.stdin ? this.child.stdin.getWriter() : undefined;
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      let buffered = "";
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        buffered += text;
        const parts = buffered.split("\n");
        buffered = parts.pop()!;
        this.lines.push(...parts);
        for (const wake of this.#waiters.splice(0)) wake();
      }
      if (buffered) this.lines.push(buffered);
      for (const wake of this.#waiters.splice(0)) wake();
    };
    this.done = Promise.all([
      collect(this.child.stdout),
      ...(collectStderr ? [collect(this.child.stderr)] : []),
    ]).then(() => {});
  }

  /**
   * The first line matching `pattern`, waiting for it.
   *
   * @param pattern What to look for.
   * @param timeoutMs Give up after this long.
   * @returns The match.
   */
  async waitFor(
    pattern: RegExp,
    timeoutMs = 60_000,
  ): Promise<RegExpMatchArray> {
    const deadline = performance.now() + timeoutMs;
    let from = 0;
    while (true) {
      for (; from < this.lines.length; from++) {
        const match = this.lines[from]!.match(pattern);
        if (match) return match;
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(
          `Timed out waiting for ${pattern}; output:\n${
            this.lines.slice(-40).join("\n")
          }`,
        );
      }
      await Promise.race([
        new Promise<void>((resolve) => this.#waiters.push(resolve)),
        this.done,
        new Promise((resolve) => setTimeout(resolve, Math.min(left, 200))),
      ]);
    }
  }

  /**
   * Writes one line to stdin (started with `stdin: true`).
   *
   * @param line The line, without its newline.
   */
  async send(line: string): Promise<void> {
    await this.#stdin?.write(new TextEncoder().encode(line + "\n"));
  }

  /** Closes stdin, if open. */
  async closeStdin(): Promise<void> {
    await this.#stdin?.close().catch(() => {});
  }

  /** Peak resident memory (VmHWM) so far, MiB; 0 when not readable. */
  async peakRssMib(): Promise<number> {
    const status = await readProc(this.child.pid, "status");
    return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  }

  /** CPU time (user + system) used so far, seconds; NaN once it is gone. */
  async cpuSeconds(): Promise<number> {
    const stat = await readProc(this.child.pid, "stat");
    // Fields after the command name (which may hold spaces): utime is the
    // 14th field of the line, stime the 15th, in clock ticks (100 Hz).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  }
}

/** A `/proc/<pid>/` file, read by `cat` (Deno asks more than --allow-read). */
async function readProc(pid: number, file: string): Promise<string> {
  try {
    const out = await new Deno.Command("cat", {
      args: [`/proc/${pid}/${file}`],
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(out.stdout);
  } catch {
    return ""; // Not readable at this instant (exec in progress, or exited).
  }
}
