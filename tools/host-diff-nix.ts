/**
 * host-diff's questions to Nix: one `nix eval` per flake (head and base) for
 * the .drvPath of every host's system and image, then one derivation read
 * (`nix show-derivation -r`, `nix derivation show -r` on Nix 2.15 and later)
 * for all changed systems together. Evaluation and derivation reads only:
 * nothing is built or substituted.
 */
import { execa } from "execa";
import { evalFlakeRef, evalWithRequest, NIX_FEATURE_ARGS, NixError, NO_BUILD_ARGS, trimNixStderr } from "../lib/nix.js";
import type { Settings } from "../lib/settings.js";
import { diffDerivations, type HostDiffReport, type SystemReport } from "./host-diff.js";

/** `request.systems`: key -> { configuration, output }; null where the flake has no such configuration. */
const SYSTEMS_EXPR = `let
  request = builtins.fromJSON (builtins.readFile (builtins.getEnv "INFRA_NIX_REQUEST_FILE"));
  configurations = (builtins.getFlake request.flake).nixosConfigurations or { };
  drvPath = s: if configurations ? \${s.configuration} then configurations.\${s.configuration}.config.system.build.\${s.output}.drvPath else null;
in { nixVersion = builtins.nixVersion; systems = builtins.mapAttrs (key: drvPath) request.systems; }`;


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
  return (await evalWithRequest(SYSTEMS_EXPR, request, cwd, failed, NO_BUILD_ARGS)) as Evaluated;
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
  /**
   * The base's settings: each host and image is compared with the configuration
   * they name for it, and one they lack is new. @default the head's settings
   */
  readonly baseSettings?: Settings;
  readonly projectRoot: string;
  /** Where progress lines go. @default process.stderr */
  readonly log?: (line: string) => void;
}

/** A host's or image's system in the base (null: none) and in the head. */
interface Pair {
  readonly base: string | null;
  readonly head: string;
}

/**
 * The report for the settings' hosts and images, head (settings.flake)
 * against `base`. A base that does not evaluate gives `baseError`; a head
 * that does not evaluate throws.
 */
export async function hostDiff(settings: Settings, options: HostDiffOptions): Promise<HostDiffReport | { baseError: string }> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const head = systemsOf(settings);
  const baseSide = options.baseSettings ? systemsOf(options.baseSettings) : head;
  const cwd = options.projectRoot;
  log(`host-diff: evaluating ${Object.keys(head.systems).length} system(s) in the head and base flakes (evaluation only, nothing is built)…`);
  // One after the other: a NixOS fleet's evaluation can take gigabytes, and synth's takes as much.
  const headEval = await evalSystems(evalFlakeRef(settings.flake, cwd), head.systems, cwd);
  for (const [key, drv] of Object.entries(headEval.systems)) {
    if (drv === null) throw new NixError(`flake "${settings.flake}" has no nixosConfigurations.${head.systems[key].configuration}, which the settings name`);
  }
  let baseEval: Evaluated;
  try {
    baseEval = await evalSystems(evalFlakeRef(options.base, cwd), baseSide.systems, cwd);
  } catch (e) {
    log(`host-diff: the base flake "${options.base}" did not evaluate: ${(e as Error).message}`);
    return { baseError: "the base flake did not evaluate" };
  }
  const pairsOf = (kind: "hosts" | "images"): Record<string, Pair> =>
    Object.fromEntries(
      Object.entries(head.keyOf[kind]).map(([id, key]) => {
        const baseKey = baseSide.keyOf[kind][id];
        return [id, { head: headEval.systems[key] as string, base: baseKey === undefined ? null : baseEval.systems[baseKey] }];
      }),
    );
  const pairs = { hosts: pairsOf("hosts"), images: pairsOf("images") };
  const pairKey = (p: Pair) => `${p.base} ${p.head}`;
  const changed = [...new Map([...Object.values(pairs.hosts), ...Object.values(pairs.images)].filter((p) => p.base !== null && p.base !== p.head).map((p) => [pairKey(p), p])).values()];
  const reports = new Map<string, SystemReport>();
  if (changed.length) {
    log(`host-diff: reading the derivation graphs of ${changed.length} changed system(s)…`);
    const roots = [...new Set(changed.flatMap((p) => [p.head, p.base as string]))];
    const graph = await readDerivations(roots, headEval.nixVersion, cwd);
    for (const p of changed) reports.set(pairKey(p), { status: "changed", ...diffDerivations(closureOf(graph, p.base as string), closureOf(graph, p.head)) });
  }
  const reportOf = (p: Pair): SystemReport => (p.base === null ? { status: "new" } : (reports.get(pairKey(p)) ?? { status: "unchanged" }));
  const section = (ps: Record<string, Pair>) => Object.fromEntries(Object.entries(ps).map(([id, p]) => [id, reportOf(p)]));
  return { hosts: section(pairs.hosts), images: section(pairs.images) };
}
