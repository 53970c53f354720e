/**
 * What changes inside each host and image between two flakes, from their
 * derivation graphs (nothing is built): packages added, removed and changed
 * in version, named as nvd names them, and a count of the other derivations
 * that changed. Pure functions; tools/host-diff-nix.ts asks Nix.
 */

export interface PackageVersion {
  readonly name: string;
  /** The versions present, sorted and joined with ", "; "" for a name without a version. */
  readonly version: string;
}
export interface VersionChange {
  readonly name: string;
  readonly from: string;
  readonly to: string;
}
export interface SystemDiff {
  readonly added: readonly PackageVersion[];
  readonly removed: readonly PackageVersion[];
  readonly changed: readonly VersionChange[];
  /** Derivations that changed while their name's versions did not (a configuration file, a unit). */
  readonly otherChanged: number;
}
export type SystemReport = { readonly status: "unchanged" } | { readonly status: "new" } | ({ readonly status: "changed" } & SystemDiff);
export interface HostDiffReport {
  readonly hosts: Readonly<Record<string, SystemReport>>;
  readonly images: Readonly<Record<string, SystemReport>>;
}

/**
 * Name and version of a derivation, by nvd's rule (the rule of Nix's
 * builtins.parseDrvName, narrowed to digits): the version starts at the first
 * "-" followed by a digit. The store directory, hash and ".drv" are dropped.
 */
export function parseDrvName(pathOrName: string): PackageVersion {
  const base = pathOrName.slice(pathOrName.lastIndexOf("/") + 1).replace(/^[0-9a-z]{32}-/, "").replace(/\.drv$/, "");
  const match = /^(.+?)(?:-(\d.*))?$/.exec(base);
  return { name: match?.[1] ?? base, version: match?.[2] ?? "" };
}

const collator = new Intl.Collator("en", { numeric: true });
const byName = <T extends { name: string }>(a: T, b: T) => collator.compare(a.name, b.name);

/** name -> the versions of its derivations, sorted and joined. */
function versionsByName(drvs: ReadonlySet<string>): Map<string, string> {
  const sets = new Map<string, Set<string>>();
  for (const drv of drvs) {
    const { name, version } = parseDrvName(drv);
    const set = sets.get(name) ?? new Set<string>();
    set.add(version);
    sets.set(name, set);
  }
  // A name seen with and without a version lists the versions only.
  const joined = (set: Set<string>) => [...set].filter((v) => v || set.size === 1).sort(collator.compare).join(", ");
  return new Map([...sets].map(([name, set]) => [name, joined(set)]));
}

/** Compares two derivation graphs (each a set of .drv paths: a system's whole closure of derivations). */
export function diffDerivations(base: ReadonlySet<string>, head: ReadonlySet<string>): SystemDiff {
  const before = versionsByName(base);
  const after = versionsByName(head);
  const added: PackageVersion[] = [];
  const removed: PackageVersion[] = [];
  const changed: VersionChange[] = [];
  for (const [name, version] of after) {
    const from = before.get(name);
    if (from === undefined) added.push({ name, version });
    else if (from !== version) changed.push({ name, from, to: version });
  }
  for (const [name, version] of before) if (!after.has(name)) removed.push({ name, version });
  let otherChanged = 0;
  for (const drv of head) {
    if (base.has(drv)) continue;
    const { name } = parseDrvName(drv);
    if (before.get(name) === after.get(name)) otherChanged += 1;
  }
  return { added: added.sort(byName), removed: removed.sort(byName), changed: changed.sort(byName), otherChanged };
}

/** A value with every object's keys sorted, for stable JSON. */
function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, sortedKeys((value as Record<string, unknown>)[key])]),
  );
}

/** `--json`: the report with sorted keys. */
export function renderJson(report: HostDiffReport | { readonly baseError: string }): string {
  return `${JSON.stringify(sortedKeys(report), null, 2)}\n`;
}

export const HOST_DIFF_HEADING = "### Inside the hosts and images";

/** The whole Markdown when the base flake does not evaluate: one line. */
export function renderBaseFailure(): string {
  return "**Inside the hosts and images:** not compared, because the base flake did not evaluate (Nix's error is in the job log).\n";
}

interface Member {
  readonly kind: "host" | "image";
  readonly id: string;
}

