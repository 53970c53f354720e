/** Prints synth warnings when the app runs without the cdktf CLI (which prints them itself). */
import type { App } from "cdktf";

/** Hosts named in a grouped warning before "and N more". */
const MAX_NAMED = 10;

/**
 * One line per warning; a warning many hosts share (`host "<id>" <text>`)
 * prints once, with the list of hosts, instead of once per host.
 */
export function printWarnings(app: App, write: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): void {
  if (process.env.CDKTF_CONTEXT_JSON) return;
  const byText = new Map<string, Array<{ path: string; host?: string }>>();
  for (const construct of app.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type !== "@cdktf/warn") continue;
      const [, host, rest] = /^host "([^"]+)" (.*)$/s.exec(String(entry.data)) ?? [];
      const key = host ? `host ${rest}` : String(entry.data);
      byText.set(key, [...(byText.get(key) ?? []), { path: construct.node.path, host }]);
    }
  }
  for (const [key, uses] of byText) {
    if (uses.length === 1 || !uses[0].host) {
      for (const { path, host } of uses) write(`warning: ${path}: ${host ? key.replace(/^host /, `host "${host}" `) : key}`);
      continue;
    }
    const named = uses.slice(0, MAX_NAMED).map((u) => u.host).join(", ");
    const more = uses.length > MAX_NAMED ? ` and ${uses.length - MAX_NAMED} more` : "";
    write(`warning: ${uses.length} hosts (${named}${more}): ${key.replace(/^host /, "")}`);
  }
}
