/**
 * The typed event target every long-lived Shoal object (tracker, peer,
 * announcer) is: `addEventListener` knows each event's payload from an event
 * map, so listeners need no casts.
 *
 * @module
 */

/**
 * An `EventTarget` whose listeners are typed by the event map `M` (event
 * name → event type).
 *
 * @example Listening to a peer's progress with a typed payload
 * ```ts ignore
 * import { startPeer } from "@shoal/shoal";
 * await using peer = await startPeer({
 *   tracker: "127.0.0.1:9000",
 *   shared: "./shared",
 * });
 * peer.addEventListener("progress", (event) => {
 *   console.log(event.detail.name, event.detail.bytes);
 * });
 * ```
 */
export interface TypedEventTarget<M> extends EventTarget {
  /** Listens for an event of the map, with its typed payload. */
  addEventListener<K extends keyof M & string>(
    type: K,
    listener: (event: M[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Listens for any event. */
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Stops listening for an event of the map. */
  removeEventListener<K extends keyof M & string>(
    type: K,
    listener: (event: M[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  /** Stops listening for any event. */
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}
