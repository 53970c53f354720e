/** Entry-point plumbing shared by main.ts and bin/: clear errors, never a bare stack trace. */
import { relative, resolve } from "node:path";
import { NixError } from "./nix.js";
import { SettingsError } from "./settings.js";

/** main.ts, run by `npm run synth` and by the cdktf CLI (which passes no arguments). */
export const SYNTH_USAGE =
  "usage: npm run synth (writes cdktf.out/stacks/<stack>/cdk.tf.json; settings from INFRA_CONFIG, by default infra.json; INFRA_RESOLVE=pinned reads the lock instead of running nix eval)";

/**
 * `--help` or `-h` anywhere: prints `usage` to stdout and returns true, so the
 * command does nothing else (exit 0). A command that takes no arguments
 * passes `none: true` and refuses any other argument with its usage.
 */
export function usageRequested(args: readonly string[], usage: string, options: { readonly none?: boolean } = {}): boolean {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${usage}\n`);
    return true;
  }
  if (options.none && args.length > 0) throw new NixError(`unexpected argument ${args[0]}; ${usage}`);
  return false;
}

/**
 * Writes a progress line: to stderr, except under the cdktf CLI, which labels
 * every stderr line of the app `[ERROR]` and shows its stdout as plain lines.
 */
export function progressLine(line: string): void {
  (process.env.CDKTF_CONTEXT_JSON ? process.stdout : process.stderr).write(`${line}\n`);
}

/** The line synth ends with: which stacks it wrote, and where (`synth: wrote bootstrap, infra to cdktf.out/stacks/`). */
export function synthSummary(stacks: readonly string[], outdir: string): string {
  const dir = resolve(outdir);
  const inside = relative(process.cwd(), dir);
  return `synth: wrote ${stacks.join(", ")} to ${inside && !inside.startsWith("..") ? inside : dir}/stacks/`;
}

/** Runs `main`; on failure prints `error: <message>` and exits 1. INFRA_DEBUG=1 adds the stack. */
export async function runCli(main: () => Promise<void> | void): Promise<void> {
  try {
    await main();
  } catch (e) {
    const error = e as Error;
    const known = error instanceof SettingsError || error instanceof NixError;
    process.stderr.write(`error: ${error.message ?? String(e)}\n`);
    if (process.env.INFRA_DEBUG || (!known && !error.message)) process.stderr.write(`${error.stack ?? ""}\n`);
    process.exitCode = 1;
  }
}
