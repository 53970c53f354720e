/** The cdktf app: reads the settings, resolves store paths once, composes the stacks. */
import { App, TerraformStack } from "cdktf";
import { BootstrapStack } from "./constructs/bootstrap-stack.js";
import { InfraStack } from "./constructs/infra-stack.js";
import { parseCommand, progressLine, runCli, SYNTH, synthSummary } from "./lib/cli.js";
import { INFRA_STACK, settingsFile } from "./lib/paths.js";
import { resolveMode, resolveOutputs } from "./lib/resolve.js";
import { loadSettings } from "./lib/settings.js";
import { printWarnings } from "./lib/warnings.js";

await runCli(async () => {
  if (!parseCommand(SYNTH)) return;
  const settings = loadSettings(settingsFile());
  const resolved = await resolveOutputs(settings, { projectRoot: process.cwd(), mode: resolveMode(process.env.INFRA_RESOLVE), log: progressLine });
  const app = new App();
  new BootstrapStack(app, "bootstrap", { settings });
  new InfraStack(app, INFRA_STACK, { settings, resolved });
  app.synth();
  printWarnings(app);
  progressLine(synthSummary(app.node.children.filter((c) => c instanceof TerraformStack).map((c) => c.node.id), app.outdir));
});
