/** npm run schema: writes infra.schema.json (editors complete infra.json from it) and docs/settings.md, both from lib/settings.ts. */
import { writeFileSync } from "node:fs";
import { runCli, usageRequested } from "../lib/cli.js";
import { stableJson } from "../lib/lock.js";
import { settingsJsonSchema } from "../lib/settings.js";
import { settingsReference } from "../tools/settings-reference.js";

await runCli(() => {
  if (usageRequested(process.argv.slice(2), "usage: npm run schema (writes infra.schema.json and docs/settings.md from lib/settings.ts)", { none: true })) return;
  writeFileSync("infra.schema.json", stableJson(settingsJsonSchema()));
  writeFileSync("docs/settings.md", settingsReference(settingsJsonSchema() as Record<string, unknown>));
  process.stdout.write("wrote infra.schema.json and docs/settings.md\n");
});
