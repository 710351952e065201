/**
 * The Shoal tracker command: keeps the live peers and what they share.
 * `deno run --allow-net tracker.ts [:9000] [--port 9000] [--host 0.0.0.0]`;
 * `--secret` (or `SHOAL_SECRET`, read with `--allow-env=SHOAL_SECRET`) makes
 * the swarm private; `--store redis://HOST:PORT` shares its state with other
 * trackers through Redis (that needs `--allow-env` for the Redis client).
 *
 * @module
 */
import { Command, CommanderError } from "commander";
import {
  errorLine,
  parseDuration,
  parsePort,
  plural,
  UsageError,
} from "./lib/cli/_cli.ts";
import { commandSecret } from "./lib/cli/_secret.ts";
import denoConfig from "./deno.json" with { type: "json" };
import {
  DEFAULT_MAX_FILES_PER_ADDRESS,
  DEFAULT_MAX_PEERS_PER_ADDRESS,
} from "./lib/tracker/registry.ts";
import { startTracker } from "./lib/tracker/server.ts";
import { parseRedisUrl } from "./lib/tracker/_redis_url.ts";

/** A store URL as printed: its scheme and nodes. */
function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//");
}

const program = new Command("tracker")
  .description(
    "Run a Shoal tracker (speaks Shoal's framed protocol and the seed JSON-line protocol).",
  )
  .argument("[listen]", "seed-style listen address, e.g. :9000")
  .option("-p, --port <port>", "port to listen on", "9000")
  .option("--host <host>", "address to bind", "0.0.0.0")
  .option("--interval <duration>", "heartbeat interval told to peers", "30s")
  .option(
    "--expiry <duration>",
    "drop a peer silent this long (default 3 × interval)",
  )
  .option("--max-files <n>", "most files one peer may announce", "10000")
  .option(
    "--max-peers-per-address <n>",
    "most peers (ports) registered from one IP address (IPv6: one /64)",
    String(DEFAULT_MAX_PEERS_PER_ADDRESS),
  )
  .option(
    "--max-files-per-address <n>",
    "most files all peers of one IP address (IPv6: one /64) may announce",
    String(DEFAULT_MAX_FILES_PER_ADDRESS),
  )
  .option(
    "--read-timeout <duration>",
    "close connections idle this long",
    "10s",
  )
  .option(
    "--write-timeout <duration>",
    "close a connection whose reply makes no progress this long (default: --read-timeout)",
  )
  .option("--max-connections <n>", "most open connections", "1024")
  .option(
    "--max-connections-per-address <n>",
    "most open connections from one IP",
    "64",
  )
  .option(
    "--rate-limit <n>",
    "requests per second accepted from one IP (0 = no limit)",
    "100",
  )
  .option(
    "--rate-burst <n>",
    "burst of requests allowed above the rate",
    "1000",
  )
  .option(
    "--trust-advertised-address",
    "use the host a peer advertises instead of its source address (NAT/dev)",
  )
  .option(
    "--secret <secret>",
    "shared secret of a private swarm, 16+ bytes (or env SHOAL_SECRET, which `ps` cannot show)",
  )
  .option(
    "--no-secret",
    "run an open swarm without reading SHOAL_SECRET (needed to run without --allow-env=SHOAL_SECRET)",
  )
  .option(
    "--no-seed-protocol",
    "do not answer seed-protocol (plaintext JSON-line) clients",
  )
  .option(
    "--no-plaintext",
    "refuse unencrypted framed connections (Shoal clients always encrypt)",
  )
  .option(
    "--store <store>",
    "where peers are kept: memory, redis://HOST:PORT[/DB] or redis-cluster://HOST:PORT[,HOST:PORT…] (shared by every tracker on it)",
    "memory",
  )
  .option("-q, --quiet", "print only errors")
  .version(denoConfig.version, "-V, --version", "print the version")
  .exitOverride()
  .configureOutput({
    writeErr: (text) => Deno.stderr.writeSync(new TextEncoder().encode(text)),
    // Commander's colour check reads env vars; no --allow-env needed without it.
    getOutHasColors: () => false,
    getErrHasColors: () => false,
  });

