/**
 * host-diff's questions to Nix: one `nix eval` per flake (head and base) for
 * the .drvPath of every host's system and image, then one derivation read
 * (`nix show-derivation -r`, `nix derivation show -r` on Nix 2.15 and later)
 * for all changed systems together. Evaluation and derivation reads only:
 * nothing is built or substituted.
 */
import { execa } from "execa";
import { evalFlakeRef, evalWithRequest, NIX_FEATURE_ARGS, NixError, trimNixStderr } from "../lib/nix.js";
import type { Settings } from "../lib/settings.js";
import { diffDerivations, type HostDiffReport, type SystemReport } from "./host-diff.js";

/** `request.systems`: key -> { configuration, output }; null where the flake has no such configuration. */
const SYSTEMS_EXPR = `let
  request = builtins.fromJSON (builtins.readFile (builtins.getEnv "INFRA_NIX_REQUEST_FILE"));
  configurations = (builtins.getFlake request.flake).nixosConfigurations or { };
  drvPath = s: if configurations ? \${s.configuration} then configurations.\${s.configuration}.config.system.build.\${s.output}.drvPath else null;
in { nixVersion = builtins.nixVersion; systems = builtins.mapAttrs (key: drvPath) request.systems; }`;

/** A flake that imports from a derivation would have it built during evaluation: refused instead. */
const NO_BUILD = ["--option", "allow-import-from-derivation", "false"];

type Output = "toplevel" | "googleComputeImage";
interface System {
  readonly configuration: string;
  readonly output: Output;
}

/** Each host's and image's system, keyed "<output> <configuration>": hosts sharing a configuration share it. */
function systemsOf(settings: Settings): { systems: Record<string, System>; keyOf: { hosts: Record<string, string>; images: Record<string, string> } } {
  const systems: Record<string, System> = {};
  const key = (configuration: string, output: Output) => {
    const k = `${output} ${configuration}`;
    systems[k] = { configuration, output };
    return k;
  };
  const hosts = Object.fromEntries(Object.entries(settings.hosts).map(([id, h]) => [id, key(h.nixosConfiguration, "toplevel")]));
  const images = Object.fromEntries(Object.entries(settings.images).map(([id, i]) => [id, key(i.nixosConfiguration, "googleComputeImage")]));
  return { systems, keyOf: { hosts, images } };
}

interface Evaluated {
  readonly nixVersion: string;
  readonly systems: Record<string, string | null>;
}

async function evalSystems(flake: string, systems: Record<string, System>, cwd: string): Promise<Evaluated> {
  const request = { flake, systems };
  const failed = (stderr: string) => `nix eval of flake "${flake}" failed:\n${trimNixStderr(stderr)}`;
  return (await evalWithRequest(SYSTEMS_EXPR, request, cwd, failed, NO_BUILD)) as Evaluated;
}

/** `nix derivation show` replaced `nix show-derivation` in Nix 2.15. */
export function showDerivationArgs(nixVersion: string): string[] {
  const [major, minor] = nixVersion.split(".").map(Number);
  return major > 2 || (major === 2 && minor >= 15) ? ["derivation", "show"] : ["show-derivation"];
}

const baseName = (path: string) => path.slice(path.lastIndexOf("/") + 1);

/**
 * drv -> the drvs it takes as inputs, by base name, from the JSON of
 * `nix show-derivation -r`. Also reads the later format (Nix 2.33: wrapped in
 * { version, derivations }, base names, inputs.drvs).
 */
export function derivationGraph(json: unknown): Map<string, string[]> {
  const all = (json as { derivations?: unknown }).derivations ?? json;
  const graph = new Map<string, string[]>();
  for (const [path, drv] of Object.entries(all as Record<string, { inputDrvs?: object; inputs?: { drvs?: object } }>)) {
    graph.set(baseName(path), Object.keys(drv.inputDrvs ?? drv.inputs?.drvs ?? {}).map(baseName));
  }
  return graph;
}

/** Every derivation `root` depends on, itself included. */
export function closureOf(graph: ReadonlyMap<string, readonly string[]>, root: string): Set<string> {
  const seen = new Set<string>([baseName(root)]);
  const todo = [baseName(root)];
  for (let drv = todo.pop(); drv !== undefined; drv = todo.pop()) {
    for (const input of graph.get(drv) ?? []) {
      if (!seen.has(input)) {
        seen.add(input);
        todo.push(input);
      }
    }
  }
  return seen;
}

async function readDerivations(drvs: string[], nixVersion: string, cwd: string): Promise<Map<string, string[]>> {
  const args = [...NIX_FEATURE_ARGS, ...showDerivationArgs(nixVersion), "--offline", "--recursive", ...drvs];
  const result = await execa("nix", args, { cwd, reject: false, stdin: "ignore", maxBuffer: 1024 * 1024 * 1024 });
  if (result.exitCode !== 0) throw new NixError(`nix ${args.slice(2, 4).join(" ")} failed:\n${trimNixStderr(String(result.stderr))}`);
  return derivationGraph(JSON.parse(String(result.stdout)));
}

export interface HostDiffOptions {
  /** The flake to compare with: a flake reference, or a path resolved against projectRoot. */
  readonly base: string;
  readonly projectRoot: string;
  /** Where progress lines go. @default process.stderr */
  readonly log?: (line: string) => void;
}

/**
 * The report for the settings' hosts and images, head (settings.flake)
 * against `base`. A base that does not evaluate gives `baseError`; a head
 * that does not evaluate throws.
 */
export async function hostDiff(settings: Settings, options: HostDiffOptions): Promise<HostDiffReport | { baseError: string }> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const { systems, keyOf } = systemsOf(settings);
  const cwd = options.projectRoot;
  log(`host-diff: evaluating ${Object.keys(systems).length} system(s) in the head and base flakes (evaluation only, nothing is built)…`);
  // One after the other: a NixOS fleet's evaluation can take gigabytes, and synth's takes as much.
  const head = await evalSystems(evalFlakeRef(settings.flake, cwd), systems, cwd);
  for (const [key, drv] of Object.entries(head.systems)) {
    if (drv === null) throw new NixError(`flake "${settings.flake}" has no nixosConfigurations.${systems[key].configuration}, which the settings name`);
  }
  let base: Evaluated;
  try {
    base = await evalSystems(evalFlakeRef(options.base, cwd), systems, cwd);
  } catch (e) {
    log(`host-diff: the base flake "${options.base}" did not evaluate: ${(e as Error).message}`);
    return { baseError: "the base flake did not evaluate" };
  }
  const changed = Object.keys(systems).filter((k) => base.systems[k] !== null && base.systems[k] !== head.systems[k]);
  const reports: Record<string, SystemReport> = {};
  if (changed.length) {
    log(`host-diff: reading the derivation graphs of ${changed.length} changed system(s)…`);
    const roots = [...new Set(changed.flatMap((k) => [head.systems[k] as string, base.systems[k] as string]))];
    const graph = await readDerivations(roots, head.nixVersion, cwd);
    for (const k of changed) {
      const diff = diffDerivations(closureOf(graph, base.systems[k] as string), closureOf(graph, head.systems[k] as string));
      reports[k] = { status: "changed", ...diff };
    }
  }
  const reportOf = (k: string): SystemReport => reports[k] ?? { status: base.systems[k] === null ? "new" : "unchanged" };
  const section = (ids: Record<string, string>) => Object.fromEntries(Object.entries(ids).map(([id, k]) => [id, reportOf(k)]));
  return { hosts: section(keyOf.hosts), images: section(keyOf.images) };
}
