/**
 * The Shoal peer command: an interactive prompt (default), a headless daemon
 * (`--daemon`), and one-shot `list`, `peers` and `download` for scripts.
 *
 * @module
 */
import { Command, CommanderError } from "commander";
import { formatBytes } from "./lib/content/_bytes.ts";
import {
  errorLine,
  parseBoundedSize,
  parseDuration,
  parsePort,
  plural,
  renderProgress,
  UsageError,
} from "./lib/cli/_cli.ts";
import { commandSecret } from "./lib/cli/_secret.ts";
import { nearestWord } from "./lib/cli/_suggest.ts";
import denoConfig from "./deno.json" with { type: "json" };
import { parseHostPort } from "./lib/net/address.ts";
import { type Dashboard, startDashboard } from "./lib/dashboard/dashboard.ts";
import { DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE } from "./lib/content/manifest.ts";
import { type Peer, startPeer } from "./lib/peer/node.ts";
import type { ScanProgress } from "./lib/share/share.ts";
import { TrackerClient } from "./lib/tracker/client.ts";
import { resolveTarget } from "./lib/download/_target.ts";
import {
  describeResult,
  EXIT,
  formatList,
  formatPeers,
  Interrupted,
  jsonError,
  jsonLine,
  resultJson,
  sortFiles,
  uploadedLine,
} from "./lib/cli/_output.ts";
import { download, type DownloadProgress } from "./lib/download/transfer.ts";
import {
  type BatchProgress,
  type BatchResult,
  downloadBatch,
  isBatchTarget,
} from "./lib/download/batch.ts";
import { Prompt } from "./lib/cli/_prompt.ts";
import { TokenBucket } from "./lib/net/rate_limit.ts";
import { MAX_CHUNK_SIZE } from "./lib/net/wire.ts";

const encoder = new TextEncoder();
const isTty = Deno.stdout.isTerminal();

interface CommonOptions {
  tracker: string;
  fsync?: boolean;
  maxDownloadRate?: string;
  json?: boolean;
  out?: string;
  shared?: string;
  overwrite?: boolean;
  secret?: string | boolean;
  unverified?: boolean;
  stallTimeout?: string;
  /** `false` with `--no-encryption`. */
  encryption?: boolean;
}

/** Flags only the one-shot `download` has. */
interface DownloadCommandOptions extends CommonOptions {
  seed?: string;
  port?: string;
  host?: string;
  maxUploadRate?: string;
}

/** The per-download flags every command shares. */
function downloadFlags(
  opts: CommonOptions,
): {
  overwrite: boolean;
  fsync: boolean;
  allowUnverified: boolean;
  stallTimeoutMs?: number;
} {
  return {
    overwrite: Boolean(opts.overwrite),
    fsync: Boolean(opts.fsync),
    allowUnverified: Boolean(opts.unverified),
    ...(opts.stallTimeout !== undefined
      ? { stallTimeoutMs: parseDuration(opts.stallTimeout, "--stall-timeout") }
      : {}),
  };
}

/**
 * The secret of a private swarm: `--secret`, else `SHOAL_SECRET`; stops
 * when the environment may not be read (unless `--no-secret`).
 */
async function swarmSecret(
  opts: CommonOptions,
): Promise<{ secret?: string; encryption?: false }> {
  const plain = opts.encryption === false ? { encryption: false as const } : {};
  const secret = await commandSecret(opts.secret, "peer");
  return secret === undefined ? plain : { secret, ...plain };
}

/** `--tracker`: one `HOST:PORT`, or several separated by commas (failover). */
function trackerAddress(text: string): string {
  try {
    return text.split(",").map((one) => {
      const { hostname, port } = parseHostPort(one.trim(), "127.0.0.1");
      return hostname.includes(":")
        ? `[${hostname}]:${port}`
        : `${hostname}:${port}`;
    }).join(",");
  } catch {
    throw new UsageError(
      `Invalid --tracker "${text}": use HOST:PORT, e.g. localhost:9000, or several separated by commas`,
    );
  }
}

function parseRate(text: string | undefined, flag: string): number {
  return text === undefined ? 0 : parseBoundedSize(text, 1024, 2 ** 40, flag);
}

