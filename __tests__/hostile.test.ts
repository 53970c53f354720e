/**
 * Hostile values through every string key of the settings: each is either
 * refused with a line naming the key, or reaches the synthesized stacks and
 * comes out of Terraform's own template engine exactly as written.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Testing } from "cdktf";
import { BootstrapStack } from "../constructs/bootstrap-stack.js";
import { InfraStack } from "../constructs/infra-stack.js";
import { parseSettings, SettingsError, settingsJsonSchema, type SettingsInput } from "../lib/settings.js";
import { describeWithTool } from "./helpers/tools.js";
import { staticResolved } from "./helpers/stack.js";
import { REAL_KEY } from "./helpers/settings.js";

/** Marks the hostile part, so its copies can be found in the output. */
const MARK = "Q7Z";
/**
 * One strong value: spaces, quotes, `;`, `$()`, backticks and Terraform's
 * template syntax (`${…}`, `%{…}`, `$${`). Values reach a shell only through a
 * local-exec environment, so it must arrive verbatim wherever it is accepted.
 */
const STRONG = `${MARK} a'b"c; $(touch pwned) \`id\` \${file("/etc/hostname")} %{ if true }x%{ endif } $\${x}$$\${y}`;
/** What no key may carry: a newline, and cdktf's own token markers (cdktf resolves them before any escaping). */
const HOSTILE = [STRONG, `${STRONG} \${TfToken[TOKEN.1]}#{TfToken[TOKEN.1]}\nsecond line`];

/** Settings with every optional string key present. */
function fullSettings(): SettingsInput & Record<string, unknown> {
  return {
    $schema: "./infra.schema.json",
    project: "test-project",
    region: "europe-west1",
    zone: "europe-west1-b",
    flake: ".",
    system: "x86_64-linux",
    imageBucket: "test-project-images",
    imageBucketLocation: "EU",
    imageStorageLocation: "eu",
    labels: { team: "data" },
    ociSource: "https://example.com/repo",
    lockFile: "infra.lock.json",
    stateDir: ".infra",
    nixGc: { keepGenerations: 5, schedule: "weekly" },
    secretLocations: ["europe-west1"],
    backend: { type: "gcs", bucket: "test-project-state", prefix: "nixos-gce" },
    deploy: { user: "deploy", package: "deploy-rs" },
    registry: { repository: "pipeline" },
    images: { base: { nixosConfiguration: "gce-base", family: "nixos-base", guestOsFeatures: ["VIRTIO_SCSI_MULTIQUEUE"] } },
    hosts: {
      vm: {
        nixosConfiguration: "vm",
        image: "base",
        machineType: "e2-small",
        diskType: "pd-balanced",
        network: "default",
        subnetwork: "data",
        tags: ["etl"],
        labels: { tier: "batch" },
        sshSourceRanges: ["203.0.113.0/24"],
        sshKeys: [`${REAL_KEY} me@example`],
        runsOciImages: ["ingest"],
        nixGc: { schedule: "daily" },
        secrets: { token: { owner: "root", mode: "0400" } },
      },
    },
    ociImages: { ingest: { package: "oci-ingest", version: "1.0.0", user: "65534:65534" } },
  };
}

type Step = string | { key: true } | { index: true };
/** Every place a string can sit in the settings, from the published JSON Schema: values, array items, and ids (record keys). */
function stringSlots(schema: any, path: Step[] = []): Step[][] {
  if (!schema || typeof schema !== "object") return [];
  const out: Step[][] = [];
  for (const alt of [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])]) out.push(...stringSlots(alt, path));
  if (schema.type === "string" && !schema.enum && schema.const === undefined) out.push(path);
  if (schema.type === "array") out.push(...stringSlots(schema.items, [...path, { index: true }]));
  if (schema.type === "object") {
    for (const [k, v] of Object.entries(schema.properties ?? {})) out.push(...stringSlots(v, [...path, k]));
    if (schema.additionalProperties && typeof schema.additionalProperties === "object") {
      out.push([...path, { key: true }]);
      out.push(...stringSlots(schema.additionalProperties, [...path, "*"]));
    }
  }
  const seen = new Set<string>();
  return out.filter((p) => !seen.has(JSON.stringify(p)) && seen.add(JSON.stringify(p)));
}

/** Puts `value` at the slot in a copy of `raw`; returns the concrete path, or undefined when the slot is absent. */
function place(raw: any, slot: Step[], value: string): (string | number)[] | undefined {
  let node = raw;
  const concrete: (string | number)[] = [];
  for (let i = 0; i < slot.length; i++) {
    const step = slot[i];
    const last = i === slot.length - 1;
    if (typeof step === "object" && "key" in step) {
      const first = Object.keys(node)[0];
      node[value] = node[first];
      delete node[first];
      concrete.push(value);
      return concrete;
    }
    const key = typeof step === "object" ? 0 : step === "*" ? Object.keys(node)[0] : step;
    if (node === undefined || node[key] === undefined) return undefined;
    concrete.push(key);
    if (last) node[key] = typeof node[key] === "string" && value.startsWith(" ") ? node[key] + value : value;
    else node = node[key];
  }
  return concrete;
}

const label = (path: (string | number)[]) =>
  path.map((p) => (typeof p === "number" ? `[${p}]` : /^[A-Za-z0-9_$-]+$/.test(p) ? `.${p}` : `[${JSON.stringify(p)}]`)).join("").replace(/^\./, "");

