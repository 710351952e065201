/**
 * Unit tests of the announce session with a fake tracker client and a fake
 * clock: no sockets, no real time.
 *
 * @module
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  type AnnounceClient,
  Announcer,
  type Clock,
} from "../lib/peer/announcer.ts";
import { RemoteError } from "../lib/errors.ts";
import type { FileAnnouncement } from "../lib/protocol/messages.ts";
import type { Registration } from "../lib/tracker/client.ts";

/** A clock whose sleeps end only when the test says so. */
class FakeClock implements Clock {
  time = 0;
  readonly #pending: { ms: number; end: () => void }[] = [];
  #notify: (() => void) | undefined;

  now(): number {
    return this.time;
  }

  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const entry = {
        ms,
        end: () => {
          signal.removeEventListener("abort", entry.end);
          const i = this.#pending.indexOf(entry);
          if (i >= 0) this.#pending.splice(i, 1);
          resolve();
        },
      };
      signal.addEventListener("abort", entry.end, { once: true });
      this.#pending.push(entry);
      this.#notify?.();
    });
  }

  /** Waits until the announcer sleeps; returns how long it asked for. */
  async nextSleep(): Promise<number> {
    while (this.#pending.length === 0) {
      await new Promise<void>((resolve) => this.#notify = resolve);
    }
    return this.#pending[0]!.ms;
  }

  /** Lets the pending sleep run out. */
  async elapse(): Promise<number> {
    const ms = await this.nextSleep();
    this.time += ms;
    this.#pending[0]!.end();
    return ms;
  }
}

/** Records calls; fails the next calls with queued errors. */
class FakeClient implements AnnounceClient {
  calls: string[] = [];
  failures: Error[] = [];
  registration: Registration = {
    address: "10.0.0.1:7000",
    heartbeatIntervalMs: 1000,
    expiryMs: 3000,
    deltas: true,
  };

  #call(call: string): Promise<void> {
    this.calls.push(call);
    const failure = this.failures.shift();
    return failure ? Promise.reject(failure) : Promise.resolve();
  }

  async register(_port: number, files: FileAnnouncement[]) {
    await this.#call(`register ${names(files)}`);
    return this.registration;
  }
  heartbeat(_port: number, files?: FileAnnouncement[]) {
    return this.#call(files ? `full ${names(files)}` : "heartbeat");
  }
  announceChanges(
    _port: number,
    seq: number,
    added: FileAnnouncement[],
    removed: string[],
  ) {
    return this.#call(`changes ${seq} +${names(added)} -${removed.join(",")}`);
  }
  unregister() {
    return this.#call("unregister");
  }
}

const names = (files: FileAnnouncement[]) => files.map((f) => f.name).join(",");
const file = (name: string): FileAnnouncement => ({
  name,
  id: name.padEnd(64, "0").replace(/[^0-9a-f]/g, "a"),
  size: 1,
});

/** An announcer over a mutable file list, with its fakes and events. */
function setup(options: { heartbeatIntervalMs?: number } = {}) {
  const clock = new FakeClock();
  const client = new FakeClient();
  const state = { files: [file("a")], version: 0, idle: 0 };
  const announcer = new Announcer({
    client,
    port: 7000,
    files: () => [...state.files],
    version: () => state.version,
    idle: () => {
      state.idle++;
      return Promise.resolve();
    },
    clock,
    ...options,
  });
  const events: string[] = [];
  const retries: number[] = [];
  for (const type of ["registered", "resync", "unknown-peer"] as const) {
    announcer.addEventListener(type, () => events.push(type));
  }
  announcer.addEventListener("tracker-error", (e) => {
    events.push("tracker-error");
    retries.push(e.detail.retryInMs);
  });
  const change = (files: FileAnnouncement[]) => {
    state.files = files;
    state.version++;
    announcer.wake();
  };
  return { clock, client, state, announcer, events, retries, change };
}

Deno.test("Announcer registers, then sends numbered changes and bare heartbeats", async () => {
  const { clock, client, state, announcer, events, change } = setup();
  announcer.start();
  assertEquals(await clock.nextSleep(), 1000, "the tracker's interval");
  assertEquals(client.calls, ["register a"]);
  assertEquals(announcer.address, "10.0.0.1:7000");
  assertEquals(announcer.connected, true);

  change([file("a"), file("b")]);
  await clock.nextSleep();
  change([file("b")]);
  await clock.nextSleep();
  assertEquals(state.idle, 0, "a wake does not rescan");
  await clock.elapse();
  await clock.nextSleep();
  assertEquals(state.idle, 1, "a heartbeat interval without a wake rescans");
  assertEquals(client.calls.slice(1), [
    "changes 1 +b -",
    "changes 2 + -a",
    "heartbeat",
  ]);
  await announcer.close();
  assertEquals(client.calls.at(-1), "unregister");
  assertEquals(events, ["registered"]);
});

