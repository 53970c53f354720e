/**
 * cdktf runs Terraform in cdktf.out/stacks/<stack>. Commands and the local
 * state file use paths relative to that directory, so no absolute path of the
 * synthesizing machine enters the output.
 */
export const PROJECT_ROOT_FROM_STACK = "../../..";

/**
 * Id of the main stack (main.ts). The CLI tools find its outputs, its
 * synthesized directory and its state under it.
 */
export const INFRA_STACK = "infra";

/** The settings file: INFRA_CONFIG, or infra.json at the project root. */
export function settingsFile(env: NodeJS.ProcessEnv = process.env): string {
  return env.INFRA_CONFIG || "infra.json";
}

/** A path inside stateDir: relative to the project root, or absolute as stateDir is. */
function inStateDir(stateDir: string, path: string): string {
  return `${stateDir.replace(/\/+$/, "")}/${path}`;
}

/** The known_hosts file deploys and rollbacks of one stack share. */
export function knownHostsFile(stateDir: string, stack: string): string {
  return inStateDir(stateDir, `known_hosts/${stack}`);
}

/** The directory of the images' GC roots (constructs/nix-image.ts, constructs/gc-roots.ts). */
export function gcRootDir(stateDir: string): string {
  return inStateDir(stateDir, "gcroots");
}