function parseHashJobs(value: unknown): number {
  const jobs = Number(value);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) {
    throw new UsageError(
      `Invalid --hash-jobs "${String(value)}": use an integer from 1 to 64`,
    );
  }
  return jobs;
}

/** Prints first-scan hashing progress, at most once a second. */
function scanProgressPrinter(): (p: ScanProgress) => void {
  let last = 0;
  return (p) => {
    const now = performance.now();
    const done = p.files === p.totalFiles;
    if (p.totalBytes < 64 * 1024 * 1024 && p.totalFiles < 1000) return;
    if (!done && p.files > 0 && now - last < 1000) return;
    last = now;
    console.log(
      `hashing ${p.files}/${p.totalFiles} files, ${formatBytes(p.bytes)} of ${
        formatBytes(p.totalBytes)
      }${done ? " (done)" : ""}`,
    );
  };
}

/**
 * Prints progress: a redrawn bar on a TTY, a line per ~10 % otherwise (and
 * always through `print`, as the prompt's background lines are).
 */
function progressPrinter(
  print?: (line: string) => void,
): (p: DownloadProgress) => void {
  let lastDecile = -1;
  let lastDraw = 0;
  return (p) => {
    if (isTty && !print) {
      const now = performance.now();
      if (now - lastDraw < 100 && p.bytes < p.size) return;
      lastDraw = now;
      Deno.stdout.writeSync(encoder.encode(`\r${renderProgress(p)}\x1b[K`));
      return;
    }
    const decile = p.size === 0 ? 10 : Math.floor((p.bytes / p.size) * 10);
    if (decile === lastDecile) return;
    lastDecile = decile;
    (print ?? console.log)(
      `progress ${p.name} ${renderProgress(p).replace(/^\[[#-]*\] /, "")}`,
    );
  };
}

/** One line of a folder or glob download's overall progress. */
function renderBatchProgress(p: BatchProgress): string {
  return `${p.filesDone}/${p.files} files ${
    renderProgress({
      id: null,
      name: p.target,
      size: p.size,
      bytes: p.bytes,
      received: 0,
      chunksDone: 0,
      chunks: 0,
      rate: p.rate,
      eta: p.eta,
      sources: p.sources,
    })
  }${p.failed ? `, ${p.failed} failed` : ""}`;
}

/** Like {@linkcode progressPrinter}, for a whole folder or glob. */
function batchProgressPrinter(
  print?: (line: string) => void,
): (p: BatchProgress) => void {
  let lastStep = "";
  let lastDraw = 0;
  return (p) => {
    if (isTty && !print) {
      const now = performance.now();
      if (now - lastDraw < 100 && p.filesDone < p.files) return;
      lastDraw = now;
      Deno.stdout.writeSync(
        encoder.encode(`\r${renderBatchProgress(p)}\x1b[K`),
      );
      return;
    }
    const decile = p.size === 0 ? 10 : Math.floor((p.bytes / p.size) * 10);
    const step = `${decile} ${p.filesDone}`;
    if (step === lastStep) return;
    lastStep = step;
    (print ?? console.log)(
      `progress ${p.target} ${
        renderBatchProgress(p).replace(/\[[#-]*\] /, "")
      }`,
    );
  };
}

/** The per-file summary of a folder or glob download, then a total line. */
function describeBatch(batch: BatchResult): string[] {
  const lines = batch.files.map((f) =>
    f.ok && f.result
      ? `  ok      ${f.name} (${formatBytes(f.result.size)})${
        f.result.alreadyComplete ? " already here" : ""
      }${f.result.verified ? ", verified" : ", NOT verified"}`
      : `  FAILED  ${f.name}: ${f.error}`
  );
  const ok = batch.files.length - batch.failed;
  lines.push(
    `Downloaded ${ok} of ${
      plural(batch.files.length, "file")
    } matching ${batch.target} (${formatBytes(batch.received)} received in ${
      (batch.elapsedMs / 1000).toFixed(2)
    } s)${batch.failed ? `; ${batch.failed} failed` : ""}`,
  );
  return lines;
}

