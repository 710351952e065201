/**
 * Where a download lands: the directory must be writable, the name must
 * stay inside it, and a different existing file is never replaced silently.
 *
 * @module
 */
import { dirname } from "node:path";
import { hashFile, type Manifest } from "../content/manifest.ts";
import { resolveForWrite } from "../content/names.ts";

/**
 * Fails with a clear error if nothing can be created in `dir` (made if
 * missing): a read-only or foreign directory, or one outside the process's
 * `--allow-write`.
 */
export async function checkWritable(dir: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.remove(
      await Deno.makeTempFile({ dir, prefix: ".shoal-write-check-" }),
    );
  } catch (error) {
    throw new Deno.errors.PermissionDenied(
      `Cannot download into ${dir}: the directory is not writable (${
        (error as Error).message.split("\n")[0]
      })`,
      { cause: error },
    );
  }
}

/**
 * Prepares the destination: refuses traversal and silent overwrites. An
 * existing file with the same content counts as complete.
 */
export async function prepareDestination(
  outDir: string,
  name: string,
  overwrite: boolean,
  manifest?: Manifest,
): Promise<{ path: string; complete: boolean }> {
  try {
    await Deno.mkdir(outDir, { recursive: true });
  } catch (error) {
    const message = `Cannot create download directory ${outDir}: ${
      (error as Error).message
    }`;
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new Deno.errors.PermissionDenied(message);
    }
    throw new Error(message, { cause: error });
  }
  const path = await resolveForWrite(outDir, name);
  await Deno.mkdir(dirname(path), { recursive: true });
  const existing = await Deno.lstat(path).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  });
  if (existing) {
    if (existing.isFile && manifest && existing.size === manifest.size) {
      const local = await hashFile(path, name, {
        chunkSize: manifest.chunkSize,
      });
      if (local.id === manifest.id) return { path, complete: true };
    }
    if (!overwrite) {
      throw new Deno.errors.AlreadyExists(
        `Cannot save ${name}: a different file already exists at ${path} (use --overwrite to replace it)`,
      );
    }
  }
  return { path, complete: false };
}
