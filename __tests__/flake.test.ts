/**
 * The product flake (flake.nix and its nixos/, oci/, pkgs/ files) without the
 * network: every .nix file parses and keeps a nixfmt-like layout, the lock
 * pins the declared inputs, and real Nix evaluates flake.nix's `outputs` with
 * test doubles for nixpkgs and deploy-rs to show that the flake derives exactly
 * what infra.json lists (the same list the CDKTF program reads).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { parseSettings, type SettingsInput } from "../lib/settings.js";
import { describeWithNix, NIX_ENV, REPO_ROOT } from "./helpers/nix.js";
import { testWithTools } from "./helpers/tools.js";

const AGREEMENT_FIXTURE = join(REPO_ROOT, "__tests__", "fixtures", "flake-agreement.nix");
const CREATED = "1970-01-01T00:00:01Z";

interface InfraJson {
  system?: string;
  deploy?: { user?: string };
  images?: Record<string, { nixosConfiguration: string }>;
  hosts?: Record<string, { nixosConfiguration: string }>;
  ociImages?: Record<string, { package: string; version: string }>;
}
const infra: InfraJson = JSON.parse(readFileSync(join(REPO_ROOT, "infra.json"), "utf8"));
const system = infra.system ?? "x86_64-linux";
const deployUser = infra.deploy?.user ?? "deploy";
const hosts = infra.hosts ?? {};
const ociImages = infra.ociImages ?? {};
/** Every NixOS configuration name infra.json uses, for images and hosts. */
const configurationNames = [
  ...new Set([...Object.values(infra.images ?? {}), ...Object.values(hosts)].map((e) => e.nixosConfiguration)),
].sort();
const hostModule = (name: string) => join(REPO_ROOT, "nixos", "hosts", `${name}.nix`);

/** .nix files under a directory, for checkouts without git. */
function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return entry === "node_modules" ? [] : walk(path);
    return entry.endsWith(".nix") ? [relative(REPO_ROOT, path)] : [];
  });
}

/** Every tracked or new (not ignored) .nix file, relative to the repository root. */
function nixFiles(): string[] {
  let files: string[];
  try {
    const out = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.nix"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    files = out.split("\0").filter(Boolean);
  } catch {
    files = ["flake.nix", ...["nixos", "oci", "pkgs", "__tests__"].flatMap((d) => walk(join(REPO_ROOT, d)))];
  }
  return [...new Set(files)].filter((f) => existsSync(join(REPO_ROOT, f))).sort();
}
const NIX_FILES = nixFiles();

/**
 * Which lines start inside a string, by a small scan of Nix's lexical states
 * (strings, interpolations, comments). nixfmt never rewraps or reindents
 * string content, so the layout rules below skip those lines.
 */
function linesStartingInString(text: string): Set<number> {
  type State = "code" | "string" | "indented" | "lineComment" | "blockComment";
  let state: State = "code";
  const returns: State[] = []; // per open brace: the state its `}` returns to
  const inString = new Set<number>();
  let line = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const next = text[i + 1];
    if (c === "\n") {
      line++;
      if (state === "lineComment") state = "code";
      if (state === "string" || state === "indented") inString.add(line);
      continue;
    }
    switch (state) {
      case "code":
        if (c === "#") state = "lineComment";
        else if (c === "/" && next === "*") (state = "blockComment"), i++;
        else if (c === '"') state = "string";
        else if (c === "'" && next === "'") (state = "indented"), i++;
        else if (c === "{") returns.push("code");
        else if (c === "}") state = returns.pop() ?? "code";
        break;
      case "blockComment":
        if (c === "*" && next === "/") (state = "code"), i++;
        break;
      case "string":
        if (c === "\\") i++;
        else if (c === "$" && next === "$") i++;
        else if (c === "$" && next === "{") returns.push("string"), (state = "code"), i++;
        else if (c === '"') state = "code";
        break;
      case "indented":
        if (c === "'" && next === "'") {
          const after = text[i + 2];
          if (after === "'" || after === "$") i += 2;
          else if (after === "\\") i += 3;
          else (state = "code"), i++;
        } else if (c === "$" && next === "$") i++;
        else if (c === "$" && next === "{") returns.push("indented"), (state = "code"), i++;
        break;
      case "lineComment":
        break;
    }
  }
  return inString;
}

/**
 * nixfmt (the RFC 166 formatter in nixpkgs) cannot be installed offline, so
 * this checks the parts of its layout that a file's text shows directly: no
 * tabs, no trailing whitespace, a final newline, indentation in steps of two
 * spaces and lines of at most 100 characters (nixfmt's width) outside string
 * content. `checks.<system>.formatting` runs the real `nixfmt --check` on a
 * machine with the network; `nix fmt` fixes what it finds.
 */
