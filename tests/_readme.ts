/**
 * Checks the shell commands of a Markdown document against the repository:
 * every `sh`/`bash`/`shell` code block is split into commands, and each one
 * must name a task that `deno.json` has, files that exist, and flags, argument
 * counts and values that the real command-line programs accept (their own
 * `--help` is the reference). `tests/readme_test.ts` runs it on README.md.
 *
 * @module
 */
import { isAbsolute, join } from "node:path";
import { parseBoundedSize, parseDuration, parsePort } from "../lib/cli/_cli.ts";
import { parseHostPort } from "../lib/net/address.ts";
import { ROOT } from "./_helpers.ts";

/** One command found in a code block. */
export interface ShellCommand {
  /** 1-based line of the document where the command starts. */
  line: number;
  /** Its words, quotes removed. */
  words: string[];
}

/**
 * Programs a README may use that are not part of this repository; their
 * commands are not checked. A program not listed here and not known to the
 * checker fails the check, so that a new kind of command is looked at once.
 */
export const EXTERNAL_PROGRAMS: ReadonlySet<string> = new Set([
  "apt-get",
  "cat",
  "cd",
  "cp",
  "curl",
  "echo",
  "export",
  "git",
  "go",
  "kill",
  "ls",
  "mkdir",
  "openssl",
  "redis-cli",
  "redis-server",
  "rm",
  "sha256sum",
  "sudo",
]);

/** Languages whose code blocks hold shell commands. */
const SHELL_LANGUAGES = new Set(["sh", "bash", "shell", "console"]);

/**
 * The shell commands of every shell code block, in order. Backslash-newline
 * continues a command; `#` starts a comment; `;`, `&&`, `||` and `|` separate
 * commands; leading `NAME=value` assignments are dropped.
 *
 * @param markdown The document.
 * @returns The commands with their line numbers.
 */
