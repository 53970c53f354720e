/**
 * Runs a local-exec provisioner exactly as synthesized: its interpreter and
 * command, its environment, from its working_dir resolved against the stack
 * directory (where cdktf runs Terraform).
 */
import { resolve } from "node:path";
import { execa } from "execa";
import { REPO_ROOT } from "./nix.js";

export interface LocalExec {
  readonly command: string;
  readonly interpreter: string[];
  readonly environment: Record<string, string>;
  readonly working_dir?: string;
  readonly when?: string;
}

/** Where cdktf runs Terraform for the stack. */
const STACK_DIR = resolve(REPO_ROOT, "cdktf.out", "stacks", "infra");

export function localExecs(resource: Record<string, any>): LocalExec[] {
  return (resource.provisioner ?? []).map((p: Record<string, LocalExec>) => p["local-exec"]).filter(Boolean);
}

/** What Terraform's template rendering does to a literal string: "$${" → "${", "%%{" → "%{". */
function terraformString(value: string): string {
  if (/(^|[^$])\$\{/.test(value.replace(/\$\$\{/g, ""))) throw new Error(`unexpected interpolation in ${JSON.stringify(value)}`);
  return value.replace(/\$\$\{/g, () => "${").replace(/%%\{/g, () => "%{");
}

export function runLocalExec(exec: LocalExec, env: Record<string, string> = {}, stackDir = STACK_DIR) {
  const environment = Object.fromEntries(Object.entries(exec.environment).map(([k, v]) => [k, terraformString(v)]));
  return execa(exec.interpreter[0], [...exec.interpreter.slice(1), exec.command], {
    cwd: resolve(stackDir, exec.working_dir ?? "."),
    env: { ...environment, ...env },
    reject: false,
    all: true,
  });
}