function styleProblems(text: string): string[] {
  const problems: string[] = [];
  if (text.length > 0 && !text.endsWith("\n")) problems.push("no newline at end of file");
  if (text.endsWith("\n\n")) problems.push("blank line at end of file");
  const inString = linesStartingInString(text);
  text.split("\n").forEach((line, index) => {
    const at = `line ${index + 1}`;
    if (line.includes("\t")) problems.push(`${at}: tab`);
    if (/[ \t]+$/.test(line)) problems.push(`${at}: trailing whitespace`);
    if (inString.has(index)) return;
    const indent = /^ */.exec(line)![0].length;
    if (line.trim() !== "" && indent % 2 !== 0) problems.push(`${at}: indented by ${indent} spaces, not a multiple of 2`);
    if (line.length > 100) problems.push(`${at}: ${line.length} characters (more than 100)`);
  });
  return problems;
}

describe("Nix files of the repository (no Nix needed)", () => {
  test("the list covers the flake, its modules, packages, images and test fixtures", () => {
    expect(NIX_FILES).toEqual(
      expect.arrayContaining([
        "flake.nix",
        "nixos/common.nix",
        "nixos/base/gce.nix",
        "nixos/hosts/gce-base.nix",
        "nixos/hosts/vm.nix",
        "oci/mk-image.nix",
        "pkgs/pipeline.nix",
        "__tests__/fixtures/flake-agreement.nix",
      ]),
    );
  });

  test.each(NIX_FILES)("%s keeps the nixfmt layout (tabs, whitespace, indentation, width)", (file) => {
    expect(styleProblems(readFileSync(join(REPO_ROOT, file), "utf8"))).toEqual([]);
  });

  test("the style check finds what it is meant to find", () => {
    expect(styleProblems('{\n\ta = 1; \n   b = "x";\n}')).toEqual([
      "no newline at end of file",
      "line 2: tab",
      "line 2: trailing whitespace",
      "line 3: indented by 3 spaces, not a multiple of 2",
    ]);
    expect(styleProblems(`{\n  a = ''\n     odd ${"x".repeat(120)}\n  '';\n}\n`)).toEqual([]);
    expect(styleProblems(`{\n  a = "${"x".repeat(120)}";\n}\n`)).toEqual(["line 2: 129 characters (more than 100)"]);
    // Interpolations and escapes inside a string do not end it; its closing quotes do.
    const nested = "{\n  a = ''\n    ${b { c = 1; }} ''${d} '''\n     odd\n  '';\n   e = 1;\n}\n";
    expect(styleProblems(nested)).toEqual(["line 6: indented by 3 spaces, not a multiple of 2"]);
  });

  test("the licence the OCI labels and package.json claim is the LICENSE file's (MIT)", () => {
    const license = readFileSync(join(REPO_ROOT, "LICENSE"), "utf8");
    expect(license.split("\n")[0]).toBe("MIT License");
    expect(license).toContain("Permission is hereby granted, free of charge, to any person obtaining a copy");
    expect(JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")).license).toBe("MIT");
    expect(readFileSync(join(REPO_ROOT, "oci", "mk-image.nix"), "utf8")).toContain('"org.opencontainers.image.licenses" = "MIT";');
  });

  test("every NixOS configuration infra.json names has its module nixos/hosts/<name>.nix", () => {
    expect(configurationNames.length).toBeGreaterThan(0);
    expect(configurationNames.filter((name) => !existsSync(hostModule(name)))).toEqual([]);
  });

  test("flake.lock pins exactly the inputs flake.nix declares, in the form Nix writes", () => {
    const text = readFileSync(join(REPO_ROOT, "flake.lock"), "utf8");
    const lock = JSON.parse(text);
    const sorted = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(sorted)
        : v && typeof v === "object"
          ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => [k, sorted(x)]))
          : v;
    expect(text).toBe(`${JSON.stringify(sorted(lock), null, 2)}\n`);
    expect(lock.version).toBe(7);
    expect(lock.nodes[lock.root].inputs).toEqual({ "deploy-rs": "deploy-rs", nixpkgs: "nixpkgs" });
    expect(lock.nodes.nixpkgs.original).toEqual({ owner: "nixos", ref: "nixos-25.11", repo: "nixpkgs", type: "github" });
    expect(lock.nodes["deploy-rs"].original).toEqual({ owner: "serokell", repo: "deploy-rs", type: "github" });
    expect(lock.nodes["deploy-rs"].inputs.nixpkgs).toEqual(["nixpkgs"]);
    const flake = readFileSync(join(REPO_ROOT, "flake.nix"), "utf8");
    expect(flake).toContain('nixpkgs.url = "github:nixos/nixpkgs/nixos-25.11";');
    expect(flake).toContain('deploy-rs.url = "github:serokell/deploy-rs";');
    expect(flake).toContain('deploy-rs.inputs.nixpkgs.follows = "nixpkgs";');
    expect(flake).toContain("builtins.fromJSON (builtins.readFile ./infra.json)");
  });
});

