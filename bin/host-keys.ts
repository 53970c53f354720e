/**
 * npm run host-keys -- pull|push
 * Keeps the host keys deploys record (<stateDir>/known_hosts/infra, ssh's
 * accept-new) beside the Terraform state, in the state bucket. A CI runner
 * starts without them, and would then trust every host on first use again;
 * the Actions cache, which held them before, drops them after a week unused.
 * deploy.yml pulls before the deploy and pushes after it.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { parseCommand, runCli } from "../lib/cli.js";
import { NixError } from "../lib/nix.js";
import { INFRA_STACK, knownHostsFile, settingsFile } from "../lib/paths.js";
import { loadSettings } from "../lib/settings.js";
import { oneLine } from "../lib/text.js";

const USAGE = "npm run host-keys -- pull|push";

/** Runs gcloud; on failure, what it said, on one line. */
async function gcloud(args: string[]): Promise<string | undefined> {
  const run = await execa("gcloud", args, { reject: false });
  if (run.exitCode === 0) return undefined;
  if ((run as { code?: string }).code === "ENOENT") return "gcloud is not on PATH (install the Google Cloud CLI)";
  return oneLine((run.stderr || run.message || `exit ${run.exitCode}`).trim().split(/\s*\n\s*/).join(" "));
}

async function pull(uri: string, local: string): Promise<void> {
  const describe = await gcloud(["storage", "objects", "describe", uri, "--format=value(name)"]);
  if (describe !== undefined) {
    // As constructs/gce-image.sh reads gcloud's answer; anything else must stop the deploy, not let it trust on first use.
    if (!/not found|NotFound|404/.test(describe)) throw new NixError(`cannot tell whether ${uri} holds host keys: ${describe}`);
    process.stdout.write(`none recorded yet at ${uri}: this deploy records each host's key on first contact\n`);
    return;
  }
  const temp = mkdtempSync(join(tmpdir(), "host-keys-"));
  try {
    const download = join(temp, "known_hosts");
    const failed = await gcloud(["storage", "cp", uri, download]);
    if (failed !== undefined) throw new NixError(`cannot download ${uri}: ${failed}`);
    const keys = readFileSync(download);
    if (existsSync(local)) {
      if (readFileSync(local).equals(keys)) {
        process.stdout.write(`${local} already holds ${uri}\n`);
        return;
      }
      // Merging would keep a key the other copy may have replaced on purpose: a person decides.
      throw new NixError(
        `${local} differs from ${uri}; compare them (gcloud storage cat ${uri} | diff - ${local}), ` +
          `then move ${local} aside and pull again, or push it to replace the bucket's copy`,
      );
    }
    mkdirSync(dirname(local), { recursive: true });
    writeFileSync(local, keys);
    process.stdout.write(`pulled ${uri} to ${local}\n`);
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
}

async function push(uri: string, local: string): Promise<void> {
  if (!existsSync(local)) {
    process.stdout.write(`nothing to save: ${local} does not exist (no host was contacted)\n`);
    return;
  }
  const failed = await gcloud(["storage", "cp", local, uri]);
  if (failed !== undefined) throw new NixError(`cannot save ${local} to ${uri}, so the next deploy would trust the hosts this one met first on first use again: ${failed}`);
  process.stdout.write(`saved ${local} to ${uri}\n`);
}

await runCli(async () => {
  const command = {
    usage: USAGE,
    does: "Copies the deploys' known_hosts file, <stateDir>/known_hosts/infra, from the state bucket (pull) or to it (push); deploy.yml pulls before the deploy and pushes after it.",
    positionals: { min: 1, max: 1, name: "pull|push", help: "pull: the bucket's copy to this machine (refused over a different local file); push: the local file to the bucket" },
  };
  const parsed = parseCommand(command);
  if (!parsed) return;
  const [action] = parsed.positionals;
  if (action !== "pull" && action !== "push") throw new NixError(`unknown action ${action} (pull or push); usage: ${USAGE}`);
  const file = settingsFile();
  const settings = loadSettings(file);
  if (settings.backend.type !== "gcs") {
    throw new NixError(
      `${file}: backend is "local", so there is no state bucket to keep the host keys in; ` +
        `set "backend": {"type": "gcs", "bucket": "<state bucket>"} (docs/github.md), or keep ${knownHostsFile(settings.stateDir, INFRA_STACK)} on this machine`,
    );
  }
  const uri = `gs://${settings.backend.bucket}/${settings.backend.prefix}/known_hosts/${INFRA_STACK}`;
  const local = knownHostsFile(settings.stateDir, INFRA_STACK);
  await (action === "pull" ? pull(uri, local) : push(uri, local));
});
