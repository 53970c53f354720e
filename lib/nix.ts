/**
 * Every call to `nix` lives here. At synth, one `nix eval` resolves the store
 * paths of all images, hosts and OCI images; nothing is ever built at synth.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, relative, resolve as resolvePath } from "node:path";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import { resolvedFields } from "./resolved.js";
import type { Settings } from "./settings.js";
import { nearest, shown } from "./text.js";

export interface ResolvedImage {
  readonly nixosConfiguration: string;
  /** Output of system.build.googleComputeImage (planned, not built). */
  readonly storePath: string;
  /** config.image.filePath: the image file, relative to storePath. */
  readonly filePath: string;
  /** config.system.nixos.label. */
  readonly nixosLabel: string;
}
export interface ResolvedHost {
  readonly nixosConfiguration: string;
  /** Output of system.build.toplevel (planned, not built). */
  readonly toplevel: string;
}
export interface ResolvedOciImage {
  readonly package: string;
  /** Output of packages.<system>.<package> (planned, not built). */
  readonly storePath: string;
}
/** What synth needs from the flake. Also the content of the lock file. */
export interface Resolved {
  readonly flake: string;
  readonly system: string;
  readonly images: Readonly<Record<string, ResolvedImage>>;
  readonly hosts: Readonly<Record<string, ResolvedHost>>;
  readonly ociImages: Readonly<Record<string, ResolvedOciImage>>;
}

/** A failure the user can act on; its message is the whole story (no stack needed). */
export class NixError extends Error {}

/** Features turned on for our calls only, so Nix 2.8 and newer work without nix.conf changes. */
export const NIX_FEATURE_ARGS = ["--extra-experimental-features", "nix-command flakes"];

/** A flake that imports from a derivation would have it built during evaluation: refused instead. */
export const NO_BUILD_ARGS = ["--option", "allow-import-from-derivation", "false"];

/** Nix's refusal of an import from a derivation, as one line the user can act on; undefined for other errors. */
function importFromDerivation(stderr: string, flake: string): string | undefined {
  const match = /cannot build '([^']+)' during evaluation because the option 'allow-import-from-derivation' is disabled/.exec(stderr);
  if (!match) return undefined;
  return `flake ${shown(flake)} imports from a derivation (${match[1]}): evaluating it would build at synth, which plans only; build nothing during evaluation (no import or readFile of a derivation's output)`;
}

const NIX_MISSING =
  "nix is not installed or not on PATH. Enter the project's dev shell (`nix develop`), install Nix " +
  "(https://nixos.org/download), or synthesize from the lock file without Nix: INFRA_RESOLVE=pinned.";

/**
 * Evaluated with --impure so that the request can come in through a file
 * named in the environment: no value is ever spliced into the expression,
 * and the fleet's size is bounded by memory, not by the environment's limit.
 */
const RESOLVE_EXPR = `let
  request = builtins.fromJSON (builtins.readFile (builtins.getEnv "INFRA_NIX_REQUEST_FILE"));
  flake = builtins.getFlake request.flake;
  at = path: builtins.foldl' (set: name: set.\${name}) flake path;
  known = builtins.attrNames (flake.nixosConfigurations or { });
  unknown = builtins.filter (name: !(builtins.elem name known)) request.configurations;
in
if unknown != [ ] then
  throw "nixosConfiguration \\"\${builtins.head unknown}\\" is unknown (known: \${builtins.concatStringsSep ", " known})"
else builtins.mapAttrs (key: path: at path) request.attrs`;

type AttrPaths = Record<string, string[]>;

/** Attribute paths to evaluate, keyed "<section>.<id>.<field>" (ids never contain dots). */
export function attributePaths(settings: Settings): AttrPaths {
  const attrs: AttrPaths = {};
  for (const [id, image] of Object.entries(settings.images)) {
    const config = ["nixosConfigurations", image.nixosConfiguration, "config"];
    attrs[`images.${id}.storePath`] = [...config, "system", "build", "googleComputeImage", "outPath"];
    attrs[`images.${id}.filePath`] = [...config, "image", "filePath"];
    attrs[`images.${id}.nixosLabel`] = [...config, "system", "nixos", "label"];
  }
  for (const [id, host] of Object.entries(settings.hosts)) {
    attrs[`hosts.${id}.toplevel`] = ["nixosConfigurations", host.nixosConfiguration, "config", "system", "build", "toplevel", "outPath"];
  }
  for (const [id, oci] of Object.entries(settings.ociImages)) {
    attrs[`ociImages.${id}.storePath`] = ["packages", settings.system, oci.package, "outPath"];
  }
  return attrs;
}

/**
 * The flake reference handed to builtins.getFlake. A local path becomes what
 * the nix CLI makes of it (the build steps run `nix build <path>#…`): inside
 * a git repository `git+file://<top>?dir=<sub>`, which copies only tracked
 * files and gives the same store paths as the steps; elsewhere `path:<abs>`.
 * (An absolute path alone would make getFlake copy the whole directory,
 * node_modules, state and credentials included, into the world-readable
 * store.) This value never enters synthesized output.
 */