export function shellCommands(markdown: string): ShellCommand[] {
  const lines = markdown.split("\n");
  const commands: ShellCommand[] = [];
  let fence: string | undefined;
  let block: { start: number; text: string[] } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const open = /^\s*(`{3,}|~{3,})\s*([\w-]*)/.exec(line);
    if (fence === undefined && open) {
      fence = open[1]!;
      if (SHELL_LANGUAGES.has(open[2]!.toLowerCase())) {
        block = { start: i + 2, text: [] };
      }
      continue;
    }
    if (fence !== undefined && line.trim().startsWith(fence)) {
      if (block) commands.push(...splitCommands(block.text, block.start));
      fence = undefined;
      block = undefined;
      continue;
    }
    block?.text.push(line);
  }
  return commands;
}

/** Splits the lines of one block (first line numbered `start`). */
function splitCommands(lines: string[], start: number): ShellCommand[] {
  const commands: ShellCommand[] = [];
  let words: string[] = [];
  let word: string | undefined;
  let first = start;
  const endWord = () => {
    if (word !== undefined) words.push(word);
    word = undefined;
  };
  const endCommand = () => {
    endWord();
    while (words.length > 0 && /^[A-Za-z_]\w*=/.test(words[0]!)) {
      words.shift();
    }
    if (words.length > 0) commands.push({ line: first, words });
    words = [];
  };
  const text = lines.join("\n");
  let line = start;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (words.length === 0 && word === undefined) first = line;
    if (c === "\\" && text[i + 1] === "\n") {
      i++;
      line++;
      continue;
    }
    if (c === "\n") {
      endCommand();
      line++;
      continue;
    }
    if (c === " " || c === "\t") {
      endWord();
      continue;
    }
    if (c === "#" && word === undefined) {
      while (i + 1 < text.length && text[i + 1] !== "\n") i++;
      continue;
    }
    if (c === ";" || c === "|" || (c === "&" && text[i + 1] === "&")) {
      if ((c === "&" || c === "|") && text[i + 1] === c) i++;
      endCommand();
      continue;
    }
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) throw new Error(`Unclosed ${c} at line ${line}`);
      word = (word ?? "") + text.slice(i + 1, end);
      i = end;
      continue;
    }
    if (c === "$" && text[i + 1] === "(") {
      // A command substitution stays one word: $( … ) with nesting.
      let depth = 0;
      let j = i + 1;
      for (; j < text.length; j++) {
        if (text[j] === "(") depth++;
        if (text[j] === ")" && --depth === 0) break;
      }
      word = (word ?? "") + text.slice(i, j + 1);
      i = j;
      continue;
    }
    if (c === "\\") {
      word = (word ?? "") + (text[i + 1] ?? "");
      i++;
      continue;
    }
    word = (word ?? "") + c;
  }
  endCommand();
  return commands;
}

/** What a program's `--help` says it accepts. */
export interface CliSpec {
  /** Options by flag (`--port`, `-p`): whether they take a value. */
  options: Map<string, { placeholder: string | undefined }>;
  /** Subcommand names. */
  commands: Set<string>;
  /** Required positional arguments. */
  required: number;
  /** Most positional arguments (Infinity with a variadic one). */
  most: number;
  /** The whole help text. */
  text: string;
}

/**
 * Reads a Commander-style help text.
 *
 * @param text The output of `--help`.
 * @returns The spec, or `undefined` when the text has no `Options:` list.
 */
export function parseHelp(text: string): CliSpec | undefined {
  if (!/^Options:$/m.test(text)) return undefined;
  const spec: CliSpec = {
    options: new Map(),
    commands: new Set(),
    required: 0,
    most: 0,
    text,
  };
  const usage = /^Usage: (.*)$/m.exec(text)?.[1] ?? "";
  for (const [token] of usage.matchAll(/<[^>]+>|\[[^\]]+\]/g)) {
    if (token === "[options]" || token === "[command]") continue;
    if (token.startsWith("<")) spec.required++;
    spec.most = token.includes("...") ? Infinity : spec.most + 1;
  }
  let section = "";
  for (const line of text.split("\n")) {
    const heading = /^(\w[\w ]*):$/.exec(line);
    if (heading) {
      section = heading[1]!;
      continue;
    }
    if (section === "Options") {
      const option =
        /^ {2}(?:(-[A-Za-z]), )?(--[A-Za-z0-9-]+)(?: ([<[][^>\]]+[>\]]))?/
          .exec(line);
      if (!option) continue;
      const entry = { placeholder: option[3] };
      spec.options.set(option[2]!, entry);
      if (option[1]) spec.options.set(option[1], entry);
    } else if (section === "Commands") {
      const command = /^ {2}([a-z][\w-]*)/.exec(line);
      if (command) spec.commands.add(command[1]!);
    }
  }
  return spec;
}

/** A problem with a command, for the failure report. */
export interface Finding {
  /** Line of the command. */
  line: number;
  /** The command as written. */
  command: string;
  /** What is wrong. */
  problem: string;
}

/** Runs a program and returns its exit code and output. */
async function output(
  program: string,
  args: string[],
): Promise<{ code: number; text: string }> {
  const result = await new Deno.Command(program, {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: result.code,
    text: decoder.decode(result.stdout) + decoder.decode(result.stderr),
  };
}

/** Checks documents' commands; caches every `--help` it runs. */
export class CommandChecker {
  readonly #tasks: Record<string, string>;
  readonly #denoVersion: string | undefined;
  readonly #helps = new Map<string, Promise<{ code: number; text: string }>>();

  /**
   * @param tasks `deno.json`'s tasks.
   * @param denoVersion The Deno version the README may pin (`npx deno@X`).
   */
  constructor(tasks: Record<string, string>, denoVersion?: string) {
    this.#tasks = tasks;
    this.#denoVersion = denoVersion;
  }

  #help(args: string[]): Promise<{ code: number; text: string }> {
    const key = JSON.stringify(args);
    let help = this.#helps.get(key);
    if (!help) {
      help = output(Deno.execPath(), args);
      this.#helps.set(key, help);
    }
    return help;
  }

  /**
   * Checks every command.
   *
   * @param commands From {@linkcode shellCommands}.
   * @returns What is wrong, empty when nothing is.
   */
  async check(commands: ShellCommand[]): Promise<Finding[]> {
    const findings: Finding[] = [];
    for (const command of commands) {
      for (const problem of await this.#checkOne(command.words)) {
        findings.push({
          line: command.line,
          command: command.words.join(" "),
          problem,
        });
      }
    }
    return findings;
  }

  async #checkOne(words: string[]): Promise<string[]> {
    const [program, ...args] = words;
    if (program === "deno") return await this.#deno(args);
    if (program === "npx") {
      const rest = args[0] === "-y" || args[0] === "--yes"
        ? args.slice(1)
        : args;
      const pinned = /^deno@(.+)$/.exec(rest[0] ?? "");
      if (!pinned) return [`npx is only checked for deno@VERSION`];
      const problems = await this.#deno(rest.slice(1));
      if (this.#denoVersion && pinned[1] !== this.#denoVersion) {
        problems.push(
          `pins deno@${pinned[1]}, but the project uses ${this.#denoVersion}`,
        );
      }
      return problems;
    }
    if (program === "bash" || program === "sh") {
      const script = args[0];
      if (!script || !await isFile(script)) {
        return [`${script ?? "(no script)"} is not a file`];
      }
      const syntax = await output("bash", ["-n", script]);
      return syntax.code === 0 ? [] : [`bash -n failed: ${syntax.text}`];
    }
    if (program !== undefined && EXTERNAL_PROGRAMS.has(program)) return [];
    return [
      `unknown program ${program}: check it by hand and teach tests/_readme.ts about it`,
    ];
  }

  async #deno(args: string[]): Promise<string[]> {
    const [sub, ...rest] = args;
    if (sub === "task") {
      const [name, ...taskArgs] = rest;
      if (name === undefined) return ["deno task without a task name"];
      const task = this.#tasks[name];
      if (task === undefined) return [`deno.json has no task "${name}"`];
      if (taskArgs.length === 0) return [];
      const run = /^deno run ((?:--?\S+ )*)(\S+\.ts)$/.exec(task);
      if (!run) {
        return [
          `task "${name}" is not one "deno run" of a script: its arguments cannot be checked`,
        ];
      }
      return await this.#script(
        run[2]!,
        run[1]!.trim().split(" ").filter(Boolean),
        taskArgs,
      );
    }
    if (sub === "run") {
      const at = rest.findIndex((w) => !w.startsWith("-"));
      if (at < 0) return ["deno run without a script"];
      return await this.#script(
        rest[at]!,
        rest.slice(0, at),
        rest.slice(at + 1),
      );
    }
    if (sub === undefined) return ["deno without a subcommand"];
    // Another deno subcommand: its flags must be in its help, paths exist.
    const help = await this.#help([sub, "--help"]);
    if (help.code !== 0) return [`"deno ${sub}" is not a deno subcommand`];
    const problems: string[] = [];
    for (const word of rest) {
      if (word.startsWith("--")) {
        const flag = word.split("=")[0]!;
        if (!help.text.includes(flag)) {
          problems.push(`deno ${sub} has no ${flag}`);
        }
      } else if (/[/.]/.test(word) && !await exists(word)) {
        problems.push(`${word} does not exist`);
      }
    }
    return problems;
  }

  /** Checks `deno run <denoFlags> <script> <args>` against the script's help. */
  async #script(
    script: string,
    denoFlags: string[],
    args: string[],
  ): Promise<string[]> {
    if (!await isFile(script)) return [`${script} is not a file`];
    const base = ["run", "--quiet", ...denoFlags, script];
    const help = await this.#help([...base, "--help"]);
    if (help.code !== 0) {
      return [
        `"deno run ${[...denoFlags, script].join(" ")} --help" failed: ${
          help.text.trim().split("\n").at(-1)
        }`,
      ];
    }
    const spec = parseHelp(help.text);
    if (!spec) {
      // Not a Commander program: each flag and value must be in its usage.
      return args.filter((a) => !help.text.includes(a.split("=")[0]!))
        .map((a) => `${script} --help does not mention ${a}`);
    }
    const problems: string[] = [];
    let current = spec;
    let positional = 0;
    let name = script;
    let helpOnly = false; // --help prints help whatever the arguments
    for (let i = 0; i < args.length; i++) {
      const word = args[i]!;
      if (word.startsWith("-") && word !== "-") {
        const [flag, inline] = word.split(/=(.*)/s) as [string, string?];
        const option = current.options.get(flag);
        if (!option) {
          problems.push(`${name} has no option ${flag}`);
          continue;
        }
        if (flag === "--help" || flag === "-h") helpOnly = true;
        if (option.placeholder === undefined) {
          if (inline !== undefined) {
            problems.push(`${flag} takes no value`);
          }
          continue;
        }
        const optional = option.placeholder.startsWith("[");
        let value = inline;
        if (
          value === undefined &&
          (!optional || (args[i + 1] && !args[i + 1]!.startsWith("-")))
        ) {
          value = args[++i];
        }
        if (value === undefined) {
          if (!optional) problems.push(`${flag} needs a value`);
          continue;
        }
        const bad = await checkValue(flag, option.placeholder, value);
        if (bad) problems.push(bad);
        continue;
      }
      if (positional === 0 && current === spec && spec.commands.has(word)) {
        const sub = await this.#help([...base, word, "--help"]);
        const subSpec = sub.code === 0 ? parseHelp(sub.text) : undefined;
        if (!subSpec) {
          problems.push(`${script} ${word} --help failed`);
          return problems;
        }
        current = subSpec;
        name = `${script} ${word}`;
        continue;
      }
      positional++;
    }
    if (helpOnly) return problems;
    if (positional < current.required) {
      problems.push(
        `${name} needs ${current.required} argument(s), got ${positional}`,
      );
    }
    if (positional > current.most) {
      problems.push(
        `${name} takes at most ${current.most} argument(s), got ${positional}`,
      );
    }
    return problems;
  }
}

