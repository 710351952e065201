/**
 * The interactive prompt in a real pseudo-terminal (`script` from
 * util-linux): Up recalls a command, Tab completes commands and names, and
 * a background download's progress lines print above the line being typed,
 * which is drawn again intact.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  PEER_TS,
  ROOT,
  spawnPeer,
  spawnTracker,
  taskPermissions,
  tempDir,
  writeRandomFile,
} from "../_helpers.ts";

const WAIT_MS = 20_000;

/** Quotes a word for `sh -c`. */
function shellWord(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** A program running in a pseudo-terminal, its raw output collected. */
class PtySession implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reader: Promise<void>;
  #waiters = new Set<() => void>();
  #ended = false;
  /** Everything the terminal showed so far, escape codes included. */
  output = "";

  constructor(command: string[]) {
    // A 200×50 terminal: readline needs a width to redraw the line.
    const inner = `stty cols 200 rows 50; exec ${
      command.map(shellWord).join(" ")
    }`;
    const child = this.#child = new Deno.Command("script", {
      args: ["-qfec", inner, "/dev/null"],
      cwd: ROOT,
      env: { NO_COLOR: "1", TERM: "xterm" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#reader = (async () => {
      for await (
        const text of child.stdout.pipeThrough(new TextDecoderStream())
      ) {
        this.output += text;
        for (const wake of this.#waiters) wake();
      }
      this.#ended = true;
      for (const wake of this.#waiters) wake();
    })();
  }

  /** Types `keys` (escape sequences included). */
  async type(keys: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(keys));
  }

  /**
   * Waits until the output from offset `from` matches `pattern`.
   *
   * @returns The match and the offset just after it.
   */
  async waitFor(
    pattern: RegExp,
    from = 0,
  ): Promise<{ match: RegExpExecArray; end: number }> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const match = pattern.exec(this.output.slice(from));
      if (match) return { match, end: from + match.index + match[0].length };
      const left = deadline - Date.now();
      if (left <= 0 || this.#ended) {
        throw new Error(
          `Cannot see ${pattern} in the terminal ${
            left <= 0 ? `within ${WAIT_MS} ms` : "before it ended"
          }; it shows from there:\n${JSON.stringify(this.output.slice(from))}`,
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

  /** Waits for the program to end; its exit code. */
  async exited(): Promise<number> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const status = await Promise.race([
      this.#child.status,
      new Promise<never>((_, reject) =>
        timer = setTimeout(
          () => reject(new Error("The prompt did not exit in time")),
          WAIT_MS,
        )
      ),
    ]).finally(() => clearTimeout(timer));
    await this.#reader;
    return status.code;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#writer.close().catch(() => {});
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already ended.
    }
    await this.#child.status;
    await this.#reader;
    await this.#child.stderr.cancel().catch(() => {});
  }
}

/** Escape sequences and carriage returns taken out: what a reader sees. */
function plain(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replaceAll(/\x1b\[[0-9;]*[A-Za-z]/g, "").replaceAll("\r", "");
}

Deno.test("The prompt edits, recalls, completes and shows progress in a terminal", async () => {
  await using tracker = await spawnTracker();
  await using source = await tempDir();
  const bytes = await writeRandomFile(
    join(source.path, "big-file.bin"),
    6 * 1024 * 1024,
  );
  await using _seeder = await spawnPeer({
    tracker: tracker.address,
    shared: source.path,
    chunkSize: "256K",
  });
  await using mine = await tempDir();
  // A capped rate: the download lasts several seconds, long enough to type.
  await using pty = new PtySession([
    Deno.execPath(),
    "run",
    "--quiet",
    ...taskPermissions("peer"),
    PEER_TS,
    "--port",
    "0",
    "--host",
    "127.0.0.1",
    "--tracker",
    tracker.address,
    "--shared",
    mine.path,
    "--max-download-rate",
    "1M",
  ]);
  let at = (await pty.waitFor(/shoal> /)).end;

  // A command, then Up recalls it and Enter runs it again.
  await pty.type("help\r");
  at = (await pty.waitFor(/Up and Down recall/, at)).end;
  await pty.type("\x1b[A");
  at = (await pty.waitFor(/shoal> help/, at)).end;
  await pty.type("\r");
  at = (await pty.waitFor(/Up and Down recall/, at)).end;

  // Tab completes a command, then a name from the network.
  await pty.type("downl\t");
  at = (await pty.waitFor(/oad/, at)).end;
  await pty.type(" big\t");
  at = (await pty.waitFor(/-file\.bin/, at)).end;
  await pty.type("\r");
  at = (await pty.waitFor(/Downloading big-file\.bin in the background/, at))
    .end;

  // Half a command typed; progress lines print above it, and the prompt is
  // drawn again under each with what was typed, intact.
  await pty.type("sta");
  at = (await pty.waitFor(/shoal> sta/, at)).end;
  const progress = await pty.waitFor(
    // deno-lint-ignore no-control-regex
    /progress big-file\.bin +\d+% [^\r\n]*\r\n(?:\x1b\[[0-9;]*[A-Za-z])*shoal> sta/,
    at,
  );
  at = progress.end;
  // The progress line itself is whole: the typed text did not cut into it.
  assert.match(
    plain(progress.match[0]),
    /^progress big-file\.bin +\d+% [\d.]+ [KMG]?i?B\/6(\.0+)? MiB .*source.*\nshoal> sta$/,
  );

  // Tab finishes the command; it runs while the download goes on.
  await pty.type("\t");
  at = (await pty.waitFor(/us/, at)).end;
  await pty.type("\r");
  at = (await pty.waitFor(/Address \S+; tracker connected/, at)).end;

  await pty.waitFor(/Downloaded big-file\.bin .*verified/, at);
  assert.deepEqual(await Deno.readFile(join(mine.path, "big-file.bin")), bytes);

  await pty.type("exit\r");
  assert.equal(await pty.exited(), 0, plain(pty.output));
  assert.match(plain(pty.output), /Unregistered; bye\./);
  // Nothing was taken for an unknown command (no raw escape codes as text).
  assert.doesNotMatch(plain(pty.output), /Unknown command|\^\[\[A/);
});
