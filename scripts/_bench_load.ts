/**
 * Private load generator of the tracker benchmark, run as a Worker so that
 * sending load never delays the main thread's latency measurements: paced
 * heartbeats (each simulated peer once per interval), or a closed loop of
 * back-to-back heartbeats for a throughput reading.
 *
 * @module
 */
import { TrackerClient } from "../lib/tracker/client.ts";

/**
 * Where simulated peer `i` says it serves: its own host (10.x.y.z), so the
 * peers spread over networks and, on a cluster, over hash slots, as peers on
 * the Internet would (the tracker runs with `--trust-advertised-address`).
 *
 * @param i Index of the peer.
 * @returns Its advertised host and port.
 */
export function simulatedPeer(i: number): { host: string; port: number } {
  return {
    host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    port: 7000,
  };
}

/** What the worker is asked to do. */
export interface LoadTask {
  /** `paced`: each peer once per interval; `closed`: as fast as answered. */
  mode: "paced" | "closed";
  /** Trackers; closed-loop connections are spread over them in turn. */
  trackers: string[];
  /** Simulated peers `0 … peers - 1` (see {@linkcode simulatedPeer}). */
  peers: number;
  /** Paced: the heartbeat interval, ms. */
  intervalMs: number;
  /** How long to run, ms. */
  durationMs: number;
  /** Most requests in flight. */
  concurrency: number;
  /** This worker's share of the peers: `index` of `of`. */
  index: number;
  /** Number of workers sharing the peers. */
  of: number;
  /** Encrypt each tracker connection, as peers do by default. */
  encryption: boolean;
}

/** What the worker reports when done. */
export interface LoadResult {
  /** Latency of each heartbeat, ms. */
  latencies: number[];
  /** Heartbeats answered `ok`. */
  ok: number;
  /** Heartbeats that failed. */
  errors: number;
  /** How long it ran, ms. */
  elapsedMs: number;
}

async function run(task: LoadTask): Promise<LoadResult> {
  const clients = task.trackers.map((a) =>
    new TrackerClient(a, { encryption: task.encryption })
  );
  const latencies: number[] = [];
  let ok = 0;
  let errors = 0;
  const start = performance.now();
  const stop = start + task.durationMs;
  const mine = (n: number) => task.index + (n * task.of) % task.peers;
  const beat = async (n: number, client: TrackerClient) => {
    const t = performance.now();
    try {
      const { host, port } = simulatedPeer(mine(n) % task.peers);
      await client.heartbeat(port, undefined, host);
      latencies.push(performance.now() - t);
      ok++;
    } catch {
      errors++;
    }
  };
  if (task.mode === "closed") {
    let n = 0;
    await Promise.all(
      Array.from({ length: task.concurrency }, async (_, lane) => {
        const client = clients[lane % clients.length]!;
        while (performance.now() < stop) await beat(n++, client);
      }),
    );
  } else {
    const perMs = task.peers / task.of / task.intervalMs;
    let sent = 0;
    const pending = new Set<Promise<void>>();
    while (performance.now() < stop) {
      const due = Math.floor((performance.now() - start) * perMs);
      while (sent < due && pending.size < task.concurrency) {
        const p = beat(sent++, clients[0]!).finally(() => pending.delete(p));
        pending.add(p);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await Promise.all(pending);
  }
  return { latencies, ok, errors, elapsedMs: performance.now() - start };
}

/**
 * Runs a load task in a new Worker.
 *
 * @param task What to send.
 * @returns What it measured.
 */
export function runLoadWorker(task: LoadTask): Promise<LoadResult> {
  const worker = new Worker(import.meta.url, { type: "module" });
  return new Promise<LoadResult>((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<LoadResult>) => {
      worker.terminate();
      resolve(event.data);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      worker.terminate();
      reject(new Error(`Load worker failed: ${event.message}`));
    };
    worker.postMessage(task);
  });
}

// Inside a worker: run the task posted and post back the result.
if ("WorkerGlobalScope" in globalThis) {
  const scope = globalThis as unknown as {
    onmessage: ((event: MessageEvent<LoadTask>) => void) | null;
    postMessage(result: LoadResult): void;
  };
  scope.onmessage = async (event) => {
    scope.postMessage(await run(event.data));
  };
}
