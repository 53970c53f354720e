/**
 * npm run plan-summary -- <stack>=<plan.json> [<stack>=<plan.json> ...]
 * Prints the Markdown of the pull-request plan comment for the plans of
 * `terraform show -json <planfile>`. `<stack>=-` reads that stack's plan from stdin.
 */
import { parseCommand, runCli } from "../lib/cli.js";
import { parsePlan, parsePlanArgs, PLAN_SUMMARY_USAGE, readPlanFile, renderPlanSummary, type StackPlan } from "../tools/plan-summary.js";

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

await runCli(async () => {
  const args = parseCommand({
    usage: PLAN_SUMMARY_USAGE,
    does: "Prints the Markdown of the pull-request plan comment for plans of `terraform show -json <planfile>`.",
    positionals: { min: 0, max: Infinity, name: "<stack>=<plan.json>", help: "one per stack; <plan.json> may be - (stdin) once" },
  });
  if (!args) return;
  const stacks: StackPlan[] = [];
  for (const { stack, file } of parsePlanArgs(args.positionals)) {
    const plan = file === "-" ? parsePlan(await readStdin(), "<stdin>") : readPlanFile(file);
    stacks.push({ stack, plan });
  }
  process.stdout.write(renderPlanSummary(stacks));
});
