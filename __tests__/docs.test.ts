/**
 * The docs against the code, where a machine can tell: docs/settings.md is
 * what `npm run schema` generates and gives every key a meaning, every
 * repository path README.md and docs/*.md name exists, and README.md stays short.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { settingsJsonSchema } from "../lib/settings.js";
import { settingsReference } from "../tools/settings-reference.js";
import { REPO_ROOT } from "./helpers/nix.js";

const read = (path: string) => readFileSync(join(REPO_ROOT, path), "utf8");
const DOCS = ["README.md", ...readdirSync(join(REPO_ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];

test("docs/settings.md is what npm run schema generates from lib/settings.ts", () => {
  expect(read("docs/settings.md")).toBe(settingsReference(settingsJsonSchema() as Record<string, unknown>));
});

test("every key in docs/settings.md says what it means (a .describe() text)", () => {
  const reference = settingsReference(settingsJsonSchema() as Record<string, unknown>).split("\n");
  expect(reference.filter((row) => row.startsWith("| `") && row.endsWith("|  |"))).toEqual([]);
});

test("README.md has at most 250 lines", () => {
  expect(read("README.md").split("\n").length).toBeLessThanOrEqual(250);
});

test("README.md's first 60 lines take a newcomer from npm ci to npm test, and the example's lines they name hold what they say", () => {
  const first = read("README.md").split("\n").slice(0, 60).join("\n");
  for (const command of ["npm ci", "INFRA_CONFIG=examples/offline.json npm run rehearse", "npm test"]) expect(first).toMatch(new RegExp(`^${command} `, "m"));
  const inputs = read("examples/flake/inputs.json").split("\n");
  const named = [...first.matchAll(/line (\d+),? .*?`("[^`]+")`/gs)].map(([, line, text]) => ({ line, text }));
  expect(named.map(({ line }) => line)).toEqual(["16", "11"]);
  for (const { line, text } of named) expect(inputs[Number(line) - 1].trim().replace(/,$/, "")).toBe(text);
});

/** Repository paths in a text: in backticks from a top-level folder, test files by name, and link targets. */
function namedPaths(text: string, file: string): string[] {
  const top = "(?:lib|bin|tools|constructs|nixos|oci|pkgs|__tests__|docs|examples|\\.github|\\.ci)/";
  const found = [
    ...[...text.matchAll(new RegExp(`\`(${top}[^\`\\s]*)\``, "g"))].map((m) => m[1]),
    // A test file named alone (`synth.test.ts`) is in __tests__/.
    ...[...text.matchAll(/`([\w-]+\.test\.ts)`/g)].map((m) => `__tests__/${m[1]}`),
    // Links are relative to the file: docs/x.md's (ssh.md) is docs/ssh.md.
    ...[...text.matchAll(/\]\(([^)#:\s]+)[^)]*\)/g)].map((m) => join(file.includes("/") ? "docs" : "", m[1])),
  ];
  // {a,b} names each alternative.
  return found.flatMap((p) => {
    const brace = /\{([^}]*)\}/.exec(p);
    return brace ? brace[1].split(",").map((alt) => p.replace(brace[0], alt)) : [p];
  });
}

test("README.md's repository paths are found (so the check below checks something)", () => {
  expect(namedPaths(read("README.md"), "README.md")).toEqual(expect.arrayContaining(["nixos/common.nix", "docs/settings.md"]));
});

test.each(DOCS)("every repository path %s names exists", (file) => {
  const paths = namedPaths(read(file), file);
  const missing = paths.filter((p) => {
    // A placeholder (`nixos/hosts/<name>.nix`, `constructs/<step>.ts`): its directory must exist.
    const path = p.includes("<") ? p.slice(0, p.indexOf("<")) : p;
    // nixos/<hash>/ is an object in the image bucket, not a repository path.
    return !p.startsWith("nixos/<hash>") && !existsSync(join(REPO_ROOT, path.replace(/…$/, "")));
  });
  expect(missing).toEqual([]);
});
