/** npm run schema: writes infra.schema.json, the JSON Schema editors use to complete infra.json. */
import { writeFileSync } from "node:fs";
import { parseCommand, runCli } from "../lib/cli.js";
import { stableJson } from "../lib/lock.js";
import { settingsJsonSchema } from "../lib/settings.js";

await runCli(() => {
  if (!parseCommand({ usage: "npm run schema", does: "Writes infra.schema.json (the JSON Schema editors use for infra.json) from lib/settings.ts." })) return;
  writeFileSync("infra.schema.json", stableJson(settingsJsonSchema()));
  process.stdout.write("wrote infra.schema.json\n");
});