Deno.test("Announcer sends the full list after a resync and numbers changes from 1 again", async () => {
  const { clock, client, announcer, events, change } = setup();
  announcer.start();
  await clock.nextSleep();
  change([file("a"), file("b")]);
  await clock.nextSleep();
  client.failures.push(new RemoteError("resync", "Missed announce 1"));
  change([file("b")]);
  await clock.nextSleep();
  change([file("b"), file("c")]);
  await clock.nextSleep();
  assertEquals(client.calls, [
    "register a",
    "changes 1 +b -",
    "changes 2 + -a",
    "full b",
    "changes 1 +c -",
  ]);
  assertEquals(events, ["registered", "resync"]);
  await announcer.close();
});

Deno.test("Announcer registers again with the full list when the tracker forgot it", async () => {
  const { clock, client, announcer, events, change } = setup();
  announcer.start();
  await clock.nextSleep();
  change([file("a"), file("b")]);
  await clock.nextSleep();
  client.failures.push(new RemoteError("unknown_peer", "Unknown peer"));
  await clock.elapse();
  assertEquals(await clock.nextSleep(), 1000);
  change([file("a"), file("b"), file("c")]);
  await clock.nextSleep();
  assertEquals(client.calls, [
    "register a",
    "changes 1 +b -",
    "heartbeat",
    "register a,b",
    "changes 1 +c -",
  ]);
  assertEquals(events, ["registered", "unknown-peer", "registered"]);
  await announcer.close();
});

Deno.test("Announcer sends full lists to a tracker without deltas", async () => {
  const { clock, client, announcer, change } = setup();
  client.registration = { ...client.registration, deltas: false };
  announcer.start();
  await clock.nextSleep();
  change([file("a"), file("b")]);
  await clock.nextSleep();
  assertEquals(client.calls, ["register a", "full a,b"]);
  await announcer.close();
});

Deno.test("Announcer backs off from an unreachable tracker, doubling up to the interval", async () => {
  const { clock, client, announcer, events, retries } = setup({
    heartbeatIntervalMs: 2000,
  });
  const refused = () => new Deno.errors.ConnectionRefused("Connection refused");
  client.failures.push(refused(), refused(), refused(), refused(), refused());
  announcer.start();
  const waits = [];
  for (let i = 0; i < 5; i++) waits.push(await clock.elapse());
  assertEquals(waits, [250, 500, 1000, 2000, 2000]);
  assertEquals(retries, waits);
  assertEquals(await clock.nextSleep(), 2000, "the configured interval");
  assertEquals(announcer.connected, true, "the sixth try registered");
  assertEquals(client.calls.length, 6);
  assertEquals(events.at(-1), "registered");
  assertEquals(clock.now(), 250 + 500 + 1000 + 2000 + 2000);

  // Success resets the backoff.
  client.failures.push(refused());
  await clock.elapse();
  assertEquals(await clock.nextSleep(), 250);
  assertEquals(announcer.connected, false);
  await announcer.close();
});

Deno.test("Announcer settles announceNow once the list was sent, or tried", async () => {
  const { clock, client, state, announcer } = setup();
  announcer.start();
  await clock.nextSleep();
  state.files = [file("a"), file("b")];
  state.version++;
  await announcer.announceNow();
  assertEquals(client.calls.at(-1), "changes 1 +b -");

  client.failures.push(new Deno.errors.ConnectionRefused("refused"));
  state.files = [file("b")];
  state.version++;
  await announcer.announceNow();
  assertEquals(announcer.connected, false);
  await announcer.close();
  await announcer.announceNow(); // resolves at once once closed
});

Deno.test("Announcer does not unregister when it never registered", async () => {
  const { clock, client, announcer } = setup();
  client.failures.push(new Deno.errors.ConnectionRefused("refused"));
  announcer.start();
  await clock.nextSleep();
  await announcer.close();
  assertEquals(client.calls, ["register a"]);
});