/** "hosts <code>a</code>, <code>b</code>; image <code>base</code>", naming at most `cap` of them. */
function who(members: readonly Member[], cap: number): string {
  const named = members.slice(0, cap);
  const part = (kind: Member["kind"]) => {
    const ids = named.filter((m) => m.kind === kind).map((m) => `<code>${m.id}</code>`);
    return ids.length ? `${kind}${members.filter((m) => m.kind === kind).length > 1 ? "s" : ""} ${ids.join(", ")}` : "";
  };
  const more = members.length > cap ? ` and ${members.length - cap} more` : "";
  return [part("host"), part("image")].filter(Boolean).join("; ") + more;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

function summaryOf(diff: SystemDiff): string {
  const parts = [
    diff.changed.length ? plural(diff.changed.length, "version change") : "",
    diff.added.length ? `${diff.added.length} added` : "",
    diff.removed.length ? `${diff.removed.length} removed` : "",
    diff.otherChanged ? plural(diff.otherChanged, "other changed derivation") : "",
  ];
  return parts.filter(Boolean).join(", ");
}

const withVersion = (p: PackageVersion) => `\`${p.name}\`${p.version ? ` ${p.version}` : ""}`;

/** The list of one entry, nvd's order (version changes, then added, then removed), capped at `maxLines`. */
function entryLines(diff: SystemDiff, maxLines: number): string[] {
  const lines = [
    ...diff.changed.map((c) => `- \`${c.name}\` ${c.from || "(no version)"} → ${c.to || "(no version)"}`),
    ...diff.added.map((p) => `- added ${withVersion(p)}`),
    ...diff.removed.map((p) => `- removed ${withVersion(p)}`),
  ];
  if (lines.length > maxLines) lines.splice(maxLines, lines.length - maxLines, `- … and ${lines.length - maxLines} more`);
  if (diff.otherChanged) {
    if (lines.length) lines.push("");
    lines.push(`${plural(diff.otherChanged, "other derivation")} changed without a version change (configuration files, units, scripts).`);
  }
  return lines;
}

export interface MarkdownOptions {
  /** Packages listed per entry, and hosts or images named per line, before "and N more". @default 40 */
  readonly maxLines?: number;
}

/**
 * The pull-request comment's section: one `<details>` entry per distinct diff
 * (hosts and images with identical diffs share it), then the new and the
 * unchanged ones on a line each.
 */
export function renderMarkdown(report: HostDiffReport, options: MarkdownOptions = {}): string {
  const maxLines = options.maxLines ?? 40;
  const entries = new Map<string, { diff: SystemDiff; members: Member[] }>();
  const fresh: Member[] = [];
  const unchanged: Member[] = [];
  for (const kind of ["host", "image"] as const) {
    const section = kind === "host" ? report.hosts : report.images;
    for (const id of Object.keys(section).sort()) {
      const system = section[id];
      if (system.status === "new") fresh.push({ kind, id });
      else if (system.status === "unchanged") unchanged.push({ kind, id });
      else {
        const { status: _status, ...diff } = system;
        const key = JSON.stringify(diff);
        const entry = entries.get(key) ?? { diff, members: [] };
        entry.members.push({ kind, id });
        entries.set(key, entry);
      }
    }
  }
  const out = [
    HOST_DIFF_HEADING,
    "",
    "Compared with the base flake by evaluation only (nothing built). The packages are the names and versions of each system's " +
      "derivation graph, which includes build-time dependencies (compilers, sources, build tools), not only what is installed.",
    "",
  ];
  if (entries.size === 0 && fresh.length === 0) out.push("No host or image changes.", "");
  for (const { diff, members } of entries.values()) {
    const label = who(members, maxLines);
    out.push(`<details><summary>${label[0].toUpperCase()}${label.slice(1)}: ${summaryOf(diff)}</summary>`, "", ...entryLines(diff, maxLines), "", "</details>", "");
  }
  if (fresh.length) out.push(`New (no such configuration in the base): ${who(fresh, maxLines)}.`, "");
  if (unchanged.length && (entries.size || fresh.length)) out.push(`Unchanged: ${who(unchanged, maxLines)}.`, "");
  return `${out.join("\n").trimEnd()}\n`;
}
