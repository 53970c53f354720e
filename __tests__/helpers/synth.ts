/** Runs the app command, `node bin/synth.js` (cdktf.json; npm run synth), in a child process. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { NIX_ENV, REPO_ROOT } from "./nix.js";

export interface SynthRun {
  readonly exitCode: number;
  readonly stderr: string;
  readonly outdir: string;
  /** cdktf.out/stacks/<stack>/cdk.tf.json as text. */
  stackJson(stack?: string): string;
  cleanup(): void;
}

export async function runSynth(settings: unknown, env: Record<string, string> = {}): Promise<SynthRun> {
  const work = mkdtempSync(join(tmpdir(), "synth-"));
  const config = join(work, "infra.json");
  writeFileSync(config, JSON.stringify(settings, null, 2));
  const outdir = join(work, "cdktf.out");
  const result = await execa("node", [join(REPO_ROOT, "bin", "synth.js")], {
    cwd: REPO_ROOT,
    env: { ...NIX_ENV, INFRA_CONFIG: config, CDKTF_OUTDIR: outdir, ...env },
    reject: false,
  });
  return {
    exitCode: result.exitCode ?? -1,
    stderr: String(result.stderr),
    outdir,
    stackJson: (stack = "infra") => readFileSync(join(outdir, "stacks", stack, "cdk.tf.json"), "utf8"),
    cleanup: () => rmSync(work, { recursive: true, force: true }),
  };
}
