/** npm run schema: writes infra.schema.json, the JSON Schema editors use to complete infra.json. */
import { writeFileSync } from "node:fs";
import { runCli, usageRequested } from "../lib/cli.js";
import { stableJson } from "../lib/lock.js";
import { settingsJsonSchema } from "../lib/settings.js";

await runCli(() => {
  if (usageRequested(process.argv.slice(2), "usage: npm run schema (writes infra.schema.json from lib/settings.ts)", { none: true })) return;
  writeFileSync("infra.schema.json", stableJson(settingsJsonSchema()));
  process.stdout.write("wrote infra.schema.json\n");
});