/** The error of evaluating the flake with `raw` settings (after `edit` changed the copy's files), or "no error". */
function evaluationError(raw: SettingsInput, edit: (root: string) => void = () => undefined): string {
  const root = flakeWithSettings(raw);
  try {
    edit(root);
    evaluateAgreement(root);
    return "no error";
  } catch (e) {
    return (e as Error).message;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

describeWithNix(`Nix files parse`, () => {
  test("nix-instantiate --parse reads every one (one call; an error names its file)", () => {
    const parsed = spawnSync("nix-instantiate", ["--parse", ...NIX_FILES.map((file) => join(REPO_ROOT, file))], {
      env: { ...process.env, ...NIX_ENV },
      stdio: ["ignore", "ignore", "pipe"],
      encoding: "utf8",
    });
    expect({ status: parsed.status, stderr: parsed.stderr }).toEqual({ status: 0, stderr: "" });
  });
});

/** What the stand-in for the module system sees a configuration's modules set (flake-agreement.nix). */
interface ConfigurationValues {
  deployUser: string;
  trustedUsers: string[];
  userKeys: Record<string, string[]>;
  wheel: string[];
  wheelNeedsPassword: boolean;
  ssh: { enable: boolean; openFirewall: boolean; PasswordAuthentication: boolean; KbdInteractiveAuthentication: boolean; PermitRootLogin: string };
  firewall: { enable: boolean; allowedTCPPorts: number[]; allowedUDPPorts: number[] };
  osLogin: boolean;
  efi: boolean;
  grubDevice: string;
  nixGc: { automatic: boolean; dates: string | string[]; keepGenerations: number };
  generations: { wantedBy: string[]; before: string[]; script: string };
  guard: { image: string; etc: string };
  failedAssertions: string[];
  secrets: { files: Record<string, { owner: string; mode: string }>; unit: Record<string, any> | null; ingest: Record<string, any> | null };
}

/** Runs the agreement fixture against the flake at `root` (its flake.nix reads root/infra.json). */
function evaluateAgreement(root: string): Agreement {
  try {
    const out = execFileSync("nix", ["eval", "--json", "--impure", "--file", AGREEMENT_FIXTURE], {
      env: { ...process.env, ...NIX_ENV, INFRA_REPO_ROOT: root },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    return JSON.parse(out);
  } catch (e) {
    const stderr = String((e as { stderr?: unknown }).stderr ?? "");
    throw new Error(`nix eval of ${relative(REPO_ROOT, AGREEMENT_FIXTURE)} failed:\n${stderr || (e as Error).message}`);
  }
}

interface Agreement {
  system: string;
  configurations: string[];
  configurationModules: Record<string, string[]>;
  configurationValues: Record<string, ConfigurationValues>;
  nodes: Record<
    string,
    { hostname: string; sshUser: string; user: string; magicRollback: boolean; autoRollback: boolean; activates: string[] }
  >;
  packages: string[];
  ociImages: Record<
    string,
    { name: string; tag: string | null; created: string; Entrypoint: string[]; Labels: Record<string, string> }
  >;
  checks: string[];
  devShells: string[];
  formatters: string[];
}

describeWithNix(`flake.nix agrees with infra.json (real Nix, test doubles for its inputs)`, () => {
  let agreement: Agreement;
  beforeAll(() => {
    agreement = evaluateAgreement(REPO_ROOT);
  });

  test("the flake reads the system from infra.json", () => {
    expect(agreement.system).toBe(system);
  });

  test("nixosConfigurations: exactly the names images and hosts use, each from nixos/hosts/<name>.nix", () => {
    expect([...agreement.configurations].sort()).toEqual(configurationNames);
    for (const name of configurationNames) {
      expect({ name, modules: agreement.configurationModules[name] }).toEqual({ name, modules: [hostModule(name)] });
    }
  });

  test("deploy.nodes: one per host id, SSH as the deploy user, activation as root with rollback on", () => {
    expect(Object.keys(agreement.nodes).sort()).toEqual(Object.keys(hosts).sort());
    for (const [id, host] of Object.entries(hosts)) {
      expect(agreement.nodes[id]).toEqual({
        hostname: id,
        sshUser: deployUser,
        user: "root",
        magicRollback: true,
        autoRollback: true,
        activates: [hostModule(host.nixosConfiguration)],
      });
    }
  });

  test("packages: deploy-rs and every OCI image package, nothing else", () => {
    const expected = ["deploy-rs", ...Object.values(ociImages).map((o) => o.package)].sort();
    expect([...agreement.packages].sort()).toEqual(expected);
  });

  test("an OCI image whose package another image or deploy-rs already gives packages.<system> fails the evaluation, naming the key (synth refuses it too)", () => {
    const error = (images: InfraJson["ociImages"]): string => evaluationError({ ...VARIANT, ociImages: images });
    expect(error({ ingest: { package: "p", version: "1" }, transform: { package: "p", version: "2" } })).toContain('ociImages.transform.package "p" is also ociImages.ingest.package');
    expect(error({ ingest: { package: "deploy-rs", version: "1" } })).toContain('ociImages.ingest.package "deploy-rs" is the flake\'s deploy-rs package');
  });

  test("OCI images: fixed creation date, no tag, OCI labels with the version from infra.json, nothing from the commit", () => {
    for (const [id, spec] of Object.entries(ociImages)) {
      const image = agreement.ociImages[spec.package];
      expect({ name: image.name, tag: image.tag, created: image.created }).toEqual({ name: id, tag: null, created: CREATED });
      expect(image.Entrypoint).toHaveLength(1);
      expect(image.Labels).toEqual({
        "org.opencontainers.image.title": id,
        "org.opencontainers.image.description": expect.stringMatching(/\S/),
        "org.opencontainers.image.version": spec.version,
        // The commit (self.rev is "test" here) never enters a store path: the push step labels it.
        "org.opencontainers.image.source": expect.stringMatching(/^https:\/\/\S+$/),
        "org.opencontainers.image.licenses": "MIT",
        "org.opencontainers.image.created": CREATED,
      });
    }
  });

  test("checks (deploy-rs's and formatting), the formatter and the dev shell exist", () => {
    expect(agreement.checks).toEqual(expect.arrayContaining(["deploy-activate", "deploy-schema", "formatting"]));
    expect(agreement.formatters).toEqual([system]);
    expect(agreement.devShells).toEqual(["default"]);
  });
});

const KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDak1cG0qnI2CezlcAFHtPb8JaQT9Cp9VVdPn4Femahm test@example";
const KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE+H2rOXenM9JDtjlEpNNyxxCmUw597vURL0PQuLolAs deploy@example";
// Owned by the deploy user: every configuration declares it, also the host modules the tests write.
const SECRETS = { "warehouse-password": {}, "pipeline-source-token": { owner: "ops", mode: "0440" } };
/**
 * Settings that differ from every default the modules could fall back to: a
 * deploy user other than "deploy", an EFI image for an NVMe machine type,
 * nixGc at the top and per host, and hosts sharing a configuration and an
 * image (their keys are united), and secrets (one with its own owner and mode).
 */
const VARIANT: SettingsInput = {
  project: "test-project",
  region: "europe-west1",
  zone: "europe-west1-b",
  imageBucket: "test-project-images",
  deploy: { user: "ops" },
  nixGc: { keepGenerations: 7 },
  images: { base: { nixosConfiguration: "gce-base", family: "nixos-base", guestOsFeatures: ["VIRTIO_SCSI_MULTIQUEUE", "GVNIC", "UEFI_COMPATIBLE"] } },
  hosts: {
    db: { nixosConfiguration: "vm", image: "base", machineType: "c3-standard-4", sshKeys: [KEY_B], nixGc: { keepGenerations: 3, schedule: "daily" }, secrets: SECRETS },
    web: { nixosConfiguration: "vm", image: "base", machineType: "e2-small", sshKeys: [KEY_A, KEY_B], nixGc: { keepGenerations: 3, schedule: "daily" }, secrets: SECRETS },
  },
  ociImages: { ingest: { package: "oci-ingest", version: "0.1.0" } },
};

/**
 * What the flake must give each configuration of VARIANT, written out: the
 * flake (nixos/configurations.nix) is the one place that computes it. Keys:
 * of every host that runs the configuration or first boots an image built
 * from it; EFI: its images are UEFI_COMPATIBLE; nixGc: its hosts' overrides.
 */
const VARIANT_FACTS: Record<string, { deployKeys: string[]; efi: boolean; nixGc: { schedule: string; keepGenerations: number } }> = {
  "gce-base": { deployKeys: [KEY_A, KEY_B].sort(), efi: true, nixGc: { schedule: "weekly", keepGenerations: 7 } },
  vm: { deployKeys: [KEY_A, KEY_B].sort(), efi: true, nixGc: { schedule: "daily", keepGenerations: 3 } },
};

/** A copy of the flake's files with other settings in its infra.json. */
function flakeWithSettings(settings: SettingsInput): string {
  const dir = mkdtempSync(join(tmpdir(), "flake-variant-"));
  for (const entry of ["flake.nix", "nixos", "oci", "pkgs"]) cpSync(join(REPO_ROOT, entry), join(dir, entry), { recursive: true });
  writeFileSync(join(dir, "infra.json"), JSON.stringify(settings, null, 2));
  return dir;
}

describeWithNix(`NixOS configurations: what the modules set, per infra.json (real Nix, stand-in module system)`, () => {
  const runs: Array<{ label: string; raw: SettingsInput; root: string; agreement?: Agreement }> = [];
  beforeAll(() => {
    runs.push({ label: "infra.json", raw: JSON.parse(readFileSync(join(REPO_ROOT, "infra.json"), "utf8")), root: REPO_ROOT });
    runs.push({ label: "variant", raw: VARIANT, root: flakeWithSettings(VARIANT) });
    for (const run of runs) run.agreement = evaluateAgreement(run.root);
  });
  afterAll(() => {
    for (const run of runs) if (run.root !== REPO_ROOT) rmSync(run.root, { recursive: true, force: true });
  });
  const each = (check: (run: { label: string; settings: ReturnType<typeof parseSettings>; values: Record<string, ConfigurationValues> }) => void) => {
    expect(runs).toHaveLength(2);
    for (const run of runs) check({ label: run.label, settings: parseSettings(run.raw, run.label), values: run.agreement!.configurationValues });
  };

  test("the deploy user from infra.json exists, is in wheel and is a trusted Nix user, in every configuration", () => {
    each(({ label, settings, values }) => {
      const user = settings.deploy.user;
      for (const [name, v] of Object.entries(values)) {
        expect({ label, name, deployUser: v.deployUser, wheel: v.wheel }).toEqual({ label, name, deployUser: user, wheel: [user] });
        expect({ label, name, trusted: [...v.trustedUsers].sort() }).toEqual({ label, name, trusted: ["root", user].sort() });
        expect(Object.keys(v.userKeys)).toContain(user);
      }
    });
  });

  test("wheel runs sudo without a password (deploy-rs activates as root through sudo, with no terminal)", () => {
    each(({ label, values }) => {
      for (const [name, v] of Object.entries(values)) {
        expect({ label, name, wheelNeedsPassword: v.wheelNeedsPassword }).toEqual({ label, name, wheelNeedsPassword: false });
      }
    });
  });

  test("deploy.nodes connect as the deploy user of the settings", () => {
    for (const run of runs) {
      const user = parseSettings(run.raw, run.label).deploy.user;
      const nodes = run.agreement!.nodes;
      expect(Object.keys(nodes).sort()).toEqual(Object.keys(run.raw.hosts ?? {}).sort());
      // The host id is the instance name, and so the SSH host name, whatever configuration the host runs.
      for (const [id, node] of Object.entries(nodes)) {
        expect({ label: run.label, id, sshUser: node.sshUser, hostname: node.hostname }).toEqual({ label: run.label, id, sshUser: user, hostname: id });
      }
    }
    expect(parseSettings(VARIANT, "variant").deploy.user).toBe("ops");
  });

  test("deploy keys are declared in Nix: those of every host that runs the configuration or first boots its image", () => {
    const values = runs[1].agreement!.configurationValues;
    expect(Object.keys(values).sort()).toEqual(Object.keys(VARIANT_FACTS).sort());
    for (const [name, v] of Object.entries(values)) expect({ name, keys: v.userKeys.ops }).toEqual({ name, keys: VARIANT_FACTS[name].deployKeys });
    each(({ label, settings, values }) => {
      for (const [name, v] of Object.entries(values)) expect({ label, name, keys: v.userKeys[settings.deploy.user].length > 0 }).toEqual({ label, name, keys: true });
    });
  });

  test("SSH takes keys only and no root login; the host firewall is on and opens port 22 alone", () => {
    each(({ label, values }) => {
      for (const [name, v] of Object.entries(values)) {
        expect({ label, name, ssh: v.ssh, firewall: v.firewall }).toEqual({
          label,
          name,
          ssh: { enable: true, openFirewall: true, PasswordAuthentication: false, KbdInteractiveAuthentication: false, PermitRootLogin: "no" },
          firewall: { enable: true, allowedTCPPorts: [22], allowedUDPPorts: [] },
        });
      }
    });
  });

  test("a configuration that makes users immutable fails its assertion (the guest agent could no longer write metadata keys)", () => {
    const raw: SettingsInput = { ...VARIANT, hosts: { db: { ...VARIANT.hosts!.db, nixosConfiguration: "immutable" } } };
    const root = flakeWithSettings(raw);
    try {
      writeFileSync(join(root, "nixos", "hosts", "immutable.nix"), "{\n  imports = [\n    ../common.nix\n    ../base/gce.nix\n  ];\n  users.mutableUsers = false;\n}\n");
      const values = evaluateAgreement(root).configurationValues;
      expect(values.immutable.failedAssertions).toEqual(["google-guest-agent writes metadata SSH keys: keep users.mutableUsers"]);
      expect(values["gce-base"].failedAssertions).toEqual([]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("a host module that imports nothing still gets the common settings and the GCE base (nixos/configurations.nix adds them)", () => {
    const raw: SettingsInput = { ...VARIANT, hosts: { db: { ...VARIANT.hosts!.db, nixosConfiguration: "bare" } } };
    const root = flakeWithSettings(raw);
    try {
      writeFileSync(join(root, "nixos", "hosts", "bare.nix"), "{ }\n");
      const bare = evaluateAgreement(root).configurationValues.bare;
      expect({
        deployUser: bare.deployUser,
        keys: bare.userKeys.ops,
        osLogin: bare.osLogin,
        efi: bare.efi,
        rootLogin: bare.ssh.PermitRootLogin,
        firewall: bare.firewall.enable,
        failed: bare.failedAssertions,
      }).toEqual({ deployUser: "ops", keys: [KEY_B], osLogin: false, efi: true, rootLogin: "no", firewall: true, failed: [] });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("OS Login is off (google-compute-config.nix turns it on)", () => {
    each(({ label, values }) => {
      for (const [name, v] of Object.entries(values)) expect({ label, name, osLogin: v.osLogin }).toEqual({ label, name, osLogin: false });
    });
  });

  test("EFI follows UEFI_COMPATIBLE of the image: GRUB on the ESP, not /dev/sda", () => {
    each(({ label, settings, values }) => {
      for (const [name, v] of Object.entries(values)) {
        const efi = label === "variant" ? VARIANT_FACTS[name].efi : Object.values(settings.images).some((i) => i.guestOsFeatures.includes("UEFI_COMPATIBLE"));
        expect({ label, name, efi: v.efi, grub: v.grubDevice }).toEqual({ label, name, efi, grub: efi ? "nodev" : "/dev/sda" });
      }
    });
  });

  test("nix.gc runs on the nixGc schedule, after pruning the system profile to keepGenerations", () => {
    each(({ label, settings, values }) => {
      for (const [name, v] of Object.entries(values)) {
        const gc = label === "variant" ? VARIANT_FACTS[name].nixGc : settings.nixGc;
        expect({ label, name, ...v.nixGc }).toEqual({ label, name, automatic: true, dates: gc.schedule, keepGenerations: gc.keepGenerations });
        expect(v.generations.wantedBy).toEqual(["nix-gc.service"]);
        expect(v.generations.before).toEqual(["nix-gc.service"]);
        expect(v.generations.script).toMatch(new RegExp(`--profile /nix/var/nix/profiles/system \\\\\\n\\s+--delete-generations \\+${gc.keepGenerations}\\n$`));
      }
    });
    expect(runs[1].agreement!.configurationValues.vm.nixGc).toEqual({ automatic: true, dates: "daily", keepGenerations: 3 });
    expect(runs[1].agreement!.configurationValues["gce-base"].nixGc).toEqual({ automatic: true, dates: "weekly", keepGenerations: 7 });
  });

  test("the pruning script, run by bash with the real nix-env on a profile of 6 generations, keeps the newest 3", () => {
    const script = runs[1].agreement!.configurationValues.vm.generations.script;
    const dir = mkdtempSync(join(tmpdir(), "generations-"));
    try {
      const profile = join(dir, "system");
      const env = { ...process.env, ...NIX_ENV };
      for (let i = 1; i <= 6; i++) {
        writeFileSync(join(dir, `gen${i}`), `generation ${i} ${dir}\n`);
        const path = execFileSync("nix-store", ["--add", join(dir, `gen${i}`)], { env, encoding: "utf8" }).trim();
        execFileSync("nix-env", ["--profile", profile, "--set", path], { env, stdio: "ignore" });
      }
      const generations = () =>
        execFileSync("nix-env", ["--profile", profile, "--list-generations"], { env, encoding: "utf8" })
          .trim()
          .split("\n")
          .map((l) => Number(l.trim().split(/\s+/)[0]));
      expect(generations()).toEqual([1, 2, 3, 4, 5, 6]);
      // The module's script, verbatim but for the profile's location.
      const run = spawnSync("bash", ["-euo", "pipefail", "-c", script.replace("/nix/var/nix/profiles/system", profile)], { env, encoding: "utf8" });
      expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
      expect(generations()).toEqual([4, 5, 6]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  testWithTools(["systemd-analyze", "tzdata", "unshare"], "nix.gc.dates from a host module wins over nixGc.schedule; the system's check runs systemd-analyze calendar on it", () => {
    // The build machine's systemd stands in for the hosts' (the stand-in's systemd.package).
    // sandboxed: it sees no time zones, as NixOS' systemd (zones from /etc/zoneinfo only) in the build sandbox.
    const check = (dates?: string, sandboxed = false) => {
      const root = flakeWithSettings(VARIANT);
      try {
        if (dates) {
          const hosts = join(root, "nixos", "hosts");
          writeFileSync(join(hosts, "vm-own.nix"), readFileSync(join(hosts, "vm.nix")));
          const bin = join(root, "sandboxed-systemd", "bin");
          mkdirSync(bin, { recursive: true });
          chmodSync(root, 0o755); // the builder's user runs it
          writeFileSync(join(bin, "systemd-analyze"), `#!/bin/sh\nexec unshare -rm sh -c 'mount -t tmpfs none /usr/share/zoneinfo && exec systemd-analyze "$@"' sh "$@"\n`, { mode: 0o755 });
          const systemd = sandboxed ? `\n  systemd.package = { type = "derivation"; name = "sandboxed"; outPath = ${JSON.stringify(join(bin, ".."))}; };` : "";
          writeFileSync(join(hosts, "vm.nix"), `{\n  imports = [ ./vm-own.nix ];\n  nix.gc.dates = ${JSON.stringify(dates)};${systemd}\n}\n`);
        }
        const env = { ...process.env, ...NIX_ENV, INFRA_REPO_ROOT: root };
        const built = spawnSync("nix", ["build", "--impure", "--no-link", "--file", AGREEMENT_FIXTURE, "systemChecks.vm.nix-gc-dates-check"], { env, encoding: "utf8" });
        return { dates: evaluateAgreement(root).configurationValues.vm.nixGc.dates, built: built.status === 0, stderr: built.stderr };
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    };
    expect(check()).toMatchObject({ dates: "daily", built: true });
    expect(check("Mon..Fri *-*-* 02:00:00")).toMatchObject({ dates: "Mon..Fri *-*-* 02:00:00", built: true });
    expect(check("Sun 03:00 Europe/Berlin", true)).toMatchObject({ built: true });
    expect(check("Sun 25:00 Europe/Berlin", true)).toMatchObject({ built: false });
    const refused = check("Sun 25:00");
    expect(refused).toMatchObject({ dates: "Sun 25:00", built: false });
    expect(refused.stderr).toContain("nix.gc.dates: systemd refuses the calendar event 'Sun 25:00'");
  });

  testWithTools(["ssh-keygen"], "a key whose shape synth takes but OpenSSH refuses fails the system's check (the hosts' ssh-keygen reads every deploy key)", () => {
    const field = (data: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, data.length]), data]);
    // An Ed25519 key of 31 bytes, not 32: whole base64, the right type inside.
    const short = `ssh-ed25519 ${Buffer.concat([field(Buffer.from("ssh-ed25519")), field(Buffer.alloc(31, 7))]).toString("base64")} short@example`;
    const build = (key: string) => {
      const raw: SettingsInput = { ...VARIANT, hosts: { db: { ...VARIANT.hosts!.db, sshKeys: [key] } } };
      expect(parseSettings(raw, "variant").hosts.db.sshKeys).toEqual([key]);
      const root = flakeWithSettings(raw);
      try {
        const env = { ...process.env, ...NIX_ENV, INFRA_REPO_ROOT: root };
        return spawnSync("nix", ["build", "--impure", "--no-link", "--file", AGREEMENT_FIXTURE, "systemChecks.vm.deploy-keys-check"], { env, encoding: "utf8" });
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    };
    expect(build(KEY_B).status).toBe(0);
    const refused = build(short);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain(`infra.deployKeys: OpenSSH refuses the key starting ${short.slice(0, 40)}`);
  });

  test("infra.secrets: the secrets of the hosts that run the configuration, fetched by a oneshot unit into /run/secrets after the network, restarted (not stopped) when a deploy changes it; no unit without secrets", () => {
    // Written out, as VARIANT_FACTS: only the variant's vm (run by db and web) lists secrets; an image's configuration fetches none.
    const variantVm = { "pipeline-source-token": { owner: "ops", mode: "0440" }, "warehouse-password": { owner: "root", mode: "0400" } };
    each(({ label, values }) => {
      for (const [name, v] of Object.entries(values)) {
        const files: Record<string, { owner: string; mode: string }> = label === "variant" && name === "vm" ? variantVm : {};
        expect({ label, name, files: v.secrets.files }).toEqual({ label, name, files });
        const entries = Object.entries(files).sort(([a], [b]) => (a < b ? -1 : 1)).map(([n, f]) => `${n}:${f.owner}:${f.mode}`);
        expect({ label, name, unit: v.secrets.unit }).toEqual({
          label,
          name,
          unit: entries.length === 0 ? null : {
            description: expect.any(String),
            wantedBy: ["multi-user.target"],
            wants: ["network-online.target"],
            after: ["network-online.target"],
            stopIfChanged: false,
            serviceConfig: expect.objectContaining({
              Type: "oneshot",
              RemainAfterExit: true,
              RuntimeDirectory: "secrets",
              RuntimeDirectoryPreserve: "restart",
              ExecStart: `/double/infra-secrets-fetch/bin/infra-secrets-fetch ${entries.join(" ")}`,
            }),
          },
        });
      }
    });
  });

  test("the pipeline's source token: its jobs wait for the fetch and get the file, never the value; a token, owner or name the host cannot have fails an assertion", () => {
    const worker = "{\n  imports = [\n    ../services/postgresql.nix\n    ../services/pipeline.nix\n  ];\n  infra.services.postgres.enable = true;\n  infra.services.pipeline.enable = true;\n  infra.services.pipeline.sourceTokenSecret = \"pipeline-source-token\";\n}\n";
    const evaluate = (secrets: Record<string, { owner?: string }>) => {
      const root = flakeWithSettings({ ...VARIANT, hosts: { db: { ...VARIANT.hosts!.db, nixosConfiguration: "worker", secrets } } });
      try {
        writeFileSync(join(root, "nixos", "hosts", "worker.nix"), worker);
        return evaluateAgreement(root).configurationValues.worker;
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    };
    const listed = evaluate({ "pipeline-source-token": { owner: "root" } });
    expect(listed.failedAssertions).toEqual([]);
    const ingest = listed.secrets.ingest!;
    expect(ingest.requires).toEqual(["postgresql.target", "infra-secrets.service"]);
    expect(ingest.after).toEqual(["postgresql.target", "infra-secrets.service"]);
    expect(ingest.serviceConfig.LoadCredential).toBe("source-token:/run/secrets/pipeline-source-token");
    expect(ingest.environment.SOURCE_TOKEN_FILE).toBe("%d/source-token");

    expect(evaluate({ other: { owner: "ghost" }, "../x": {} }).failedAssertions.sort()).toEqual([
      'infra.secrets.other: owner "ghost" is no user of this host; declare it or choose another owner in infra.json',
      'infra.secrets: "../x" is no Secret Manager id (letters, digits, -, _)',
      'infra.services.pipeline.sourceTokenSecret: "pipeline-source-token" is not among this host\'s secrets; list it under hosts.<id>.secrets in infra.json',
    ]);
  });

  test("/etc/nixos/configuration.nix, in the image and through /etc, makes nixos-rebuild fail with what to do", () => {
    each(({ label, values }) => {
      for (const [name, v] of Object.entries(values)) {
        expect({ label, name, etc: v.guard.etc }).toEqual({ label, name, etc: v.guard.image });
        const evaluated = spawnSync("nix-instantiate", ["--eval", v.guard.image], { env: { ...process.env, ...NIX_ENV }, encoding: "utf8" });
        expect(evaluated.status).not.toBe(0);
        expect(evaluated.stderr).toContain("this host is managed by nixos-gce-cdktf via deploy-rs; change the flake and deploy");
      }
    });
  });

  test("no module assertion fails", () => {
    each(({ label, values }) => {
      for (const [name, v] of Object.entries(values)) expect({ label, name, failed: v.failedAssertions }).toEqual({ label, name, failed: [] });
    });
  });
});

describeWithNix(`the stand-in module system refuses what NixOS refuses (real Nix)`, () => {
  const runs = (name: string): SettingsInput => ({ ...VARIANT, hosts: { db: { ...VARIANT.hosts!.db, nixosConfiguration: name } } });

  test("a misspelt option of nixpkgs' GCE image module does not exist", () => {
    const error = evaluationError(runs("typo"), (root) =>
      writeFileSync(join(root, "nixos", "hosts", "typo.nix"), "{\n  virtualisation.googleComputeImage.efiSupport = true;\n}\n"),
    );
    expect(error).toContain("The option `virtualisation.googleComputeImage.efiSupport' does not exist");
  });

  test("a configuration without a module names the modules there, in the form synth turns into one line (lib/nix.ts)", () => {
    expect(evaluationError(runs("vmm"), () => {})).toContain(
      'nixosConfiguration "vmm" is unknown (known: gce-base, vm): infra.json uses it, but nixos/hosts/vmm.nix is missing',
    );
  });

  test("a misspelt project option does not exist", () => {
    const error = evaluationError(runs("typo"), (root) =>
      writeFileSync(
        join(root, "nixos", "hosts", "typo.nix"),
        "{\n  imports = [\n    ../common.nix\n    ../base/gce.nix\n    ../services/postgresql.nix\n  ];\n  infra.services.postgress.enable = true;\n}\n",
      ),
    );
    expect(error).toContain("The option `infra.services.postgress.enable' does not exist");
  });

  test("google-compute-config.nix's mkDefault values: the project's must not be mkDefault too (a conflict in NixOS)", () => {
    const soften = (from: string, to: string) => (root: string) => {
      const file = join(root, "nixos", "common.nix");
      const text = readFileSync(file, "utf8");
      expect(text).toContain(from);
      writeFileSync(file, text.replace(from, to));
    };
    expect(evaluationError(VARIANT, soften('PermitRootLogin = "no";', 'PermitRootLogin = lib.mkDefault "no";'))).toContain(
      "conflicting definitions of services.openssh.settings.PermitRootLogin",
    );
    expect(evaluationError(VARIANT, soften("enable = true;\n      allowedTCPPorts", "enable = lib.mkDefault true;\n      allowedTCPPorts"))).toContain(
      "conflicting definitions of networking.firewall.enable",
    );
    // The product's modules as they are evaluate.
    expect(evaluationError(VARIANT, () => {})).toBe("no error");
  });
});