async function runDownload(
  target: string,
  opts: DownloadCommandOptions,
): Promise<void> {
  if (opts.seed !== undefined) {
    return await runSeedingDownload(
      target,
      opts,
      parseDuration(opts.seed, "--seed"),
    );
  }
  const rate = parseRate(opts.maxDownloadRate, "--max-download-rate");
  if (isBatchTarget(target)) {
    const batchOptions = {
      tracker: trackerAddress(opts.tracker),
      ...await swarmSecret(opts),
      ...(rate ? { limiter: new TokenBucket(rate) } : {}),
      outDir: opts.out ?? opts.shared ?? ".",
      ...downloadFlags(opts),
      ...(opts.json ? {} : { onBatchProgress: batchProgressPrinter() }),
    };
    const batch = await interruptible(
      target,
      (signal) => downloadBatch(target, { ...batchOptions, signal }),
    );
    if (opts.json) {
      console.log(jsonLine({
        ...batch,
        files: batch.files.map(({ result, cause: _cause, ...f }) => ({
          ...f,
          ...(result ? { path: result.path, size: result.size } : {}),
        })),
      }));
    } else {
      if (isTty) Deno.stdout.writeSync(encoder.encode("\n"));
      for (const line of describeBatch(batch)) console.log(line);
    }
    if (batch.failed > 0) {
      throw new Error(
        `${batch.failed} of ${batch.files.length} files matching ${target} failed`,
      );
    }
    return;
  }
  const onProgress = opts.json ? () => {} : progressPrinter();
  const options = {
    tracker: trackerAddress(opts.tracker),
    ...await swarmSecret(opts),
    ...(rate ? { limiter: new TokenBucket(rate) } : {}),
    outDir: opts.out ?? opts.shared ?? ".",
    ...downloadFlags(opts),
    onProgress,
  };
  const result = await interruptible(
    target,
    (signal) => download(target, { ...options, signal }),
  );
  if (opts.json) {
    console.log(resultJson(result));
    return;
  }
  if (isTty) Deno.stdout.writeSync(encoder.encode("\n"));
  console.log(describeResult(result));
}

/**
 * Runs a one-shot download that Ctrl-C (SIGINT) or SIGTERM cancels: the
 * verified part is kept, and the command exits 130.
 */
async function interruptible<T>(
  target: string,
  run: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, stop);
  try {
    const result = await run(controller.signal);
    // A batch ends with its remaining files failed rather than rejecting.
    if (controller.signal.aborted) throw controller.signal.reason;
    return result;
  } catch (error) {
    if (controller.signal.aborted) {
      throw new Interrupted(
        `Cancelled ${target}; the verified part is kept for a resume`,
      );
    }
    throw error;
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, stop);
  }
}

/**
 * `download --seed <duration>`: the download runs inside a peer that shares
 * the download directory, so its verified chunks are served to the other
 * downloaders as they arrive, and the peer lingers serving for `seedMs`
 * after (SIGINT or SIGTERM ends it early), then prints what it uploaded.
 */
async function runSeedingDownload(
  target: string,
  opts: DownloadCommandOptions,
  seedMs: number,
): Promise<void> {
  // Only a folder named on the command line is ever shared.
  const shared = opts.shared ?? opts.out;
  if (shared === undefined) {
    throw new UsageError(
      "Cannot seed without a folder to share: name the download folder with --out <dir> (or --shared <dir>); the working directory is never shared by default",
    );
  }

  await using peer = await startPeer({
    tracker: trackerAddress(opts.tracker),
    ...await swarmSecret(opts),
    shared,
    ...(opts.out ? { out: opts.out } : {}),
    port: parsePort(opts.port ?? "0"),
    hostname: opts.host ?? "0.0.0.0",
    maxUploadRate: parseRate(opts.maxUploadRate, "--max-upload-rate"),
    maxDownloadRate: parseRate(opts.maxDownloadRate, "--max-download-rate"),
  });
  const result = await interruptible(target, (signal) =>
    peer.download(target, {
      ...downloadFlags(opts),
      signal,
      ...(opts.json ? {} : { onProgress: progressPrinter() }),
    }));
  if (!opts.json) {
    if (isTty) Deno.stdout.writeSync(encoder.encode("\n"));
    console.log(describeResult(result));
    console.log(
      `Seeding from ${peer.shares.root} on port ${peer.port} for ${
        seedMs / 1000
      } s`,
    );
  }
  await new Promise<void>((resolve) => {
    const stop = () => {
      clearTimeout(timer);
      Deno.removeSignalListener("SIGINT", stop);
      if (Deno.build.os !== "windows") {
        Deno.removeSignalListener("SIGTERM", stop);
      }
      resolve();
    };
    const timer = setTimeout(stop, seedMs);
    Deno.addSignalListener("SIGINT", stop);
    if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop);
  });
  const { uploaded } = peer.status();
  console.log(
    opts.json
      ? resultJson(result, { uploaded, peer: peer.id })
      : uploadedLine(uploaded),
  );
}

