/**
 * The network layer of Shoal, for building on its wire format: the
 * {@linkcode Transport} seam (TCP by default), length-prefixed framing of
 * opaque payloads, the {@linkcode Codec} that encodes control frames
 * ({@linkcode jsonCodec} by default), framed connections, address parsing and
 * rate limiting.
 *
 * @example Sending a frame over the default TCP transport
 * ```ts
 * import { encodeFrame, FrameDecoder, tcpTransport } from "@shoal/shoal/net";
 *
 * const listener = tcpTransport.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = await tcpTransport.dial(`127.0.0.1:${listener.addr.port}`);
 * const iterator = listener[Symbol.asyncIterator]();
 * const server = (await iterator.next()).value!;
 *
 * await client.write(encodeFrame({ kind: "json", message: { type: "ping" } }));
 * const decoder = new FrameDecoder();
 * const buffer = new Uint8Array(64);
 * let frames: ReturnType<FrameDecoder["push"]> = [];
 * while (frames.length === 0) {
 *   const n = await server.read(buffer);
 *   if (n === null) throw new Error("closed before a whole frame");
 *   frames = decoder.push(buffer.subarray(0, n));
 * }
 * if (frames[0]?.kind !== "json") throw new Error("expected a JSON frame");
 *
 * client.close();
 * server.close();
 * listener.close();
 * ```
 *
 * @module
 */
export {
  type DialOptions,
  type Duplex,
  tcpTransport,
  type Transport,
  type TransportListener,
} from "./transport.ts";
export { formatHostPort, type HostPort, parseHostPort } from "./address.ts";
export { type Codec, jsonCodec } from "./codec.ts";
export {
  type DataFrame,
  DEFAULT_MAX_FRAME_SIZE,
  encodeDataHeader,
  encodeFrame,
  encodeJsonFrame,
  type Frame,
  FrameDecoder,
  type FrameDecoderOptions,
  FrameDecoderStream,
  type FrameEncoderOptions,
  FrameEncoderStream,
  type JsonFrame,
} from "./wire.ts";
export {
  FrameConnection,
  type FrameConnectionOptions,
  writeAll,
  type Writer,
} from "./connection.ts";
export { TokenBucket } from "./rate_limit.ts";
export {
  ephemeralIdentity,
  generateIdentity,
  type Identity,
  identityFromPrivateKey,
  isKeyHex,
  keyFromHex,
  keyToHex,
  peerIdOf,
} from "./identity.ts";
export {
  HandshakeError,
  KeyMismatchError,
  secureAccept,
  secureConnect,
  type SecureConnectOptions,
  SecureDuplex,
  type SecureOptions,
  secureTransport,
} from "./secure.ts";
export { ProtocolError, TimeoutError } from "../errors.ts";
