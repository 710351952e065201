/**
 * Private: the dashboard's Server-Sent Events streams. Every client gets the
 * peer's state as a `state` event when it changes; a client that reads slowly
 * gets only the latest state, and one that stops reading is dropped.
 *
 * @module
 */
import { jsonError } from "./_http.ts";

const encoder = new TextEncoder();

/** Options for {@linkcode EventHub}. */
export interface EventHubOptions {
  /** Event streams open at once; more are refused with 503. @default {32} */
  maxStreams?: number;
  /**
   * How long an event may wait for a client that does not read before the
   * client is dropped (its connection closed).
   *
   * @default {30000}
   */
  stallMs?: number;
  /** Clock in milliseconds. @default {performance.now} */
  clock?: () => number;
}

/** Ends the stream of a client that stopped reading. */
export class SlowClientError extends Error {
  /** @param message Why the client was dropped. */
  constructor(message: string) {
    super(message);
    this.name = "SlowClientError";
  }
}

/**
 * One client. What it has not taken yet is at most the opening retry line,
 * one state event (a newer state replaces an older one: each is complete)
 * and one keep-alive comment, so its backlog never exceeds one snapshot.
 */
interface Client {
  controller: ReadableStreamDefaultController<Uint8Array>;
  head: string;
  state: string | null;
  ping: boolean;
  /** Resolves the pull waiting for data, when the client is reading. */
  wake: (() => void) | undefined;
  /** When data began waiting for a client that was not reading. */
  behindSince: number | null;
}

/** Fans one JSON snapshot out to every connected event stream. */
export class EventHub {
  readonly #snapshot: () => string;
  readonly #maxStreams: number;
  readonly #stallMs: number;
  readonly #clock: () => number;
  readonly #clients = new Set<Client>();
  #lastSent = "";
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  /**
   * @param snapshot Renders the current state as JSON.
   * @param options Limits on streams and on how far a client may fall behind.
   */
  constructor(snapshot: () => string, options: EventHubOptions = {}) {
    this.#snapshot = snapshot;
    this.#maxStreams = options.maxStreams ?? 32;
    this.#stallMs = options.stallMs ?? 30_000;
    this.#clock = options.clock ?? (() => performance.now());
  }

  /** Number of open streams. */
  get size(): number {
    return this.#clients.size;
  }

  /**
   * A new `text/event-stream` response that starts with the state now, or a
   * 503 reply when `maxStreams` are open already.
   */
  response(): Response {
    if (!this.#closed && this.#clients.size >= this.#maxStreams) {
      return jsonError(
        503,
        `Cannot open another event stream: ${this.#maxStreams} are open`,
      );
    }
    let client: Client | undefined;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        if (this.#closed) return controller.close();
        client = {
          controller,
          head: "retry: 2000\n\n",
          state: `event: state\ndata: ${this.#snapshot()}\n\n`,
          ping: false,
          wake: undefined,
          behindSince: this.#clock(),
        };
        this.#clients.add(client);
      },
      pull: () => {
        if (!client || !this.#clients.has(client) || this.#flush(client)) {
          return;
        }
        const waiting = client;
        return new Promise<void>((resolve) => waiting.wake = resolve);
      },
      cancel: () => {
        if (client) this.#forget(client);
      },
    }, { highWaterMark: 0 });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
      },
    });
  }

  /** Sends the state now if it changed, and drops clients that fell behind. */
  publish(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#clients.size === 0 || this.#closed) return;
    this.#dropStalled();
    const data = this.#snapshot();
    if (data === this.#lastSent) return;
    this.#lastSent = data;
    const event = `event: state\ndata: ${data}\n\n`;
    for (const client of this.#clients) {
      client.state = event;
      this.#offered(client);
    }
  }

  /** Sends the state within ~150 ms, folding bursts (progress) into one. */
  soon(): void {
    if (this.#closed) return;
    this.#timer ??= setTimeout(() => this.publish(), 150);
  }

  /** A comment line, so idle proxies keep the streams open. */
  ping(): void {
    this.#dropStalled();
    for (const client of this.#clients) {
      client.ping = true;
      this.#offered(client);
    }
  }

  /** Ends every stream. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    for (const client of [...this.#clients]) {
      this.#forget(client);
      try {
        client.controller.close();
      } catch {
        // The client went away first.
      }
    }
  }

  /** Hands the client what waits for it; false if nothing does. */
  #flush(client: Client): boolean {
    const text = client.head + (client.state ?? "") +
      (client.ping && client.state === null ? ": ping\n\n" : "");
    client.head = "";
    client.state = null;
    client.ping = false;
    client.behindSince = null;
    if (text === "") return false;
    try {
      client.controller.enqueue(encoder.encode(text));
    } catch {
      this.#forget(client);
    }
    return true;
  }

  /** New data waits for `client`: sent now if it is reading, else held. */
  #offered(client: Client) {
    const wake = client.wake;
    if (wake) {
      client.wake = undefined;
      this.#flush(client);
      wake();
    } else {
      client.behindSince ??= this.#clock();
    }
  }

  #dropStalled() {
    const now = this.#clock();
    for (const client of [...this.#clients]) {
      if (
        client.behindSince === null ||
        now - client.behindSince <= this.#stallMs
      ) continue;
      this.#forget(client);
      client.controller.error(
        new SlowClientError(
          `Dropped an event stream: its client read nothing for ${
            Math.round(now - client.behindSince)
          } ms`,
        ),
      );
    }
  }

  #forget(client: Client) {
    this.#clients.delete(client);
    const wake = client.wake;
    client.wake = undefined;
    wake?.();
  }
}