const HELP = `Commands:
  list [query]            files on the network (substring or glob: *.txt)
  peers <name|id>         who holds a file
  download <name|id>      fetch a file (in the background) into the download directory
  download <folder/|glob> fetch every matching file: docs/ or '*.iso' (no quotes here)
  cancel <name|id>        stop a download (its verified part is kept for a resume)
  status                  this peer's shares, downloads and uploads
  help                    this text
  exit                    unregister and quit
Up and Down recall earlier commands; Tab completes commands and names.`;

/** Downloads started at the prompt, by the target typed. */
const background = new Map<string, AbortController>();
/** Prints a background line (above the prompt, once it runs). */
let notice: (line: string) => void = (line) => console.log(line);
/** Prints a background warning on stderr (above the prompt, once it runs). */
let warn: (line: string) => void = (line) => console.error(line);

/** Download flags given on the command line, applied to prompt downloads. */
let downloadDefaults: ReturnType<typeof downloadFlags> = {
  overwrite: false,
  fsync: false,
  allowUnverified: false,
};

async function handleLine(peer: Peer, line: string): Promise<boolean> {
  const [command = "", ...rest] = line.trim().split(/\s+/);
  const arg = rest.join(" ");
  switch (command) {
    case "":
      return true;
    case "list":
    case "ls":
      console.log(formatList(await peer.list(arg || undefined), arg));
      return true;
    case "peers":
      if (!arg) {
        const status = peer.status();
        console.log(`This peer: ${status.address ?? "(not registered yet)"}`);
        return true;
      }
      console.log(formatPeers(arg, await peer.peers(arg)));
      return true;
    case "download":
    case "get": {
      if (!arg) {
        console.log("Usage: download <name|id>");
        return true;
      }
      if (background.has(arg)) {
        console.log(`Already downloading ${arg}; type status to follow it.`);
        return true;
      }
      // Downloads run in the background so the prompt stays usable: a
      // progress line per ~10 % shows above the line being typed, status
      // shows them all, cancel stops one, and the result is printed when it
      // ends.
      const controller = new AbortController();
      background.set(arg, controller);
      const say = (line: string) => notice(line);
      const running = isBatchTarget(arg)
        ? peer.downloadBatch(arg, {
          ...downloadDefaults,
          signal: controller.signal,
          onBatchProgress: batchProgressPrinter(say),
        }).then((batch) => describeBatch(batch).forEach(say))
        : peer.download(arg, {
          ...downloadDefaults,
          signal: controller.signal,
          onProgress: progressPrinter(say),
        }).then((result) => say(describeResult(result)));
      running.catch((error) => {
        if (controller.signal.aborted) {
          say(`Cancelled ${arg}; the verified part is kept for a resume.`);
        } else {
          say(`error: ${errorLine(error)}`);
        }
      }).finally(() => background.delete(arg));
      console.log(
        `Downloading ${arg} in the background; type status to follow it.`,
      );
      return true;
    }
    case "cancel": {
      const controller = background.get(arg);
      if (!controller) {
        console.log(`No download of "${arg}" is running.`);
        return true;
      }
      controller.abort();
      return true;
    }
    case "status": {
      const s = peer.status();
      console.log(`Peer id ${s.id}`);
      console.log(
        `Address ${s.address ?? "(not registered)"}; tracker ${
          s.trackerConnected ? "connected" : "unreachable"
        }; sharing ${s.shared} file${s.shared === 1 ? "" : "s"}`,
      );
      for (const d of s.downloads) {
        console.log(`  download ${d.name} ${renderProgress(d)}`);
      }
      for (const u of s.uploads) {
        console.log(
          `  upload to ${u.remote}: ${formatBytes(u.bytes)} in ${
            plural(u.chunks, "chunk")
          }`,
        );
      }
      if (s.downloads.length === 0 && s.uploads.length === 0) {
        console.log("  idle");
      }
      return true;
    }
    case "help":
    case "?":
      console.log(HELP);
      return true;
    case "exit":
    case "quit":
      return false;
    default: {
      const near = nearestWord(command, PROMPT_COMMANDS);
      console.log(
        `Unknown command "${command}".${
          near ? ` Did you mean "${near}"?` : ""
        } Type help for the list.`,
      );
      return true;
    }
  }
}

