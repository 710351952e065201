/**
 * The announce session of a peer with its tracker: register with the full
 * list, then heartbeats carrying only what changed (numbered, so the tracker
 * can ask for a resync), re-register when forgotten, back off when unreachable.
 *
 * @module
 */
import { RemoteError } from "../errors.ts";
import type { FileAnnouncement } from "../protocol/messages.ts";
import { diffAnnouncements } from "../share/share.ts";
import type { Registration, TrackerProtocol } from "../tracker/client.ts";

/** What the announcer needs of a tracker client (`TrackerClient` fits). */
export interface AnnounceClient {
  /** Registers with the full list. */
  register(
    port: number,
    files: FileAnnouncement[],
    host?: string,
  ): Promise<Registration>;
  /** A heartbeat, with a new full list when given. */
  heartbeat(
    port: number,
    files?: FileAnnouncement[],
    host?: string,
  ): Promise<void>;
  /** A heartbeat carrying only what changed, numbered `seq`. */
  announceChanges(
    port: number,
    seq: number,
    added: FileAnnouncement[],
    removed: string[],
    host?: string,
  ): Promise<void>;
  /** Leaves the network. */
  unregister(port: number, host?: string): Promise<void>;
}

/** Time as the announcer sees it; tests pass a fake one. */
export interface Clock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  /** Resolves after `ms`, or at once when `signal` is aborted. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

/**
 * The real clock: `performance.now()` and `setTimeout`.
 *
 * @example Sleeping until aborted
 * ```ts ignore
 * await systemClock.sleep(1000, AbortSignal.timeout(10));
 * ```
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done, { once: true });
    }),
};

/** Options for {@linkcode Announcer}. */
export interface AnnouncerOptions {
  /** The tracker. */
  client: AnnounceClient;
  /** The port this peer serves on. */
  port: number;
  /** Host to advertise. @default {undefined} */
  host?: string;
  /** Everything to announce now. */
  files: () => FileAnnouncement[];
  /** A number that changes whenever `files()` may have changed. */
  version: () => number;
  /**
   * Heartbeat interval; by default the one the tracker asks for.
   *
   * @default {undefined}
   */
  heartbeatIntervalMs?: number;
  /** Called after a heartbeat interval passed without a wake (a rescan). */
  idle?: () => Promise<void>;
  /** First delay after a failure, ms; doubled up to the interval. @default {250} */
  initialBackoffMs?: number;
  /** Timers. @default {systemClock} */
  clock?: Clock;
}

/** What an announce sent. */
export type AnnounceKind = "register" | "heartbeat" | "full" | "changes";

/** Events an {@linkcode Announcer} emits. */
export interface AnnouncerEventMap {
  /**
   * Registered (or re-registered) with the tracker; `protocol` is `seed`
   * for a tracker that speaks only the seed protocol.
   */
  registered: CustomEvent<{ address: string; protocol: TrackerProtocol }>;
  /** A call succeeded; `seq` is the last change number sent (0 after a full list). */
  announced: CustomEvent<{ kind: AnnounceKind; seq: number; version: number }>;
  /** The tracker missed a numbered announce; the full list follows. */
  resync: CustomEvent<Record<never, never>>;
  /** The tracker forgot this peer; it registers again. */
  "unknown-peer": CustomEvent<Record<never, never>>;
  /** The tracker could not be reached or refused a call; retried after `retryInMs`. */
  "tracker-error": CustomEvent<
    { message: string; refused: boolean; retryInMs: number }
  >;
}

/**
 * Keeps a peer registered with a tracker until closed.
 *
 * @example Announcing through a tracker client
 * ```ts ignore
 * const announcer = new Announcer({
 *   client: new TrackerClient(address),
 *   port,
 *   files: () => shares.announcements(),
 *   version: () => shares.version,
 * });
 * announcer.start();
 * await announcer.announceNow();
 * await announcer.close();
 * ```
 */
export class Announcer extends EventTarget {
  readonly #o: AnnouncerOptions;
  readonly #clock: Clock;
  readonly #stop = new AbortController();
  #wake = new AbortController();
  #loop: Promise<void> | undefined;
  #registered = false;
  #useDeltas = false;
  #resync = false;
  #seq = 0;
  #announcedVersion = -1;
  #interval: number;
  /** What the tracker holds for us, by name (first entry per name wins). */
  #announced = new Map<string, FileAnnouncement>();
  /** Callers of announceNow() waiting for an announce of at least `version`. */
  #waiters: { version: number; resolve: () => void }[] = [];
  /** The address the tracker gives out for this peer, once registered. */
  address: string | null = null;
  /** Whether the last tracker call succeeded. */
  connected = false;
  /** The last failure {@linkcode Announcer.observe} reported. */
  #observedError: string | undefined;

  /**
   * Creates a session; nothing is sent until {@linkcode Announcer.start}.
   *
   * @param options Client, port, what to announce and timers.
   */
  constructor(options: AnnouncerOptions) {
    super();
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#interval = options.heartbeatIntervalMs ?? 30_000;
  }

  /** Whether the tracker holds a registration for this peer. */
  get registered(): boolean {
    return this.#registered;
  }

