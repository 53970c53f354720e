/**
 * The lock file of resolved store paths (`npm run pin`), for runners without Nix.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { z } from "zod";
import { oneLine } from "./text.js";
import { NixError, type Resolved } from "./nix.js";
import { resolvedHostSchema, resolvedImageSchema, resolvedOciSchema } from "./resolved.js";
import { describeIssue } from "./settings-issues.js";
import type { Settings } from "./settings.js";

const lockSchema = z.strictObject({
  version: z.literal(1),
  flake: z.string(),
  system: z.string(),
  images: z.record(z.string(), resolvedImageSchema),
  hosts: z.record(z.string(), resolvedHostSchema),
  ociImages: z.record(z.string(), resolvedOciSchema),
});

/** JSON with sorted keys and a final newline, so the same content gives the same bytes. */
export function stableJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === "object") {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
      );
    }
    return v;
  };
  return `${JSON.stringify(sort(value), null, 2)}\n`;
}

export function lockText(resolved: Resolved): string {
  return stableJson({ version: 1, ...resolved });
}

export function writeLock(file: string, resolved: Resolved): void {
  try {
    writeFileSync(file, lockText(resolved));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? `its directory ${dirname(file)} does not exist` : code === "EISDIR" ? "it is a directory" : (code ?? String(e));
    throw new NixError(`lockFile ${file}: cannot write it (${why}); set lockFile to a file path such as "infra.lock.json"`);
  }
}

/**
 * Reads the lock file; undefined when it does not exist. `name` is how errors
 * call it (the setting's value). A file that is not a lock this version reads
 * is an error, or, given `replacing` (pin, which rewrites it), reported to it
 * and read as no lock.
 */
export function readLock(file: string, name = file, replacing?: (problem: string) => void): Resolved | undefined {
  if (!existsSync(file)) return undefined;
  if (statSync(file).isDirectory()) throw new NixError(`lockFile ${name}: is a directory; set lockFile to a file path such as "infra.lock.json"`);
  const unreadable = (problem: string) => {
    if (!replacing) throw new NixError(`lockFile ${name}: ${problem}; run \`npm run pin\` to rewrite it`);
    replacing(`lockFile ${name}: ${problem}`);
    return undefined;
  };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    // The parser's message cut and escaped: it quotes the file's first bytes.
    return unreadable(`not valid JSON (${oneLine((e as Error).message).slice(0, 120)})`);
  }
  const parsed = lockSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    // In the settings' words: the key, the rule, the value.
    const [first] = describeIssue(parsed.error.issues[0], () => "pin writes no such key");
    return unreadable(`not a lock file written by \`npm run pin\`: ${first}`);
  }
  const { version: _version, ...resolved } = parsed.data;
  return resolved;
}

function flatten(value: unknown, prefix = ""): Map<string, string> {
  const out = new Map<string, string>();
  if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      for (const [kk, vv] of flatten(v, prefix ? `${prefix}.${k}` : k)) out.set(kk, vv);
    }
  } else {
    out.set(prefix, String(value));
  }
  return out;
}

/** One line per difference, e.g. `hosts.vm.toplevel: /nix/store/a… → /nix/store/b…`. Empty when equal. */
export function lockDifferences(locked: Resolved, current: Resolved): string[] {
  const a = flatten(locked);
  const b = flatten(current);
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  const lines: string[] = [];
  for (const key of keys) {
    if (!a.has(key)) lines.push(`${key}: not in the lock (new)`);
    else if (!b.has(key)) lines.push(`${key}: in the lock but no longer in the settings`);
    else if (a.get(key) !== b.get(key)) lines.push(`${key}: ${a.get(key)} → ${b.get(key)}`);
  }
  return lines;
}

/** Synthesizes from the lock alone: every id in the settings must be locked with the same attribute. */
export function resolveFromLock(settings: Settings, lock: Resolved, file: string): Resolved {
  const problems: string[] = [];
  if (lock.flake !== settings.flake) problems.push(`flake is "${settings.flake}" in the settings but "${lock.flake}" in the lock`);
  if (lock.system !== settings.system) problems.push(`system is "${settings.system}" in the settings but "${lock.system}" in the lock`);
  const pick = <T extends object>(section: string, wanted: Record<string, Record<string, unknown>>, locked: Readonly<Record<string, T>>, field: string) => {
    const out: Record<string, T> = {};
    for (const [id, entry] of Object.entries(wanted)) {
      const hit = locked[id] as (T & Record<string, unknown>) | undefined;
      if (!hit) problems.push(`${section}.${id} is not in the lock`);
      else if (hit[field] !== entry[field]) problems.push(`${section}.${id}.${field} is "${entry[field]}" in the settings but "${hit[field]}" in the lock`);
      else out[id] = hit;
    }
    return out;
  };
  const images = pick("images", settings.images, lock.images, "nixosConfiguration");
  const hosts = pick("hosts", settings.hosts, lock.hosts, "nixosConfiguration");
  const ociImages = pick("ociImages", settings.ociImages, lock.ociImages, "package");
  if (problems.length) {
    throw new NixError(`${file} does not match the settings; run \`npm run pin\` on a machine with Nix and network access:\n  ${problems.join("\n  ")}`);
  }
  return { flake: lock.flake, system: lock.system, images, hosts, ociImages };
}