/** The prompt's commands, for Tab completion. */
const PROMPT_COMMANDS = [
  "list",
  "peers",
  "download",
  "cancel",
  "status",
  "help",
  "exit",
  "quit",
];

/** The network's names, listed at most every few seconds for completion. */
let networkNames: { at: number; names: Promise<string[]> } | undefined;

/**
 * Names to complete after `command`: running downloads for `cancel`, else
 * the network's names (listed at most every 5 s, waited for at most 2 s)
 * and the shared ones.
 */
async function completionNames(
  peer: Peer,
  command: string,
): Promise<string[]> {
  if (command === "cancel") return [...background.keys()];
  const now = performance.now();
  if (!networkNames || now - networkNames.at > 5000) {
    networkNames = {
      at: now,
      names: peer.list().then((files) => files.map((f) => f.name), () => []),
    };
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const network = await Promise.race([
    networkNames.names,
    new Promise<string[]>((resolve) => timer = setTimeout(resolve, 2000, [])),
  ]);
  clearTimeout(timer);
  const local = command === "peers"
    ? peer.shares.files().map((f) => f.name)
    : [];
  return [...new Set([...network, ...local])];
}

/** Says which local files are not shared and why (the first ten). */
function scanSkipPrinter(): (name: string, reason: string) => void {
  let skipped = 0;
  return (_name, reason) => {
    skipped++;
    if (skipped <= 10) console.error(`not sharing: ${reason}`);
    else if (skipped === 11) {
      console.error("not sharing: more files skipped for their names");
    }
  };
}

async function runPeer(
  opts: CommonOptions & Record<string, string | boolean | undefined>,
): Promise<void> {
  const shared = opts.shared as string | undefined;
  if (shared === undefined) {
    throw new UsageError(
      "Missing --shared <dir>: name the folder this peer shares (downloads go there too unless --out says otherwise); the working directory is never shared by default",
    );
  }

  downloadDefaults = downloadFlags(opts);
  const peer = await startPeer({
    tracker: trackerAddress(opts.tracker),
    ...await swarmSecret(opts),
    shared,
    port: parsePort(String(opts.port ?? "0")),
    hostname: String(opts.host ?? "0.0.0.0"),
    chunkSize: parseBoundedSize(
      String(opts.chunkSize ?? DEFAULT_CHUNK_SIZE),
      MIN_CHUNK_SIZE,
      MAX_CHUNK_SIZE,
      "--chunk-size",
    ),
    ...(opts.out ? { out: opts.out } : {}),
    maxUploadRate: parseRate(
      opts.maxUploadRate as string | undefined,
      "--max-upload-rate",
    ),
    maxDownloadRate: parseRate(
      opts.maxDownloadRate as string | undefined,
      "--max-download-rate",
    ),
    ...(opts.state ? { stateDir: String(opts.state) } : {}),
    ...(opts.advertiseHost
      ? { advertiseHost: String(opts.advertiseHost) }
      : {}),
    ...(opts.heartbeat
      ? {
        heartbeatIntervalMs: parseDuration(
          String(opts.heartbeat),
          "--heartbeat",
        ),
      }
      : {}),
    includeHidden: Boolean(opts.includeHidden),
    watch: opts.watch !== false,
    ...(opts.settle
      ? { stableMs: parseDuration(String(opts.settle), "--settle") }
      : {}),
    ...(opts.hashJobs ? { hashConcurrency: parseHashJobs(opts.hashJobs) } : {}),
    seedProtocol: opts.seedProtocol !== false,
    plaintext: opts.plaintext !== false,
    onScanProgress: scanProgressPrinter(),
    onScanSkip: scanSkipPrinter(),
  }).catch((error) => {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Error(
        `Cannot listen on port ${opts.port}: it is in use (pick another --port)`,
      );
    }
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        `Cannot share ${shared}: no such directory (check --shared)`,
      );
    }
    throw error;
  });
  const log = (line: string) => console.log(line);
  let seedNoticed = false;
  peer.addEventListener("registered", (e) => {
    if (e.detail.protocol === "seed" && !seedNoticed) {
      seedNoticed = true;
      log(
        `tracker ${opts.tracker} speaks only the seed protocol: registered as ${e.detail.address} by file name; what it lists downloads whole and NOT verified (needs --unverified)`,
      );
    }
    if (opts.daemon) log(`registered as ${e.detail.address}`);
  });
  let trackerDown = false;
  peer.addEventListener("tracker-error", (e) => {
    if (!trackerDown) {
      const { message, refused } = e.detail;
      warn(
        `${
          refused || /private|authenticate/.test(message)
            ? "tracker refused this peer"
            : "tracker unreachable"
        }: ${message} (retrying)`,
      );
    }
    trackerDown = true;
  });
  peer.addEventListener("registered", () => trackerDown = false);
  peer.addEventListener("watch-error", (e) => {
    warn(
      `${e.detail.message} (rescanning at each heartbeat instead)`,
    );
  });
  const files = peer.shares.files();
  const bytes = files.reduce((sum, f) => sum + f.size, 0);
  console.log(
    `Shoal peer serving ${plural(files.length, "file")} (${
      formatBytes(bytes)
    }) from ${peer.shares.root} on port ${peer.port}`,
  );
  console.log(`Peer id ${peer.id}`);
  let dashboard: Dashboard | undefined;
  if (opts.httpPort !== undefined) {
    const httpPort = parsePort(String(opts.httpPort));
    dashboard = await startDashboard(peer, {
      port: httpPort,
      hostname: String(opts.httpHost ?? "127.0.0.1"),
      ...(typeof opts.httpToken === "string" ? { token: opts.httpToken } : {}),
    }).catch(async (error) => {
      await peer.close();
      if (error instanceof Deno.errors.AddrInUse) {
        throw new Error(
          `Cannot serve the dashboard on port ${httpPort}: it is in use (pick another --http-port)`,
        );
      }
      throw error;
    });
    // The token is the dashboard's password: only this line shows it.
    console.log(`Dashboard on ${dashboard.pageUrl}`);
    for (const url of dashboard.urls.slice(1)) {
      console.log(`Dashboard also on ${url}#token=${dashboard.token}`);
    }
  }

  const stopped = new Promise<void>((resolve) => {
    Deno.addSignalListener("SIGINT", () => resolve());
    if (Deno.build.os !== "windows") {
      Deno.addSignalListener("SIGTERM", () => resolve());
    }
  });
  if (opts.daemon) {
    await stopped;
  } else {
    console.log('Type "help" for commands.');
    const prompt = new Prompt({
      commands: PROMPT_COMMANDS,
      nameCommands: ["download", "get", "peers", "cancel"],
      names: (command) => completionNames(peer, command),
      onLine: async (line) => {
        try {
          return await handleLine(peer, line);
        } catch (error) {
          console.log(`error: ${errorLine(error)}`);
          return true;
        }
      },
    });
    notice = (line) => prompt.print(line);
    warn = (line) => prompt.print(line, true);
    await Promise.race([prompt.run(), stopped]);
    prompt.close();
    if (background.size > 0) {
      console.log(
        `Stopping ${
          plural(background.size, "download")
        }; the verified parts are kept for a resume.`,
      );
      for (const controller of background.values()) controller.abort();
    }
  }
  const { uploaded } = peer.status();
  await dashboard?.close();
  await peer.close();
  console.log(`${uploadedLine(uploaded)} Unregistered; bye.`);
}

