/**
 * Private cache of the chunk server: a few open files per connection, keyed
 * by content id, reused chunk after chunk.
 *
 * @module
 */

/**
 * A few open files, oldest closed first, keyed by content id: a file replaced
 * on disk gets a new id, so a stale handle is never reused for it. The path
 * is resolved (and checked to stay inside its directory) once, on open.
 */
export class OpenFiles {
  #files = new Map<string, Deno.FsFile>();
  constructor(readonly max: number) {}
  async open(id: string, path: () => Promise<string>): Promise<Deno.FsFile> {
    const cached = this.#files.get(id);
    if (cached) return cached;
    const file = await Deno.open(await path(), { read: true });
    if (this.#files.size >= this.max) {
      const [oldest, handle] = this.#files.entries().next().value!;
      handle.close();
      this.#files.delete(oldest);
    }
    this.#files.set(id, file);
    return file;
  }
  close(): void {
    for (const file of this.#files.values()) file.close();
    this.#files.clear();
  }
}