  /** Starts the session. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /**
   * Takes note of another call to the same tracker: a failure to reach it
   * marks the session disconnected at once (with a `tracker-error`), so
   * every view of the peer agrees; a success while disconnected announces
   * now instead of after the back-off.
   *
   * @param error The failure, or `undefined` for a success.
   */
  observe(error?: Error): void {
    if (this.#stop.signal.aborted) return;
    if (error === undefined) {
      if (!this.connected) this.wake();
      return;
    }
    if (!this.connected && this.#observedError === error.message) return;
    this.connected = false;
    this.#observedError = error.message;
    this.#emit("tracker-error", {
      message: error.message,
      refused: false,
      retryInMs: 0,
    });
  }

  /** Announces at once (the list changed). */
  wake(): void {
    this.#wake.abort();
  }

  /**
   * Announces now.
   *
   * @returns Resolves once the tracker was sent the current list (or was tried).
   */
  announceNow(): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.#stop.signal.aborted) return resolve();
      this.#waiters.push({ version: this.#o.version(), resolve });
      this.#wake.abort();
    });
  }

  /** Stops the session without unregistering. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  /** Stops the session and unregisters. */
  async close(): Promise<void> {
    await this.stop();
    if (this.#registered) {
      this.#registered = false;
      await this.#o.client.unregister(this.#o.port, this.#o.host).catch(
        () => {},
      );
    }
  }

  #emit<K extends keyof AnnouncerEventMap>(
    type: K,
    detail: AnnouncerEventMap[K]["detail"],
  ): void {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #settle(version: number): void {
    const ready = this.#waiters.filter((w) => w.version <= version);
    this.#waiters = this.#waiters.filter((w) => w.version > version);
    for (const w of ready) w.resolve();
  }

  async #run(): Promise<void> {
    const stop = this.#stop.signal;
    let backoff = this.#o.initialBackoffMs ?? 250;
    while (!stop.aborted) {
      const version = this.#o.version();
      try {
        const kind = await this.#announce(version);
        this.#announcedVersion = version;
        this.connected = true;
        this.#observedError = undefined;
        backoff = this.#o.initialBackoffMs ?? 250;
        this.#emit("announced", { kind, seq: this.#seq, version });
        this.#settle(version);
        await this.#rest();
      } catch (error) {
        if (stop.aborted) break;
        if (error instanceof RemoteError && error.code === "unknown_peer") {
          this.#registered = false;
          this.#emit("unknown-peer", {});
          continue;
        }
        if (error instanceof RemoteError && error.code === "resync") {
          this.#resync = true;
          this.#emit("resync", {});
          continue;
        }
        this.connected = false;
        this.#settle(version);
        this.#emit("tracker-error", {
          message: (error as Error).message,
          refused: error instanceof RemoteError,
          retryInMs: backoff,
        });
        await this.#clock.sleep(backoff, stop);
        backoff = Math.min(backoff * 2, this.#interval);
      }
    }
    this.#settle(Infinity);
  }

  /** Sleeps until the next heartbeat or a wake; rescans when not woken. */
  async #rest(): Promise<void> {
    if (!this.#wake.signal.aborted) {
      await this.#clock.sleep(
        this.#interval,
        AbortSignal.any([this.#stop.signal, this.#wake.signal]),
      );
    }
    if (this.#wake.signal.aborted) this.#wake = new AbortController();
    else await this.#o.idle?.().catch(() => {});
  }

  /** Sends one call: register, heartbeat, full list or changes. */
  async #announce(version: number): Promise<AnnounceKind> {
    const { client, port, host } = this.#o;
    if (!this.#registered) {
      const files = this.#o.files();
      const registration = await client.register(port, files, host);
      this.#registered = true;
      this.#useDeltas = registration.deltas;
      this.#resync = false;
      this.#seq = 0;
      this.#announced = byName(files);
      this.address = registration.address;
      this.#interval = this.#o.heartbeatIntervalMs ??
        registration.heartbeatIntervalMs;
      this.#emit("registered", {
        address: registration.address,
        protocol: registration.protocol ?? "shoal",
      });
      return "register";
    }
    if (version === this.#announcedVersion) {
      await client.heartbeat(port, undefined, host);
      return "heartbeat";
    }
    const files = this.#o.files();
    if (!this.#useDeltas || this.#resync) {
      await client.heartbeat(port, files, host);
      this.#resync = false;
      this.#seq = 0;
      this.#announced = byName(files);
      return "full";
    }
    const { added, removed } = diffAnnouncements(this.#announced, files);
    let kind: AnnounceKind = "heartbeat";
    if (added.length === 0 && removed.length === 0) {
      await client.heartbeat(port, undefined, host);
    } else {
      await client.announceChanges(port, this.#seq + 1, added, removed, host);
      this.#seq++;
      kind = "changes";
    }
    this.#announced = byName(files);
    return kind;
  }
}

/** Typed listeners for {@linkcode AnnouncerEventMap}. */
export interface Announcer {
  /** Listens for an announcer event. */
  addEventListener<K extends keyof AnnouncerEventMap>(
    type: K,
    listener: (event: AnnouncerEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Listens for any event. */
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Stops listening for an announcer event. */
  removeEventListener<K extends keyof AnnouncerEventMap>(
    type: K,
    listener: (event: AnnouncerEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  /** Stops listening for any event. */
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

function byName(files: FileAnnouncement[]): Map<string, FileAnnouncement> {
  const map = new Map<string, FileAnnouncement>();
  for (const file of files) if (!map.has(file.name)) map.set(file.name, file);
  return map;
}
