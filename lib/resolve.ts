/** Chooses how store paths are resolved at synth: `nix eval` (default) or the lock file. */
import { resolve as resolvePath } from "node:path";
import { lockDifferences, readLock, resolveFromLock } from "./lock.js";
import { NixError, resolveWithNix, type Resolved } from "./nix.js";
import type { Settings } from "./settings.js";

export type ResolveMode = "eval" | "pinned";

export function resolveMode(value: string | undefined): ResolveMode {
  if (value === undefined || value === "" || value === "eval") return "eval";
  if (value === "pinned") return "pinned";
  throw new NixError(`INFRA_RESOLVE is "${value}"; use "eval" (default, runs nix eval) or "pinned" (reads the lock file)`);
}

export interface ResolveOptions {
  readonly projectRoot: string;
  readonly mode: ResolveMode;
  readonly log?: (line: string) => void;
}

/** The planned store paths for the settings. In eval mode, warns when an existing lock is stale. */
export async function resolveOutputs(settings: Settings, options: ResolveOptions): Promise<Resolved> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const lockFile = resolvePath(options.projectRoot, settings.lockFile);
  if (options.mode === "pinned") {
    const lock = readLock(lockFile, settings.lockFile);
    if (!lock) throw new NixError(`INFRA_RESOLVE=pinned but ${settings.lockFile} does not exist; run \`npm run pin\` on a machine with Nix and network access (it evaluates the flake, fetching its inputs), and commit the lock`);
    return resolveFromLock(settings, lock, settings.lockFile);
  }
  // Read first: a lockFile that is not a lock stops synth before the evaluation, like other settings errors.
  const lock = readLock(lockFile, settings.lockFile);
  const resolved = await resolveWithNix(settings, { projectRoot: options.projectRoot, log });
  if (lock) {
    const changes = lockDifferences(lock, resolved);
    if (changes.length) {
      log(`warning: ${settings.lockFile} is stale (${changes.length} change(s)); run \`npm run pin\`:\n  ${changes.join("\n  ")}`);
    }
  }
  return resolved;
}
