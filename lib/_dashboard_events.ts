/**
 * Private: the dashboard's Server-Sent Events stream. Every client gets the
 * peer's state as a `state` event when it changes, coalesced and deduplicated.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Fans one JSON snapshot out to every connected event stream. */
export class EventHub {
  readonly #snapshot: () => string;
  readonly #streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  #lastSent = "";
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  /** @param snapshot Renders the current state as JSON. */
  constructor(snapshot: () => string) {
    this.#snapshot = snapshot;
  }

  /** A new `text/event-stream` response that starts with the state now. */
  response(): Response {
    let self: ReadableStreamDefaultController<Uint8Array> | undefined;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        self = controller;
        if (this.#closed) return controller.close();
        this.#streams.add(controller);
        this.#send(controller, "retry: 2000\n\n");
        this.#send(controller, `event: state\ndata: ${this.#snapshot()}\n\n`);
      },
      cancel: () => {
        if (self) this.#streams.delete(self);
      },
    });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
      },
    });
  }

  /** Sends the state now if it changed. */
  publish(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#streams.size === 0 || this.#closed) return;
    const data = this.#snapshot();
    if (data === this.#lastSent) return;
    this.#lastSent = data;
    for (const controller of this.#streams) {
      this.#send(controller, `event: state\ndata: ${data}\n\n`);
    }
  }

  /** Sends the state within ~150 ms, folding bursts (progress) into one. */
  soon(): void {
    if (this.#closed) return;
    this.#timer ??= setTimeout(() => this.publish(), 150);
  }

  /** A comment line, so idle proxies keep the streams open. */
  ping(): void {
    for (const controller of this.#streams) {
      this.#send(controller, ": ping\n\n");
    }
  }

  /** Ends every stream. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    for (const controller of this.#streams) {
      try {
        controller.close();
      } catch {
        // The client went away first.
      }
    }
    this.#streams.clear();
  }

  #send(controller: ReadableStreamDefaultController<Uint8Array>, text: string) {
    try {
      controller.enqueue(encoder.encode(text));
    } catch {
      this.#streams.delete(controller);
    }
  }
}
