/**
 * Private worker that computes SHA-256 of chunk buffers off the main thread.
 * Buffers are transferred in and back, never copied.
 *
 * @module
 */
import { createHash } from "node:crypto";

interface HashJob {
  id: number;
  buffer: ArrayBuffer;
  offset: number;
  length: number;
}

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<HashJob>) => void) | null;
  postMessage(message: unknown, transfer: Transferable[]): void;
};

scope.onmessage = ({ data }) => {
  const hex = createHash("sha256")
    .update(new Uint8Array(data.buffer, data.offset, data.length))
    .digest("hex");
  scope.postMessage({ id: data.id, buffer: data.buffer, hex }, [data.buffer]);
};