/** What `--shared` and `--out` mean for a command that downloads. */
interface FolderHelp {
  shared: string;
  out: string;
}

/**
 * The flags every command has (tracker, JSON, secret) and, with `folders`,
 * those of a command that downloads.
 */
function withCommon(command: Command, folders?: FolderHelp): Command {
  command
    // Commander's colour check reads env vars; no --allow-env needed without it.
    .configureOutput({
      getOutHasColors: () => false,
      getErrHasColors: () => false,
    })
    .option(
      "-t, --tracker <host:port>",
      "tracker address; several separated by commas fail over in order",
      "localhost:9000",
    );
  if (folders) {
    command
      .option("-s, --shared <dir>", folders.shared)
      .option("-o, --out <dir>", folders.out)
      .option(
        "--overwrite",
        "replace an existing different file when downloading",
      )
      .option(
        "--fsync",
        "flush a download to disk before renaming it into place",
      )
      .option(
        "--unverified",
        "when only seed-protocol peers have a file, take their bytes although they cannot be verified (the size is checked)",
      )
      .option(
        "--stall-timeout <duration>",
        "give a download up when no chunk verified for this long (its verified part is kept)",
        "30s",
      )
      .option(
        "--max-download-rate <rate>",
        "download cap in bytes/s, e.g. 512K or 50M (default: none)",
      );
  }
  return command
    .option("--json", "print machine-readable JSON (see docs/json.md)")
    .option(
      "--secret <secret>",
      "shared secret of a private swarm, 16+ bytes (or env SHOAL_SECRET, which `ps` cannot show)",
    )
    .option(
      "--no-secret",
      "open swarm: do not read SHOAL_SECRET (needed to run without --allow-env=SHOAL_SECRET)",
    )
    .option(
      "--no-encryption",
      "talk to the tracker and peers in plaintext (benchmarks, trusted networks only)",
    );
}

