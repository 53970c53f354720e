/**
 * npm run host-diff -- --base <flake ref> [--base-config <file>] [--json]
 * What changes inside each host and image of the settings, compared with a
 * base flake, from derivations only (tools/host-diff.ts). Markdown for the
 * pull-request comment by default.
 */
import { existsSync } from "node:fs";
import { parseCommand, runCli } from "../lib/cli.js";
import { NixError } from "../lib/nix.js";
import { settingsFile } from "../lib/paths.js";
import { loadSettings, type Settings } from "../lib/settings.js";
import { renderBaseFailure, renderJson, renderMarkdown } from "../tools/host-diff.js";
import { hostDiff } from "../tools/host-diff-nix.js";

await runCli(async () => {
  const args = parseCommand({
    usage: "npm run host-diff -- --base <flake ref> [--base-config <file>] [--json]",
    does: "Says what changes inside each host and image of the settings (INFRA_CONFIG, default infra.json) against a base flake; evaluates and reads derivations, builds nothing.",
    flags: {
      base: { value: "<flake ref>", help: "the flake to compare with: a path (e.g. a git worktree of the base branch) or a flake reference" },
      "base-config": {
        value: "<file>",
        help: "the base's settings file: each host and image is compared with the configuration it names for them (default: the head's settings; one that does not load is left aside, saying why)",
      },
      json: { help: "print JSON with sorted keys instead of Markdown" },
    },
  });
  if (!args) return;
  const base = args.flags.base as string | undefined;
  if (!base) throw new NixError("--base is required; usage: npm run host-diff -- --base <flake ref> [--base-config <file>] [--json]");
  const settings = loadSettings(settingsFile());
  const baseConfig = args.flags["base-config"] as string | undefined;
  let baseSettings: Settings | undefined;
  try {
    baseSettings = baseConfig === undefined ? undefined : loadSettings(baseConfig, "--base-config");
  } catch (e) {
    // A missing file: one line, the flag and the path.
    const why = existsSync(baseConfig!) ? (e as Error).message : `--base-config ${baseConfig}: does not exist`;
    process.stderr.write(`host-diff: the base settings did not load, so the head's configurations are compared: ${why}\n`);
  }
  const report = await hostDiff(settings, { base, baseSettings, projectRoot: process.cwd() });
  if (args.flags.json) process.stdout.write(renderJson(report));
  else process.stdout.write("baseError" in report ? renderBaseFailure() : renderMarkdown(report));
});
