/**
 * npm run pin            write the lock file of resolved store paths
 * npm run pin -- --check exit 1, naming each change, when the lock is stale
 */
import { parseCommand, runCli } from "../lib/cli.js";
import { lockDifferences, lockText, readLock, writeLock } from "../lib/lock.js";
import { NixError, resolveWithNix } from "../lib/nix.js";
import { settingsFile } from "../lib/paths.js";
import { loadSettings } from "../lib/settings.js";

await runCli(async () => {
  const args = parseCommand({
    usage: "npm run pin [-- --check]",
    does: "Writes the lock file (settings' lockFile) of the store paths nix eval resolves, for synth with INFRA_RESOLVE=pinned.",
    flags: { check: { help: "write nothing; exit 1, naming each change, when the lock is stale" } },
  });
  if (!args) return;
  const settings = loadSettings(settingsFile());
  // Read first: a lockFile that is not a lock stops --check before the evaluation, as in synth; writing replaces it.
  const replacing = (problem: string) => process.stderr.write(`pin: ${problem}; writing a new one\n`);
  const lock = readLock(settings.lockFile, settings.lockFile, args.flags.check ? undefined : replacing);
  // Nothing to compare with: say so before the evaluation.
  if (args.flags.check && !lock) {
    throw new NixError(`${settings.lockFile} does not exist, so there is nothing to check against; run \`npm run pin\` and commit ${settings.lockFile} (docs/github.md)`);
  }
  const resolved = await resolveWithNix(settings, { projectRoot: process.cwd() });
  if (args.flags.check && lock) {
    const changes = lockDifferences(lock, resolved);
    if (changes.length) throw new NixError(`${settings.lockFile} is stale; run \`npm run pin\`:\n  ${changes.join("\n  ")}`);
    process.stdout.write(`${settings.lockFile} is up to date\n`);
    return;
  }
  if (lock && lockText(lock) === lockText(resolved)) {
    process.stdout.write(`${settings.lockFile} unchanged\n`);
    return;
  }
  writeLock(settings.lockFile, resolved);
  process.stdout.write(`wrote ${settings.lockFile}\n`);
});