export function evalFlakeRef(flake: string, projectRoot: string): string {
  if (flake.startsWith("path:")) {
    const dir = flake.slice("path:".length);
    return isAbsolute(dir) ? flake : `path:${resolvePath(projectRoot, dir)}`;
  }
  if (!flake.startsWith(".") && !flake.startsWith("/")) return flake;
  const dir = resolvePath(projectRoot, flake);
  const top = gitTopLevel(dir);
  if (top === undefined) return `path:${dir}`;
  const sub = relative(top, dir);
  // A shallow clone is evaluated as the CLI does it (its path parsing adds shallow=1); without it, Nix refuses one.
  const query = [...(sub ? [`dir=${encodeURIComponent(sub)}`] : []), ...(isShallow(top) ? ["shallow=1"] : [])];
  return `git+${pathToFileURL(top).href}${query.length ? `?${query.join("&")}` : ""}`;
}

/** Whether the repository at `top` is a shallow clone: its git directory (or, from a worktree, the common one) has a `shallow` file. */
function isShallow(top: string): boolean {
  const dotGit = join(top, ".git");
  let gitDir = dotGit;
  if (!statSync(dotGit).isDirectory()) {
    const pointer = /^gitdir: (.+)$/m.exec(readFileSync(dotGit, "utf8"))?.[1]?.trim();
    if (!pointer) return false;
    gitDir = resolvePath(top, pointer);
    const common = join(gitDir, "commondir");
    if (existsSync(common)) gitDir = resolvePath(gitDir, readFileSync(common, "utf8").trim());
  }
  return existsSync(join(gitDir, "shallow"));
}

/** The nearest directory at or above `dir` that holds `.git` (a directory, or a file in a worktree). */
function gitTopLevel(dir: string): string | undefined {
  for (let current = dir; ; current = dirname(current)) {
    if (existsSync(join(current, ".git"))) return current;
    if (dirname(current) === current) return undefined;
  }
}

/**
 * Drops Nix's "--show-trace" hint, its dirty-tree warning and its download
 * retries (offline, one line per attempt and per substituter, about ten before
 * the error that matters), and caps the length; keeps Nix's own words.
 */
export function trimNixStderr(stderr: string, maxLines = 25): string {
  // Nix's own retries and notices: a store database another nix process holds
  // for a moment ("SQLite database ... is busy") is waited for, not a failure.
  const noise = [
    /^\(use '--show-trace'/,
    /^warning: Git tree .* is dirty$/,
    /; retrying in \d+ ms$/,
    /^warning: unable to download '[^']*\/nix-cache-info'/,
    /^warning: (error: )?SQLite database '[^']*' is busy$/,
  ];
  const lines = stderr
    .split("\n")
    .filter((l) => !noise.some((re) => re.test(l.trim())))
    .join("\n")
    .trim()
    .split("\n");
  return lines.length > maxLines ? [...lines.slice(0, maxLines), `… (${lines.length - maxLines} more lines)`].join("\n") : lines.join("\n");
}

/** An evaluation that failed for want of network: what to run instead. */
function offlineHint(stderr: string): string {
  if (!/unable to download|Couldn't resolve host|Could not resolve host|unable to connect/.test(stderr)) return "";
  return (
    "; fetching the flake's inputs needs network access. Offline, synthesize from a committed lock " +
    "(INFRA_RESOLVE=pinned) or try the offline example (INFRA_CONFIG=examples/offline.json)"
  );
}

/**
 * A configuration the flake lacks, as one line: the settings that name it and
 * the nearest name it has. Both the resolve expression and the product flake
 * (nixos/configurations.nix, for a name without a module) say
 * `nixosConfiguration "<name>" is unknown (known: <a>, <b>)`.
 */
function unknownConfiguration(stderr: string, settings: Settings): string | undefined {
  const match = /nixosConfiguration "([^"]+)" is unknown \(known: ([^)]*)\)/.exec(stderr);
  if (!match) return undefined;
  const [, name, list] = match;
  const known = list.split(", ").filter(Boolean);
  const keys = [
    ...Object.entries(settings.images).filter(([, i]) => i.nixosConfiguration === name).map(([id]) => `images.${id}.nixosConfiguration`),
    ...Object.entries(settings.hosts).filter(([, h]) => h.nixosConfiguration === name).map(([id]) => `hosts.${id}.nixosConfiguration`),
  ];
  const guess = nearest(name, known);
  return `${keys.join(", ") || "nixosConfiguration"}: ${shown(name)} is not a nixosConfiguration of flake ${shown(settings.flake)}${guess ? `; did you mean ${shown(guess)}?` : ""} (known: ${known.join(", ") || "none"})`;
}

