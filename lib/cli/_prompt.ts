/**
 * Private: the peer's interactive prompt, on `node:readline`: line editing,
 * history (Up and Down), Tab completion of commands and names, and lines
 * printed from the background (download progress) above the line being
 * typed, which is drawn again intact.
 *
 * @module
 */
import readline from "node:readline";
import process from "node:process";

/** Options for {@linkcode Prompt}. */
export interface PromptOptions {
  /** The prompt text. @default {"shoal> "} */
  prompt?: string;
  /** The command words, for completion. */
  commands: readonly string[];
  /** Commands whose argument is a name to complete. */
  nameCommands: readonly string[];
  /** Names to complete after `command` (may be slow: the network). */
  names: (command: string) => Promise<readonly string[]>;
  /** Runs a line; resolves `false` to end the session. */
  onLine: (line: string) => Promise<boolean>;
  /** Lines kept in the history. @default {500} */
  historySize?: number;
}

/**
 * Completions of the word under the cursor: a command at the start of the
 * line, else a name after a command that takes one, offered one folder
 * level at a time (`d` gives `docs/`, `docs/` gives the files in it).
 *
 * @param line The line up to the cursor.
 * @param options The commands and the names after a command.
 * @returns The candidates and the text they replace, as readline wants.
 */
export async function completeLine(
  line: string,
  options: Pick<PromptOptions, "commands" | "nameCommands" | "names">,
): Promise<[string[], string]> {
  const space = line.indexOf(" ");
  if (space < 0) {
    const hits = options.commands.filter((c) => c.startsWith(line));
    return [hits, line];
  }
  const command = line.slice(0, space);
  const arg = line.slice(space + 1).trimStart();
  if (!options.nameCommands.includes(command)) return [[], arg];
  const hits = new Set<string>();
  for (const name of await options.names(command)) {
    if (!name.startsWith(arg)) continue;
    const slash = name.indexOf("/", arg.length);
    hits.add(slash < 0 ? name : name.slice(0, slash + 1));
  }
  return [[...hits].sort(), arg];
}

/** A running prompt session. */
export class Prompt {
  readonly #rl: readline.Interface;
  readonly #options: PromptOptions;
  readonly #terminal: boolean;
  #busy = false;
  #closed = false;
  /** Set when the session ended with Ctrl-C. */
  interrupted = false;

  /**
   * Opens the prompt on stdin and stdout (editing only on a terminal).
   *
   * @param options Commands, names, the line handler.
   */
  constructor(options: PromptOptions) {
    this.#options = options;
    this.#terminal = Boolean(process.stdin.isTTY && process.stdout.isTTY);
    this.#rl = readline.createInterface({
      input: process.stdin,
      output: process.stdout,
      terminal: this.#terminal,
      historySize: options.historySize ?? 500,
      removeHistoryDuplicates: true,
      completer: (
        line: string,
        callback: (error: Error | null, result: [string[], string]) => void,
      ) => {
        completeLine(line, options).then(
          (result) => callback(null, result),
          () => callback(null, [[], line]),
        );
      },
    });
    this.#rl.setPrompt(options.prompt ?? "shoal> ");
    this.#rl.on("SIGINT", () => {
      this.interrupted = true;
      process.stdout.write("\n");
      this.close();
    });
  }

  /**
   * Prints a line from the background: above the prompt, which is drawn
   * again with what was being typed (on a terminal), or as a plain line.
   *
   * @param line The text, without a newline.
   * @param toStderr Print it on stderr (a warning) rather than stdout.
   */
  print(line: string, toStderr = false): void {
    if (this.#closed || !this.#terminal) {
      (toStderr ? console.error : console.log)(line);
      return;
    }
    readline.clearLine(process.stdout, 0);
    readline.cursorTo(process.stdout, 0);
    (toStderr ? process.stderr : process.stdout).write(`${line}\n`);
    // While a command runs, its own output comes next; the prompt after it.
    if (!this.#busy) this.#rl.prompt(true);
  }

  /**
   * Reads and runs lines until `exit`, the end of input, Ctrl-C or
   * {@linkcode Prompt.close}.
   */
  async run(): Promise<void> {
    if (this.#terminal) this.#rl.prompt();
    try {
      for await (const line of this.#rl) {
        this.#busy = true;
        let more = true;
        try {
          more = await this.#options.onLine(line);
        } finally {
          this.#busy = false;
        }
        if (!more || this.#closed) break;
        if (this.#terminal) this.#rl.prompt();
      }
    } finally {
      this.close();
    }
  }

  /** Ends the session (the terminal is given back as it was). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#rl.close();
  }
}
