import { mkdir, realpath } from "node:fs/promises";
import { dirname, join } from "node:path";
import { FtxError } from "../errors.ts";
import { unsafeNameReason } from "./core/safe-name.ts";
import { isInside } from "./walk.ts";

/**
 * Where a fetched name lands under the output folder. The name must be safe, and the folder it lands
 * in, once created and resolved, must still be inside the output folder: a symlink planted in DIR
 * cannot redirect a download elsewhere.
 */
export async function destinationFor(outDirReal: string, name: string): Promise<string> {
  const reason = unsafeNameReason(name);
  if (reason) throw new FtxError("E_UNSAFE_NAME", `${JSON.stringify(name)} is not a safe name (${reason})`);
  const target = join(outDirReal, ...name.split("/"));
  const parent = dirname(target);
  try {
    await mkdir(parent, { recursive: true });
  } catch (err) {
    throw new FtxError("E_IO", `cannot create folder for ${name}: ${(err as Error).message}`);
  }
  const parentReal = await realpath(parent);
  if (!isInside(outDirReal, parentReal)) throw new FtxError("E_UNSAFE_NAME", `${JSON.stringify(name)} would be written outside the output folder`);
  return join(parentReal, target.slice(parent.length + 1));
}

export async function prepareOutputDir(dir: string): Promise<string> {
  try {
    await mkdir(dir, { recursive: true });
    return await realpath(dir);
  } catch (err) {
    throw new FtxError("E_IO", `cannot create output folder ${dir}: ${(err as Error).message}`);
  }
}
