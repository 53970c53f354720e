/**
 * cdktf runs Terraform in cdktf.out/stacks/<stack>. Commands and the local
 * state file use paths relative to that directory, so no absolute path of the
 * synthesizing machine enters the output.
 */
export const PROJECT_ROOT_FROM_STACK = "../../..";

/** The settings file: INFRA_CONFIG, or infra.json at the project root. */
export function settingsFile(env: NodeJS.ProcessEnv = process.env): string {
  return env.INFRA_CONFIG || "infra.json";
}

/** The known_hosts file deploys and rollbacks of one stack share, relative to the project root. */
export function knownHostsFile(stateDir: string, stack: string): string {
  return `${stateDir.replace(/\/+$/, "")}/known_hosts/${stack}`;
}