/** Checks an option value against what its placeholder names. */
async function checkValue(
  flag: string,
  placeholder: string,
  value: string,
): Promise<string | undefined> {
  // A variable stands for the reader's own value.
  if (value.includes("$")) return undefined;
  try {
    switch (placeholder.slice(1, -1)) {
      case "duration":
        parseDuration(value);
        break;
      case "port":
        parsePort(value);
        break;
      case "size":
      case "rate":
        parseBoundedSize(value, 0, Number.MAX_SAFE_INTEGER, flag);
        break;
      case "host:port":
        // `--tracker` takes several, separated by commas (failover).
        for (const one of value.split(",")) parseHostPort(one);
        break;
      case "dir":
        // A directory of the repository to share must exist (a download
        // directory is created; an absolute or ~ path is the reader's own).
        if (
          (flag === "--shared" || flag === "-s") && !isAbsolute(value) &&
          !value.startsWith("~")
        ) {
          if (!await isDirectory(value)) {
            return `${flag} ${value}: no such directory`;
          }
        }
        break;
    }
  } catch (error) {
    return `${flag} ${value}: ${(error as Error).message}`;
  }
  return undefined;
}

function resolve(path: string): string {
  return isAbsolute(path) ? path : join(ROOT, path);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(resolve(path));
    return true;
  } catch {
    return false;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(resolve(path))).isFile;
  } catch {
    return false;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(resolve(path))).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Local link targets of a Markdown document (`[text](path)` and
 * `![alt](path)`, not URLs or `#anchors`).
 *
 * @param markdown The document.
 * @returns The paths, without any `#fragment`.
 */
export function localLinks(markdown: string): string[] {
  const links: string[] = [];
  for (const [, target] of markdown.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^[a-z]+:/i.test(target!) || target!.startsWith("#")) continue;
    links.push(target!.split("#")[0]!);
  }
  return links;
}

/**
 * Task names mentioned in inline code anywhere in the document
 * (`` `deno task NAME …` ``).
 *
 * @param markdown The document.
 * @returns The names.
 */
export function inlineTasks(markdown: string): string[] {
  return [...markdown.matchAll(/`deno task ([\w:.-]+)/g)].map((m) => m[1]!);
}
