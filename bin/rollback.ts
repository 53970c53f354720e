/**
 * npm run rollback -- <host> [--address IP] [--instance-id ID] [--instance-name NAME]
 * Switches the host back to its previous NixOS system generation over the
 * same SSH path deploys use (IAP or direct). Address and instance id come
 * from the stack's Terraform outputs unless given.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { isIP } from "node:net";
import { stripVTControlCharacters } from "node:util";
import { parseCommand, runCli } from "../lib/cli.js";
import { NixError } from "../lib/nix.js";
import { hostOutputId, type HostOutputKey } from "../lib/names.js";
import { INFRA_STACK, knownHostsFile, settingsFile } from "../lib/paths.js";
import { loadSettings } from "../lib/settings.js";
import { terraformBinary, terraformMissing } from "../lib/terraform.js";
import { oneLine } from "../lib/text.js";
import type { SshEnv } from "../constructs/deploy-rs.js";

const COMMAND = {
  usage: "npm run rollback -- <host> [--address IP] [--instance-id ID] [--instance-name NAME]",
  does: "Switches <host> back to its previous NixOS system generation over the SSH path deploys use; what is not given comes from the stack's Terraform outputs.",
  positionals: { min: 1, max: 1, name: "<host>", help: "a key of the settings' hosts" },
  flags: {
    address: { value: "IP", help: "the host's external IPv4 address or DNS name (direct SSH hosts)" },
    "instance-id": { value: "ID", help: "the instance's numeric id, which the host key is pinned to" },
    "instance-name": { value: "NAME", help: "the instance's name (hosts with recreateOnImageChange)" },
  },
};

/** A DNS name: dot-separated labels of letters, digits and inner hyphens. */
const DNS_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i;

/**
 * The flags' values, checked before anything runs: the instance id is half the
 * host key's alias, so a wrong one would have ssh trust any key under a new alias.
 */
function checkFlags(host: string, address: string | undefined, instanceId: string | undefined): void {
  // Digits and dots only are a mistyped address (999.1.1.1), not a name.
  if (address !== undefined && isIP(address) !== 4 && !(DNS_NAME.test(address) && !/^[\d.]+$/.test(address))) {
    throw new NixError(`--address "${address}" is not an IPv4 address or a DNS name`);
  }
  if (instanceId !== undefined && !/^\d+$/.test(instanceId)) {
    throw new NixError(`--instance-id "${instanceId}" is not a number (the instance's id, as in output ${hostOutputId(host, "instance-id")})`);
  }
}

/** Terraform's own reason, one line: its first "Error: …" line, without colours or box drawing. */
function terraformReason(e: Error & { stderr?: string }): string {
  const text = stripVTControlCharacters(String(e.stderr ?? ""));
  const line = text.split("\n").find((l) => /^[│╷╵\s]*Error\b/.test(l));
  return oneLine(line ? line.replace(/^[│╷╵\s]*Error:\s*/, "").trim() : e.message.split("\n")[0]).slice(0, 200);
}

/** `missing` names the flags that would make the outputs unnecessary. */
function terraformOutputs(stack: string, missing: readonly string[]): Record<string, { value: unknown }> {
  try {
    return JSON.parse(execFileSync(terraformBinary(), [`-chdir=cdktf.out/stacks/${stack}`, "output", "-json"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new NixError(`${terraformMissing()}; or pass ${missing.join(" ")}`);
    throw new NixError(
      `cannot read the outputs of stack ${stack} (${terraformReason(e as Error)}); pass ${missing.join(" ")}, ` +
        `or run npx cdktf synth and terraform -chdir=cdktf.out/stacks/${stack} init where the stack was deployed`,
    );
  }
}

await runCli(() => {
  const args = parseCommand(COMMAND);
  if (!args) return;
  const [host] = args.positionals;
  const { address, "instance-id": instanceId, "instance-name": instanceName } = args.flags as Record<string, string | undefined>;
  checkFlags(host, address, instanceId);
  const settings = loadSettings(settingsFile());
  const hostSettings = Object.hasOwn(settings.hosts, host) ? settings.hosts[host] : undefined;
  if (!hostSettings) throw new NixError(`no host "${host}" in the settings (known: ${Object.keys(settings.hosts).join(", ") || "none"})`);
  const direct = hostSettings.sshSourceRanges !== undefined;
  // Under recreateOnImageChange the instance name carries an image suffix.
  const renamed = hostSettings.recreateOnImageChange;
  const missing = [direct && !address ? "--address IP" : "", !instanceId ? "--instance-id ID" : "", renamed && !instanceName ? "--instance-name NAME" : ""].filter(Boolean);
  const outputs = missing.length ? terraformOutputs(INFRA_STACK, missing) : {};
  const output = (name: HostOutputKey) => {
    const id = hostOutputId(host, name);
    const value = Object.hasOwn(outputs, id) ? outputs[id]?.value : undefined;
    if (typeof value !== "string") throw new NixError(`stack ${INFRA_STACK} has no output ${id}; deploy first, or pass --${name}`);
    return value;
  };
  const instance = renamed ? (instanceName ?? output("instance-name")) : host;
  // The same contract as the deploy step's (constructs/deploy-rs.ts SshEnv).
  const ssh: SshEnv = {
    DEPLOY_HOST: direct ? (address ?? output("address")) : instance,
    DEPLOY_CONNECT: direct ? "direct" : "iap",
    DEPLOY_SSH_USER: settings.deploy.user,
    DEPLOY_SSH_PORT: process.env.DEPLOY_SSH_PORT ?? "22",
    DEPLOY_PROJECT: settings.project,
    DEPLOY_ZONE: settings.zone,
    DEPLOY_INSTANCE: instance,
    DEPLOY_INSTANCE_ID: instanceId ?? output("instance-id"),
    DEPLOY_KNOWN_HOSTS: knownHostsFile(settings.stateDir, INFRA_STACK),
  };
  const run = spawnSync("bash", ["bin/rollback.sh"], { env: { ...process.env, ...ssh }, stdio: "inherit" });
  // 255 is ssh's own failure: it and gcloud have said why on stderr.
  if (run.status === 255) {
    const path = direct ? `at ${ssh.DEPLOY_HOST}` : `through IAP (instance ${instance})`;
    throw new NixError(`could not reach host "${host}" over SSH ${path}; the reason is on the lines above${direct ? "" : " (gcloud's, then ssh's)"}`);
  }
  if (run.status !== 0) process.exitCode = run.status ?? 1;
});
