/**
 * README.md and docs/architecture.md against the code, where a machine can
 * tell: the settings table (keys, defaults, what is required), the files the
 * docs name, and the files the layout lists.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { settingsJsonSchema } from "../lib/settings.js";
import { REPO_ROOT } from "./helpers/nix.js";

const README = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
const ARCHITECTURE = readFileSync(join(REPO_ROOT, "docs", "architecture.md"), "utf8");

interface SchemaKey {
  readonly path: string;
  readonly required: boolean;
  readonly default: unknown;
  readonly object: boolean;
}

/** Every key of the published schema, `<id>` for a record's keys; containers included. */
function schemaKeys(schema: any, path = "", required = false): SchemaKey[] {
  const alternatives = [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])];
  if (alternatives.length) {
    const merged = new Map<string, SchemaKey>();
    for (const key of alternatives.flatMap((a: any) => schemaKeys({ ...a, default: schema.default ?? a.default }, path, required))) merged.set(key.path, merged.get(key.path) ?? key);
    return [...merged.values()];
  }
  const own: SchemaKey[] = path ? [{ path, required, default: schema.default, object: schema.type === "object" }] : [];
  if (schema.type === "object" && schema.properties) {
    const req = new Set<string>(schema.required ?? []);
    return [...own, ...Object.entries(schema.properties).flatMap(([k, v]) => schemaKeys(v, path ? `${path}.${k}` : k, req.has(k)))];
  }
  if (schema.type === "object" && typeof schema.additionalProperties === "object" && schema.additionalProperties.properties) {
    return [...own, ...schemaKeys(schema.additionalProperties, `${path}.<id>`, true).map((k) => (k.path === `${path}.<id>` ? { ...k, required: false } : k))];
  }
  return own;
}

interface Row {
  readonly keys: string[];
  readonly defaults: string[];
  readonly text: string;
}

/** The settings table's rows: `a`, `.b` (a sibling of the key before) in the first cell, one default per key in the second. */
function settingsRows(): Row[] {
  const section = README.split("\n## Settings\n")[1].split("\n## ")[0];
  const lines = section.split("\n").filter((l) => l.startsWith("| `"));
  return lines.map((line) => {
    const cells = line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
    const keys: string[] = [];
    for (const [, name] of cells[0].matchAll(/`([^`]+)`/g)) {
      keys.push(name.startsWith(".") ? keys[keys.length - 1].replace(/\.[^.]+$/, "") + name : name);
    }
    // Defaults: one per key, split on the commas between them (none is inside a backtick span).
    const defaults = cells[1] === "required" ? keys.map(() => "required") : cells[1].split(/,\s+(?=[^`]*(?:`[^`]*`[^`]*)*$)/);
    return { keys, defaults, text: line };
  });
}