const program = withCommon(
  new Command("peer"),
  {
    shared: "directory to share, and to download into unless --out; required",
    out: "download directory (default: the shared directory)",
  },
)
  .description("Run a Shoal peer: an interactive prompt by default.")
  .option("-p, --port <port>", "port to serve on (0: any free port)", "0")
  .option("--host <host>", "address to bind", "0.0.0.0")
  .option("--chunk-size <size>", "chunk size, 4096 to 16M", "1M")
  .option("--state <dir>", "state directory (default <shared>/.shoal)")
  .option(
    "--include-hidden",
    "share dot-files and dot-folders too (.shoalignore patterns still apply)",
  )
  .option("--no-watch", "rescan at each heartbeat instead of watching")
  .option(
    "--settle <duration>",
    "how long a changed file must stay unchanged before it is announced",
    "500ms",
  )
  .option("--hash-jobs <n>", "files hashed at once", "2")
  .option(
    "--advertise-host <host>",
    "host to advertise (only trackers run with --trust-advertised-address use it)",
  )
  .option(
    "--heartbeat <duration>",
    "heartbeat interval (default: the tracker's)",
  )
  .option(
    "--max-upload-rate <rate>",
    "upload cap in bytes/s over all connections, e.g. 50M (default: none)",
  )
  .option("--daemon", "run headless until SIGINT/SIGTERM")
  .option(
    "--no-seed-protocol",
    "do not answer seed-protocol (plaintext JSON-line) clients",
  )
  .option(
    "--no-plaintext",
    "refuse unencrypted framed connections (Shoal peers always encrypt)",
  )
  .option("--http-port <port>", "serve the web dashboard on this port")
  .option(
    "--http-host <host>",
    "address the dashboard binds (keep it loopback unless you mean it)",
    "127.0.0.1",
  )
  .option(
    "--http-token <token>",
    "dashboard token, 16-256 of A-Z a-z 0-9 - . _ ~ (default: random at each start; other users see it in ps)",
  )
  .version(denoConfig.version, "-V, --version", "print the version")
  .enablePositionalOptions()
  .helpCommand("help [command]", "show the options of a command")
  // A word that names no command gets a suggestion, not "too many arguments".
  .allowExcessArguments()
  .action(async (opts, command: Command) => {
    if (command.args.length > 0) return commandWord(command.args);
    await runPeer(opts);
  })
  .exitOverride()
  .configureOutput({
    writeErr: (text) => Deno.stderr.writeSync(encoder.encode(text)),
  });

