/**
 * npm run host-diff -- --base <flake ref> [--json]
 * What changes inside each host and image of the settings, compared with a
 * base flake, from derivations only (tools/host-diff.ts). Markdown for the
 * pull-request comment by default.
 */
import { parseArgs } from "node:util";
import { runCli } from "../lib/cli.js";
import { NixError } from "../lib/nix.js";
import { settingsFile } from "../lib/paths.js";
import { loadSettings } from "../lib/settings.js";
import { renderBaseFailure, renderJson, renderMarkdown } from "../tools/host-diff.js";
import { hostDiff } from "../tools/host-diff-nix.js";

const USAGE = `usage: npm run host-diff -- --base <flake ref> [--json]
What changes inside each host and image of the settings (INFRA_CONFIG, default infra.json) against a base flake; evaluates and reads derivations, builds nothing.
  --base <flake ref>  the flake to compare with: a path (e.g. a git worktree of the base branch) or a flake reference
  --json              print JSON with sorted keys instead of Markdown
  -h, --help          print this help`;

await runCli(async () => {
  let values;
  try {
    ({ values } = parseArgs({ options: { base: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } }, strict: true }));
  } catch (e) {
    throw new NixError(`${(e as Error).message}\n${USAGE}`);
  }
  if (values.help) return void process.stdout.write(`${USAGE}\n`);
  if (!values.base) throw new NixError(`--base is required\n${USAGE}`);
  const settings = loadSettings(settingsFile());
  const report = await hostDiff(settings, { base: values.base, projectRoot: process.cwd() });
  if (values.json) process.stdout.write(renderJson(report));
  else process.stdout.write("baseError" in report ? renderBaseFailure() : renderMarkdown(report));
});
