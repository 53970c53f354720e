/**
 * npm run check-backend
 * Refuses (exit 1) when the infra stack would keep its state on this machine.
 * The workflows run it before they plan or deploy: a CI runner is thrown
 * away after the job, so local state would vanish with it, and the next
 * deploy would start from nothing and fail on every resource that exists
 * (409 "already exists").
 */
import { parseCommand, runCli } from "../lib/cli.js";
import { NixError } from "../lib/nix.js";
import { INFRA_STACK, settingsFile } from "../lib/paths.js";
import { loadSettings } from "../lib/settings.js";

await runCli(() => {
  const command = {
    usage: "npm run check-backend",
    does: "Exits 1 when the infra stack would keep its state on this machine (settings from INFRA_CONFIG, default infra.json); the workflows run it before they plan or deploy.",
  };
  if (!parseCommand(command)) return;
  const file = settingsFile();
  const settings = loadSettings(file);
  if (settings.backend.type !== "gcs") {
    throw new NixError(
      `${file}: backend is "local": the infra stack's state would live on this runner and vanish with it, ` +
        "so the next deploy would start from nothing and fail with 409s on everything that exists. " +
        `Set "backend": {"type": "gcs", "bucket": "<state bucket>"} in ${file}, apply the bootstrap stack once by hand ` +
        "(npx cdktf deploy bootstrap: it creates that bucket), and commit the settings (docs/github.md).",
    );
  }
  process.stdout.write(`backend: gs://${settings.backend.bucket}/${settings.backend.prefix}/${INFRA_STACK}\n`);
});