describe("the README settings table against infra.schema.json's source (lib/settings.ts)", () => {
  const keys = schemaKeys(settingsJsonSchema());
  const byPath = new Map(keys.map((k) => [k.path, k]));
  const rows = settingsRows();
  const documented = new Map(rows.flatMap((row) => row.keys.map((key, i) => [key, { row, default: row.defaults[i] }] as const)));

  test("it has rows, and each gives one default per key", () => {
    expect(rows.length).toBeGreaterThan(20);
    for (const row of rows) if (row.keys.length > 1) expect({ row: row.text, defaults: row.defaults.length }).toEqual({ row: row.text, defaults: row.keys.length });
  });

  test("every key it names exists", () => {
    expect([...documented.keys()].filter((k) => !byPath.has(k))).toEqual([]);
  });

  test("every key is in it: in a row of its own, or named in its object's row (backend, a host's nixGc)", () => {
    // Containers of documented keys and the editor's $schema need no row.
    const containers = new Set(["images", "hosts", "ociImages", "deploy", "registry", "nixGc", "images.<id>", "ociImages.<id>"]);
    const missing = keys
      .filter((k) => k.path !== "$schema" && !containers.has(k.path) && !documented.has(k.path))
      .filter((k) => {
        const parent = documented.get(k.path.replace(/\.[^.]+$/, ""));
        return !parent || !parent.row.text.includes(k.path.split(".").pop()!);
      })
      .map((k) => k.path);
    expect(missing).toEqual([]);
  });

  test("each key's default (or required) is the schema's", () => {
    const wrong: string[] = [];
    for (const [path, { default: cell }] of documented) {
      const key = byPath.get(path);
      if (!key) continue; // named by the test above
      const literal = /^`(.*)`$/.exec(cell)?.[1];
      if (cell === "required") {
        if (!key.required) wrong.push(`${path}: README says required, the schema does not`);
      } else if (literal !== undefined && !(key.object && key.default === undefined)) {
        let value: unknown;
        try {
          value = JSON.parse(literal);
        } catch {
          wrong.push(`${path}: README default ${cell} is not a JSON value`);
          continue;
        }
        if (JSON.stringify(value) !== JSON.stringify(key.default)) wrong.push(`${path}: README default ${cell}, schema ${JSON.stringify(key.default)}`);
      } else if (literal === undefined && key.default !== undefined && !key.object) {
        // Words ("region", "–", "unset (IAP)") describe a key without a schema default.
        wrong.push(`${path}: README default "${cell}", schema ${JSON.stringify(key.default)}`);
      } else if (key.required) {
        wrong.push(`${path}: required in the schema, README gives a default`);
      }
    }
    expect(wrong).toEqual([]);
  });
});

describe("files the docs name", () => {
  const TOP = "(?:lib|bin|tools|constructs|nixos|oci|pkgs|__tests__|docs|examples|\\.github|\\.ci)";
  /** Repository paths in the text; `/usr/bin/time` or `/etc/nixos/…` are not (a `/` before them). */
  function namedPaths(text: string): string[] {
    const found = [...text.matchAll(new RegExp(`(?<![\\w/.-])(${TOP}/[\\w./{},<>*-]*[\\w}>/])`, "g"))].map((m) => m[1]);
    // {a,b} names each file; <x> is a placeholder, checked below as a pattern.
    return found.flatMap((p) => {
      const brace = /\{([^}]*)\}/.exec(p);
      return brace ? brace[1].split(",").map((alt) => p.replace(brace[0], alt)) : [p];
    });
  }

  test.each([
    ["README.md", README],
    ["docs/architecture.md", ARCHITECTURE],
  ])("every repository path %s names exists", (_, text) => {
    const paths = namedPaths(text);
    expect(paths.length).toBeGreaterThan(10);
    const missing = paths.filter((p) => {
      if (!p.includes("<")) return !existsSync(join(REPO_ROOT, p));
      // A placeholder path: its directory must exist (nixos/<hash>/ is a bucket path, not the repository's).
      const dir = p.slice(0, p.indexOf("<")).replace(/\/[^/]*$/, "");
      return p !== "nixos/<hash>/" && !existsSync(join(REPO_ROOT, dir));
    });
    expect(missing).toEqual([]);
  });

  test("the layout names every file of bin/, lib/, constructs/ (scripts), nixos/, oci/ and pkgs/", () => {
    const named = new Set(namedPaths(README));
    const patterns = [...named]
      .filter((p) => p.includes("<"))
      .map((p) => new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/<[^>]+>/g, "[^/]+")}$`));
    const files = (dir: string): string[] =>
      readdirSync(join(REPO_ROOT, dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(`${dir}/${e.name}`) : [`${dir}/${e.name}`]));
    const unnamed = ["bin", "lib", "nixos", "oci", "pkgs", ...files("constructs").filter((f) => f.endsWith(".sh"))]
      .flatMap((f) => (f.includes(".") ? [f] : files(f)))
      .filter((f) => {
        const base = f.split("/").pop()!;
        const inBackticks = [base, base.replace(/\.ts$/, "")].some((n) => README.includes(`\`${n}\``));
        return !named.has(f) && !inBackticks && !patterns.some((p) => p.test(f));
      });
    expect(unnamed).toEqual([]);
  });
});