async function main(): Promise<number> {
  program.parse(Deno.args, { from: "user" });
  const opts = program.opts();
  const listen: string | undefined = program.args[0];
  let port = parsePort(opts.port);
  let host: string = opts.host;
  if (listen !== undefined) {
    const match = /^(.*):(\d+)$/.exec(listen);
    if (!match) {
      throw new UsageError(
        `Invalid listen address "${listen}": use :PORT or HOST:PORT`,
      );
    }
    port = parsePort(match[2]!);
    if (match[1]) host = match[1];
  }
  const interval = parseDuration(opts.interval, "--interval");
  const expiry = opts.expiry
    ? parseDuration(opts.expiry, "--expiry")
    : 3 * interval;
  if (expiry <= interval) {
    throw new UsageError(
      `Invalid --expiry "${opts.expiry}": it must be longer than --interval (${opts.interval}), or peers expire between heartbeats`,
    );
  }
  const maxFiles = Number(opts.maxFiles);
  if (!Number.isSafeInteger(maxFiles) || maxFiles < 1) {
    throw new UsageError(
      `Invalid --max-files "${opts.maxFiles}": use a positive integer`,
    );
  }
  const count = (flag: string, text: string, min: number): number => {
    const n = /^\d+$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n) || n < min) {
      throw new UsageError(
        `Invalid ${flag} "${text}": use an integer of at least ${min}`,
      );
    }
    return n;
  };
  const secret = await commandSecret(opts.secret, "tracker");
  const store: string = opts.store;
  if (store !== "memory") {
    try {
      parseRedisUrl(store);
    } catch {
      throw new UsageError(
        `Invalid --store "${store}": use memory, redis://HOST:PORT[/DB] or redis-cluster://HOST:PORT[,HOST:PORT…]`,
      );
    }
  }
  const log = (line: string) => {
    if (!opts.quiet) console.log(`${new Date().toISOString()} ${line}`);
  };
  let tracker;
  try {
    tracker = await startTracker({
      port,
      hostname: host,
      heartbeatIntervalMs: interval,
      expiryMs: expiry,
      maxFilesPerPeer: maxFiles,
      readTimeoutMs: parseDuration(opts.readTimeout, "--read-timeout"),
      ...(opts.writeTimeout !== undefined
        ? {
          writeTimeoutMs: parseDuration(opts.writeTimeout, "--write-timeout"),
        }
        : {}),
      maxPeersPerAddress: count(
        "--max-peers-per-address",
        opts.maxPeersPerAddress,
        1,
      ),
      maxFilesPerAddress: count(
        "--max-files-per-address",
        opts.maxFilesPerAddress,
        1,
      ),
      trustAdvertisedAddress: Boolean(opts.trustAdvertisedAddress),
      maxConnections: count("--max-connections", opts.maxConnections, 1),
      maxConnectionsPerAddress: count(
        "--max-connections-per-address",
        opts.maxConnectionsPerAddress,
        1,
      ),
      maxRequestsPerSecond: count("--rate-limit", opts.rateLimit, 0),
      requestBurst: count("--rate-burst", opts.rateBurst, 1),
      ...(secret !== undefined ? { secret } : {}),
      seedProtocol: opts.seedProtocol !== false,
      plaintext: opts.plaintext !== false,
      store,
    });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Error(
        `Cannot listen on ${host}:${port}: the address is in use (pick another --port)`,
      );
    }
    throw error;
  }
  tracker.addEventListener("register", (e) => {
    const { address, files } = e.detail;
    log(`register ${address} (${plural(files, "file")})`);
  });
  tracker.addEventListener(
    "unregister",
    (e) => log(`unregister ${e.detail.address}`),
  );
  // An outage is said once, on stderr, and its end once.
  tracker.addEventListener("store-unavailable", (e) => {
    console.error(
      `${
        new Date().toISOString()
      } store unavailable: ${e.detail.message} (answering store_unavailable until it is back)`,
    );
  });
  tracker.addEventListener(
    "store-available",
    () => log("store available again"),
  );
  tracker.addEventListener("protocol-error", (e) => {
    const { remote, message } = e.detail;
    log(`dropped ${remote}: ${message}`);
  });
  console.log(
    `Shoal tracker listening on ${host}:${tracker.port} (heartbeat ${interval} ms, expiry ${expiry} ms, store ${
      store === "memory" ? "memory" : redactUrl(store)
    }${secret !== undefined ? ", private swarm" : ", open swarm"})`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    Deno.addSignalListener("SIGINT", stop);
    if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop);
  });
  await tracker.close();
  log("stopped");
  return 0;
}

// Only when run as a program: importing this module neither exits nor prints.
if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (error) {
    if (error instanceof CommanderError) {
      Deno.exit(error.exitCode === 0 ? 0 : 2);
    }
    console.error(`tracker: ${errorLine(error)}`);
    Deno.exit(error instanceof UsageError ? 2 : 1);
  }
}
