/** npm run schema: writes infra.schema.json (editors complete infra.json from it) and docs/settings.md, both from lib/settings.ts. */
import { writeFileSync } from "node:fs";
import { parseCommand, runCli } from "../lib/cli.js";
import { stableJson } from "../lib/lock.js";
import { settingsJsonSchema } from "../lib/settings.js";
import { settingsReference } from "../tools/settings-reference.js";

await runCli(() => {
  if (!parseCommand({ usage: "npm run schema", does: "Writes infra.schema.json (the JSON Schema editors use for infra.json) and docs/settings.md (the settings reference), both from lib/settings.ts." })) return;
  writeFileSync("infra.schema.json", stableJson(settingsJsonSchema()));
  writeFileSync("docs/settings.md", settingsReference(settingsJsonSchema() as Record<string, unknown>));
  process.stdout.write("wrote infra.schema.json and docs/settings.md\n");
});
