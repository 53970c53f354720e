/**
 * What every local-exec step shares: the interpreter, the working directory
 * and the escaping of literal values. Each step's own contract (its script
 * and the environment that script reads) sits in the construct that runs it,
 * constructs/<step>.ts, beside the script, constructs/<step>.sh; a renamed or
 * dropped variable is a type error there, not a failure at apply time.
 *
 * Values reach a script only through the environment, never spliced into the command.
 */
import { Token } from "cdktf";
import { PROJECT_ROOT_FROM_STACK } from "./paths.js";

/** The interpreter every provisioner uses: `bash <script>`. */
export const BASH = ["bash"];

/**
 * Terraform reads "${" and "%{" in any string as template syntax, even in
 * cdk.tf.json. Values from settings are literal, so escape them.
 */
export function literal(value: string): string {
  return value.replace(/\$\{/g, () => "$${").replace(/%\{/g, () => "%%{");
}

/**
 * A local-exec provisioner running `bash <script>` (a path relative to the
 * project root) from the project root.
 * Every value that is not a Terraform reference is escaped against template
 * syntax, so settings arrive verbatim.
 */
export function localExec<E extends object>(script: string, environment: E) {
  return {
    type: "local-exec" as const,
    command: script,
    interpreter: BASH,
    workingDir: PROJECT_ROOT_FROM_STACK,
    environment: Object.fromEntries(
      Object.entries(environment).map(([key, value]) => [key, Token.isUnresolved(value) ? value : literal(String(value))]),
    ),
  };
}
