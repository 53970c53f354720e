/**
 * npm run plan-summary -- <stack>=<plan.json> [<stack>=<plan.json> ...]
 * Prints the Markdown of the pull-request plan comment for the plans of
 * `terraform show -json <planfile>`. `<stack>=-` reads that stack's plan from stdin.
 */
import { runCli, usageRequested } from "../lib/cli.js";
import { parsePlan, parsePlanArgs, PLAN_SUMMARY_USAGE, readPlanFile, renderPlanSummary, type StackPlan } from "../tools/plan-summary.js";

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

await runCli(async () => {
  const args = process.argv.slice(2);
  if (usageRequested(args, PLAN_SUMMARY_USAGE)) return;
  const stacks: StackPlan[] = [];
  for (const { stack, file } of parsePlanArgs(args)) {
    const plan = file === "-" ? parsePlan(await readStdin(), "<stdin>") : readPlanFile(file);
    stacks.push({ stack, plan });
  }
  process.stdout.write(renderPlanSummary(stacks));
});
