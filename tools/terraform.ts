/**
 * Runs Terraform core (or OpenTofu, as cdktf does: TERRAFORM_BINARY_NAME)
 * in one working directory, reading `-json` output as events. The rehearsal
 * uses it; nothing here knows about Google.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { terraformBinary, terraformMissing } from "../lib/terraform.js";
import type { TerraformEvent } from "./apply-summary.js";

export { terraformBinary };

export interface TerraformRun {
  readonly exitCode: number;
  readonly events: TerraformEvent[];
  /** Lines that were not JSON events (plain output, and stderr). */
  readonly text: string;
  readonly seconds: number;
}

export interface TerraformOptions {
  /** Working directory (the stack directory). */
  readonly dir: string;
  /** Environment of Terraform and of every provisioner it runs, over this process's. @default {} */
  readonly env?: Record<string, string>;
  /** Called with each event as it arrives. */
  readonly onEvent?: (event: TerraformEvent) => void;
}

/** Terraform processes running for this process, so an interrupted caller can stop them. */
const running = new Set<ChildProcess>();

/**
 * Sends each running Terraform one SIGINT: it stops its steps and saves its
 * state. Only one: a second makes Terraform exit at once, without saving.
 */
export function interruptTerraform(): void {
  for (const child of running) child.kill("SIGINT");
}

/** Runs `terraform <args>`; lines that parse as JSON objects with a `type` are events. */
export function terraform(args: string[], options: TerraformOptions): Promise<TerraformRun> {
  const started = Date.now();
  const env = {
    ...process.env,
    CHECKPOINT_DISABLE: "1",
    TF_IN_AUTOMATION: "1",
    TF_INPUT: "0",
    // No CLI configuration: no provider mirrors or credentials are needed, and none are read.
    TF_CLI_CONFIG_FILE: "/dev/null",
    ...options.env,
  };
  return new Promise((resolvePromise, reject) => {
    const child = spawn(terraformBinary(env), args, { cwd: options.dir, env, stdio: ["ignore", "pipe", "pipe"] });
    running.add(child);
    const events: TerraformEvent[] = [];
    const text: string[] = [];
    createInterface({ input: child.stdout }).on("line", (line) => {
      let event: TerraformEvent | undefined;
      if (line.startsWith("{")) {
        try {
          event = JSON.parse(line);
        } catch {
          event = undefined;
        }
      }
      if (event && typeof event.type === "string") {
        events.push(event);
        options.onEvent?.(event);
      } else text.push(line);
    });
    child.stderr.on("data", (chunk) => text.push(String(chunk)));
    child.on("error", (error: NodeJS.ErrnoException) => {
      running.delete(child);
      reject(error.code === "ENOENT" ? new Error(terraformMissing(env)) : error);
    });
    child.on("close", (code) => {
      running.delete(child);
      resolvePromise({ exitCode: code ?? -1, events, text: text.join("\n"), seconds: (Date.now() - started) / 1000 });
    });
  });
}

/** An apply of exactly the plan a review accepted. */
export interface ReviewedApply {
  /** What the review found; nothing was applied when there is any. */
  readonly refused: string[];
  /** The apply, or the failed plan (or show), when it did not get that far. */
  readonly run: TerraformRun;
}

/**
 * Plans to a file (or takes a saved plan), hands `terraform show -json` of it
 * to `review`, and applies exactly that plan when the review finds nothing.
 * `planArgs` go to the plan: `-destroy` makes the apply what `terraform
 * destroy` (and `cdktf destroy`) runs.
 */
export async function applyReviewed(
  options: TerraformOptions,
  review: (plan: any) => string[],
  savedPlan?: string,
  planArgs: readonly string[] = [],
): Promise<ReviewedApply> {
  let planFile = savedPlan;
  if (!planFile) {
    // Its own name: two runs in one directory must not apply each other's plan.
    planFile = `reviewed-by-rehearsal-${process.pid}.tfplan`;
    const plan = await terraform(["plan", "-json", "-input=false", ...planArgs, `-out=${planFile}`], options);
    if (plan.exitCode !== 0) return { refused: [], run: plan };
  }
  try {
    const show = await terraform(["show", "-json", planFile], { dir: options.dir, env: options.env });
    if (show.exitCode !== 0) return { refused: [], run: show };
    const json = show.text.split("\n").find((line) => line.startsWith('{"format_version"'));
    if (!json) return { refused: [`terraform show -json ${planFile} printed no plan:\n${show.text}`], run: show };
    // The review may also throw, to apply nothing (the rehearsal does when interrupted).
    const refused = review(JSON.parse(json));
    if (refused.length > 0) return { refused, run: show };
    return { refused, run: await terraform(["apply", "-json", planFile], options) };
  } finally {
    // A plan this function made is spent either way (applied, or refused); a saved one is the caller's.
    if (!savedPlan) rmSync(join(options.dir, planFile), { force: true });
  }
}