program.addCommand(
  withCommon(new Command("list"))
    .description("List files on the network.")
    .argument("[query]", "substring or glob")
    .action(async (query: string | undefined, opts: CommonOptions) => {
      const files = await new TrackerClient(
        trackerAddress(opts.tracker),
        await swarmSecret(opts),
      ).list(query);
      console.log(
        opts.json
          ? jsonLine({ query: query ?? null, files: sortFiles(files) })
          : formatList(files, query),
      );
    })
    .exitOverride(),
);
program.addCommand(
  withCommon(new Command("peers"))
    .description("Show who holds a file.")
    .argument(
      "<target>",
      "file name, content id, or its first 8+ characters",
    )
    .action(async (target: string, opts: CommonOptions) => {
      const client = new TrackerClient(
        trackerAddress(opts.tracker),
        await swarmSecret(opts),
      );
      const peers = await client.getPeers(
        await resolveTarget(target, (query) => client.list(query)),
      );
      console.log(
        opts.json ? jsonLine({ target, peers }) : formatPeers(target, peers),
      );
    })
    .exitOverride(),
);
program.addCommand(
  withCommon(new Command("download"), {
    shared:
      "download into this directory when --out is not given; with --seed, the directory shared meanwhile (default: --out)",
    out:
      "download directory (default: --shared, else the current directory, which is never shared)",
  })
    .description(
      "Download a file by name or content id, verified (or a folder/ or glob).",
    )
    .argument(
      "<target>",
      "file name, content id or its first 8+ characters, folder/ or glob",
    )
    .option(
      "--seed <duration>",
      "share the download directory meanwhile (verified chunks served as they arrive) and keep serving this long after, e.g. 30s (default: off)",
    )
    .option("-p, --port <port>", "port to serve on with --seed", "0")
    .option("--host <host>", "address to bind with --seed", "0.0.0.0")
    .option(
      "--max-upload-rate <rate>",
      "upload cap with --seed in bytes/s, e.g. 8M (default: none)",
    )
    .action(async (target: string, opts: DownloadCommandOptions) =>
      await runDownload(target, opts)
    )
    .exitOverride(),
);

/** The one-shot commands, as typed. */
const COMMANDS = ["list", "peers", "download", "help"] as const;

/** A word that names no command: say which command is nearest. */
function commandWord(words: string[]): never {
  const word = words[0] ?? "";
  const near = nearestWord(word, COMMANDS);
  throw new UsageError(
    `Unknown command "${word}"${
      near ? `: did you mean "${near}"?` : ""
    } (commands: ${COMMANDS.join(", ")}; peer --help lists the options)`,
  );
}

// Only when run as a program: importing this module neither exits nor prints.
if (import.meta.main) {
  try {
    await program.parseAsync(Deno.args, { from: "user" });
    Deno.exit(EXIT.ok);
  } catch (error) {
    const code = error instanceof CommanderError
      ? (error.exitCode === 0 ? EXIT.ok : EXIT.usage)
      : error instanceof UsageError
      ? EXIT.usage
      : error instanceof Interrupted
      ? EXIT.interrupted
      : EXIT.failed;
    // With --json, a script reads the failure from stdout too.
    const json = Deno.args.includes("--json");
    if (error instanceof CommanderError) {
      if (json && code !== EXIT.ok) {
        console.log(jsonError(error.message.replace(/^error: /, ""), code));
      }
      Deno.exit(code);
    }
    if (isTty && !json) Deno.stdout.writeSync(encoder.encode("\n"));
    const line = errorLine(error);
    if (json) console.log(jsonError(line, code));
    console.error(`peer: ${line}`);
    Deno.exit(code);
  }
}