interface Accepted {
  slot: string;
  hostile: string;
  strings: string[];
}

/** Strings of both stacks that carry the mark, exactly as written in cdk.tf.json. */
function markedStrings(raw: unknown): string[] {
  const settings = parseSettings(raw, "hostile");
  const resolved = staticResolved(settings);
  const app = Testing.app();
  const jsons = [Testing.synth(new InfraStack(app, "infra", { settings, resolved })), Testing.synth(new BootstrapStack(app, "bootstrap", { settings }))];
  const found: string[] = [];
  const walk = (v: unknown) => {
    if (typeof v === "string") {
      if (v.includes(MARK)) found.push(v);
    } else if (v && typeof v === "object") Object.values(v).forEach(walk);
  };
  jsons.forEach((j) => walk(JSON.parse(j)));
  return found;
}

const slots = stringSlots(settingsJsonSchema());
const cases: { slot: Step[]; hostile: string; value: string }[] = [];
for (const slot of slots) {
  // The hostile text alone, and after a valid value (an SSH key's comment is free text).
  for (const hostile of HOSTILE) cases.push({ slot, hostile, value: hostile });
  cases.push({ slot, hostile: STRONG, value: ` ${STRONG}` });
}

describe("hostile values through every string key of the settings", () => {
  const accepted: Accepted[] = [];

  test("the schema walk finds every string key, ids included", () => {
    const names = slots.map((s) => s.map((p) => (typeof p === "string" ? p : "key" in p ? "<id>" : "[]")).join("."));
    // A sample that must be there; the full list drives the cases below.
    expect(names).toEqual(
      expect.arrayContaining([
        "project",
        "flake",
        "stateDir",
        "imageBucketLocation",
        "ociSource",
        "backend.bucket",
        "backend.prefix",
        "deploy.user",
        "deploy.package",
        "labels.<id>",
        "labels.*",
        "images.<id>",
        "images.*.family",
        "hosts.<id>",
        "hosts.*.network",
        "hosts.*.subnetwork",
        "hosts.*.sshKeys.[]",
        "hosts.*.sshSourceRanges.[]",
        "hosts.*.tags.[]",
        "hosts.*.runsOciImages.[]",
        "ociImages.*.version",
      ]),
    );
    expect(slots.length).toBeGreaterThanOrEqual(35);
  });

  test.each(cases.map((c) => [c.slot.map((p) => (typeof p === "string" ? p : "key" in p ? "<id>" : "[]")).join("."), JSON.stringify(c.value), c] as const))(
    "%s = %s is refused naming the key, or accepted",
    (_name, _value, c) => {
      const raw = fullSettings();
      const path = place(raw, c.slot, c.value);
      expect(path).toBeDefined();
      let refused: SettingsError | undefined;
      try {
        parseSettings(raw, "hostile");
      } catch (e) {
        if (!(e instanceof SettingsError)) throw e;
        refused = e;
      }
      if (refused) {
        const isKey = typeof c.slot.at(-1) === "object" && "key" in (c.slot.at(-1) as object);
        const named = label(isKey ? path!.slice(0, -1) : path!);
        expect(refused.problems.some((line) => line.startsWith(named))).toBe(true);
        for (const line of refused.problems) expect(line).not.toMatch(/[\u0000-\u001f]/);
      } else {
        accepted.push({ slot: label(path!), hostile: c.hostile, strings: markedStrings(raw) });
      }
    },
  );

  describeWithTool("terraform", "Terraform renders every accepted value literally", () => {
    test("each accepted hostile value comes out of Terraform exactly as written", () => {
      const reached = accepted.filter((a) => a.strings.length > 0);
      // Free-text keys that must reach the stack: if these stop reaching it, this test proves nothing.
      expect(reached.map((a) => a.slot)).toEqual(expect.arrayContaining(["flake", "hosts.vm.sshKeys[0]"]));
      const outputs: Record<string, { value: string }> = {};
      const expected: Record<string, string> = {};
      reached.forEach((a, i) =>
        a.strings.forEach((s, j) => {
          // References to resources cannot be evaluated here; the user's part of the string can.
          outputs[`v${i}_${j}`] = { value: s.replace(/(?<!\$)\$\{(google_|null_resource\.|terraform_data\.|data\.)[^}]*\}/g, "REF") };
          expected[`v${i}_${j}`] = a.hostile;
        }),
      );
      const dir = mkdtempSync(join(tmpdir(), "hostile-tf-"));
      try {
        writeFileSync(join(dir, "main.tf.json"), JSON.stringify({ output: outputs }));
        const env = { ...process.env, TF_CLI_CONFIG_FILE: "/dev/null", TF_IN_AUTOMATION: "1" };
        execFileSync("terraform", ["init", "-input=false"], { cwd: dir, env, stdio: "pipe" });
        execFileSync("terraform", ["apply", "-auto-approve", "-input=false"], { cwd: dir, env, stdio: "pipe" });
        const rendered = JSON.parse(execFileSync("terraform", ["output", "-json"], { cwd: dir, env, encoding: "utf8" }));
        for (const [key, hostile] of Object.entries(expected)) {
          expect({ key, rendered: rendered[key].value.includes(hostile) }).toEqual({ key, rendered: true });
        }
        console.log(`hostile values: ${cases.length} cases, ${accepted.length} accepted, ${reached.length} reached the stacks, ${Object.keys(expected).length} strings rendered by terraform`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