/** Which requested values an "attribute 'x' missing" error is about. */
function missingAttributeContext(stderr: string, attrs: AttrPaths): string {
  const match = /attribute '([^']+)' missing/.exec(stderr);
  if (!match) return "";
  const keys = Object.entries(attrs)
    .filter(([, path]) => path.includes(match[1]))
    .map(([key, path]) => `${key.split(".").slice(0, 2).join(".")} (${path.slice(0, -1).join(".")})`);
  const unique = [...new Set(keys)];
  return unique.length ? ` while resolving ${unique.join(", ")}` : "";
}

function assemble(flake: string, system: string, values: Record<string, unknown>, settings: Settings): Resolved {
  const str = (key: string, field: keyof typeof resolvedFields = "storePath"): string => {
    const v = values[key];
    if (typeof v !== "string") throw new NixError(`nix eval returned no string for ${key} (got ${shown(v)})`);
    const checked = resolvedFields[field].safeParse(v);
    if (!checked.success) throw new NixError(`the flake gives ${key} = ${shown(v)}, which ${checked.error.issues[0].message}`);
    return v;
  };
  const images: Record<string, ResolvedImage> = {};
  for (const [id, image] of Object.entries(settings.images)) {
    images[id] = {
      nixosConfiguration: image.nixosConfiguration,
      storePath: str(`images.${id}.storePath`),
      filePath: str(`images.${id}.filePath`, "filePath"),
      nixosLabel: str(`images.${id}.nixosLabel`, "nixosLabel"),
    };
  }
  const hosts: Record<string, ResolvedHost> = {};
  for (const [id, host] of Object.entries(settings.hosts)) {
    hosts[id] = { nixosConfiguration: host.nixosConfiguration, toplevel: str(`hosts.${id}.toplevel`) };
  }
  const ociImages: Record<string, ResolvedOciImage> = {};
  for (const [id, oci] of Object.entries(settings.ociImages)) {
    ociImages[id] = { package: oci.package, storePath: str(`ociImages.${id}.storePath`) };
  }
  return { flake, system, images, hosts, ociImages };
}

export interface EvalOptions {
  /** Directory relative flake paths are resolved against. */
  readonly projectRoot: string;
  /** Where the progress line goes. @default process.stderr */
  readonly log?: (line: string) => void;
}

/** Resolves every planned store path with exactly one `nix eval` process. */
export async function resolveWithNix(settings: Settings, options: EvalOptions): Promise<Resolved> {
  const attrs = attributePaths(settings);
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const counts = `${Object.keys(settings.images).length} image(s), ${Object.keys(settings.hosts).length} host(s), ${Object.keys(settings.ociImages).length} OCI image(s)`;
  log(`nix eval: resolving ${counts} of flake ${settings.flake} (evaluation only, nothing is built)…`);
  const started = Date.now();
  const configurations = [...new Set([...Object.values(settings.images), ...Object.values(settings.hosts)].map((e) => e.nixosConfiguration))];
  const request = { flake: evalFlakeRef(settings.flake, options.projectRoot), attrs, configurations };
  const values = (await evalWithRequest(
    RESOLVE_EXPR,
    request,
    options.projectRoot,
    (stderr) =>
      unknownConfiguration(stderr, settings) ??
      importFromDerivation(stderr, settings.flake) ??
      `nix eval of flake "${settings.flake}" failed${missingAttributeContext(stderr, attrs)}${offlineHint(stderr)}:\n${trimNixStderr(stderr)}`,
    NO_BUILD_ARGS,
  )) as Record<string, unknown>;
  log(`nix eval: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return assemble(settings.flake, settings.system, values, settings);
}

/**
 * One `nix eval --json --impure` of `expr`, which reads `request` from the
 * file named by INFRA_NIX_REQUEST_FILE (so no value is spliced into the
 * expression). The parsed answer; a NixError with `failed(stderr)` if Nix fails.
 * `extraArgs` go to `nix eval` after the feature flags.
 */
export async function evalWithRequest(
  expr: string,
  request: unknown,
  cwd: string,
  failed: (stderr: string) => string,
  extraArgs: readonly string[] = [],
): Promise<unknown> {
  const requestDir = mkdtempSync(join(tmpdir(), "infra-nix-request-"));
  const requestFile = join(requestDir, "request.json");
  writeFileSync(requestFile, JSON.stringify(request), { mode: 0o600 });
  let result;
  try {
    result = await execa("nix", [...NIX_FEATURE_ARGS, ...extraArgs, "eval", "--json", "--impure", "--expr", expr], {
      cwd,
      env: { INFRA_NIX_REQUEST_FILE: requestFile },
      reject: false,
      stdin: "ignore",
    });
  } catch (e) {
    throw new NixError(`could not start nix: ${(e as Error).message}`);
  } finally {
    rmSync(requestDir, { recursive: true, force: true });
  }
  if ((result as { code?: string }).code === "ENOENT") throw new NixError(NIX_MISSING);
  if (result.exitCode !== 0) throw new NixError(failed(String(result.stderr ?? "")));
  try {
    return JSON.parse(String(result.stdout));
  } catch {
    throw new NixError(`nix eval printed something that is not JSON: ${String(result.stdout).slice(0, 200)}`);
  }
}
