/** Prints synth warnings when the app runs without the cdktf CLI (which prints them itself). */
import type { App } from "cdktf";

export function printWarnings(app: App, write: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): void {
  if (process.env.CDKTF_CONTEXT_JSON) return;
  for (const construct of app.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type === "@cdktf/warn") write(`warning: ${construct.node.path}: ${entry.data}`);
    }
  }
}
