import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stableJson } from "../lib/lock.js";
import { serviceAccountId } from "../lib/names.js";
import { loadSettings, parseSettings, SettingsError, settingsJsonSchema } from "../lib/settings.js";
import { REPO_ROOT } from "./helpers/nix.js";
import { baseSettings, settingsProblems } from "./helpers/settings.js";

/** The problem lines of a settings file; [] when it loads. */
function settingsFileProblems(file: string): string[] {
  try {
    loadSettings(file);
    return [];
  } catch (e) {
    if (!(e instanceof SettingsError)) throw e;
    return e.problems;
  }
}

/** The problem lines of settings that must be rejected. */
function problems(raw: unknown): string[] {
  const found = settingsProblems(raw);
  if (found.length === 0) throw new Error("expected the settings to be rejected");
  return found;
}

describe("settings", () => {
  test("the committed example infra.json is valid and fills defaults", () => {
    const s = loadSettings(join(REPO_ROOT, "infra.json"));
    expect(s.flake).toBe(".");
    expect(s.lockFile).toBe("infra.lock.json");
    expect(s.backend).toEqual({ type: "local" });
    expect(s.hosts.vm.diskSizeGb).toBe(20);
    expect(s.images.base.public).toBe(false);
  });

  test("an unknown key is named with its path, and the known key it is a misspelling of", () => {
    const raw = baseSettings();
    (raw.hosts!.vm as Record<string, unknown>).machinetype = "e2-small";
    (raw as Record<string, unknown>).lables = {};
    (raw as Record<string, unknown>).colour = "x";
    raw.backend = { type: "gcs", bukket: "b" } as never; // a key of one variant of a oneOf
    expect(problems(raw).sort()).toEqual([
      "backend.bucket: expected string (missing)",
      'backend.bukket: unknown key (did you mean "bucket"?)',
      "colour: unknown key (remove it or check its spelling)",
      'hosts.vm.machinetype: unknown key (did you mean "machineType"?)',
      'lables: unknown key (did you mean "labels"?)',
    ]);
  });

  test("a wrong type names the key, the expected type and the value", () => {
    expect(problems({ ...baseSettings(), hosts: { vm: { ...baseSettings().hosts!.vm, diskSizeGb: "20" } } })).toEqual([
      'hosts.vm.diskSizeGb: expected number, got "20"',
    ]);
    expect(problems({ ...baseSettings(), project: undefined })).toEqual(["project: expected string (missing)"]);
    // zod says "record" and "array"; the author wrote JSON.
    expect(problems({ ...baseSettings(), labels: ["team"] })).toEqual(['labels: expected an object ({...}), got ["team"]']);
    expect(problems({ ...baseSettings(), hosts: { vm: { ...baseSettings().hosts!.vm, sshKeys: "ssh-ed25519 A" } } })).toEqual([
      'hosts.vm.sshKeys: expected a list ([...]), got "ssh-ed25519 A"',
    ]);
  });

  test("a value outside its set, range or pattern: one line, the rule in words and the value (not zod's wording)", () => {
    const host = baseSettings().hosts!.vm;
    expect(
      [
        { backend: { type: "s3" } },
        { backend: { type: "gcs", bucket: "state-bucket-1", prefix: "a b" } },
        { hosts: { vm: { ...host, diskSizeGb: -1 } } },
        { flake: "" },
      ].map((change) => problems({ ...baseSettings(), ...change })),
    ).toEqual([
      ['backend.type: must be one of "local", "gcs" (got "s3")'],
      ["backend.prefix: must be a path of letters, digits, '.', '_', '-' and '/', such as nixos-gce (got \"a b\")"],
      ["hosts.vm.diskSizeGb: must be at least 10 (got -1)"],
      ['flake: must not be empty (got "")'],
    ]);
  });

  test("names GCE would reject are refused with the rule", () => {
    const out = problems({
      ...baseSettings(),
      images: { base: { nixosConfiguration: "gce-base", family: "Nixos_Base" } },
    });
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^images\.base\.family: must be 1-63 characters: lowercase letters, digits and '-'.*\(got "Nixos_Base"\)$/);
    expect(problems({ ...baseSettings(), imageBucket: "My.Bucket" })[0]).toMatch(/^imageBucket: must be 3-63 characters.*\(got "My.Bucket"\)$/);
    expect(problems({ ...baseSettings(), hosts: { Web_1: baseSettings().hosts!.vm } })[0]).toMatch(
      /^hosts\.Web_1: "Web_1" is not a valid id: must be 1-63 characters/,
    );
  });

  test("a dangling reference names the known ids", () => {
    const raw = baseSettings();
    raw.hosts!.vm.image = "bse";
    raw.hosts!.vm.runsOciImages = ["ingest"];
    expect(problems(raw)).toEqual(['hosts.vm.image: no image "bse" (known: base)', 'hosts.vm.runsOciImages[0]: no OCI image "ingest" (known: none)']);
  });

  test("private keys are refused", () => {
    const raw = baseSettings();
    raw.hosts!.vm.sshKeys = ["-----BEGIN OPENSSH PRIVATE KEY-----"];
    expect(problems(raw)).toEqual(["hosts.vm.sshKeys[0]: this is a private key; never put it here (paste the whole line of a .pub file)"]);
  });

  test("every problem is reported, one line each", () => {
    const out = problems({ ...baseSettings(), region: "Europe", zone: 3, extra: true });
    expect(out).toHaveLength(3);
  });

  test("unreadable and malformed files are named", () => {
    expect(() => loadSettings("/nonexistent/infra.json")).toThrow(
      "/nonexistent/infra.json: 1 problem(s)\n  does not exist; set INFRA_CONFIG to your settings file, or unset it to read infra.json at the project root",
    );
    // INFRA_CONFIG=examples (a directory): what to name instead, not an errno.
    expect(() => loadSettings(join(REPO_ROOT, "examples"))).toThrow(/examples: 1 problem\(s\)\n {2}is a directory; INFRA_CONFIG names a JSON file, such as examples\/offline\.json$/);
    expect(() => loadSettings(join(REPO_ROOT, "package-lock.json"))).toThrow(/unknown key/);
    // npm run starts the script at the project root: a path relative to where it was typed is not found.
    const [cwd, initCwd] = [process.cwd(), process.env.INIT_CWD];
    try {
      process.chdir(REPO_ROOT);
      process.env.INIT_CWD = join(REPO_ROOT, "docs");
      expect(() => loadSettings("../examples/offline.json")).toThrow(`; a relative path is read from the project root, not from ${join(REPO_ROOT, "docs")}`);
    } finally {
      process.chdir(cwd);
      if (initCwd === undefined) delete process.env.INIT_CWD;
      else process.env.INIT_CWD = initCwd;
    }
  });

  test("the published JSON Schema matches the settings schema (run npm run schema)", () => {
    const committed = readFileSync(join(REPO_ROOT, "infra.schema.json"), "utf8");
    expect(committed).toBe(stableJson(settingsJsonSchema()));
    const schema = JSON.parse(committed);
    expect(schema.required).toEqual(expect.arrayContaining(["project", "region", "zone", "imageBucket", "images"]));
    expect(schema.additionalProperties).toBe(false);
  });
});

describe("settings Google or the stack would refuse later are refused now, naming the key", () => {
  const vm = () => baseSettings().hosts!.vm;
  const withHost = (extra: Record<string, unknown>, id = "vm") => ({ ...baseSettings(), hosts: { [id]: { ...vm(), ...extra } } });
  const one = (raw: unknown) => {
    const out = problems(raw);
    expect(out).toHaveLength(1);
    return out[0];
  };

  test.each([
    ["toString"],
    ["constructor"],
    ["__proto__"],
    ["hasOwnProperty"],
  ])("hosts.vm.image = %j is not an image (own keys only)", (name) => {
    expect(one(withHost({ image: name }))).toBe(`hosts.vm.image: no image "${name}" (known: base)`);
    expect(one(withHost({ runsOciImages: [name] }))).toBe(`hosts.vm.runsOciImages[0]: no OCI image "${name}" (known: none)`);
  });

  test.each([
    ["999.999.999.999/99"],
    ["10.0.0.0/33"],
    ["256.1.1.1/8"],
    ["010.0.0.0/8"],
    ["10.0.0.0"],
  ])("sshSourceRanges %j is not a CIDR range", (range) => {
    expect(one(withHost({ sshSourceRanges: [range] }))).toMatch(/^hosts\.vm\.sshSourceRanges\[0\]: must be an IPv4 CIDR range/);
  });

  test("real CIDR ranges pass", () => {
    expect(() => parseSettings(withHost({ sshSourceRanges: ["0.0.0.0/0", "203.0.113.0/24", "255.255.255.255/32"] }))).not.toThrow();
  });

  test.each([["goog-images"], ["my-google-images"], ["images-g00gle"]])("bucket name %j is refused as Cloud Storage would", (name) => {
    expect(one({ ...baseSettings(), imageBucket: name })).toMatch(/^imageBucket: Cloud Storage refuses bucket names that start with "goog"/);
    expect(one({ ...baseSettings(), backend: { type: "gcs", bucket: name } })).toMatch(/^backend\.bucket: Cloud Storage refuses/);
  });

  test("the state bucket cannot be the image bucket", () => {
    expect(one({ ...baseSettings(), backend: { type: "gcs", bucket: "test-project-images" } })).toMatch(/^backend\.bucket: is also imageBucket/);
  });

  test.each([
    ["network", "", /^hosts\.vm\.network: must be a VPC network name/],
    ["network", "My Network!", /^hosts\.vm\.network: must be a VPC network name/],
    ["network", "x".repeat(100), /^hosts\.vm\.network: must be a VPC network name.*\(got "x{60}…" \(100 characters\)\)$/],
    ["subnetwork", "", /^hosts\.vm\.subnetwork: must be a subnetwork name/],
    ["subnetwork", "sub net", /^hosts\.vm\.subnetwork: must be a subnetwork name/],
  ])("hosts.vm.%s (case %#) is refused", (key, value, message) => {
    expect(one(withHost({ [key]: value }))).toMatch(message);
  });

  test("network and subnetwork paths of a shared VPC pass", () => {
    const s = parseSettings(
      withHost({ network: "projects/host-project/global/networks/shared", subnetwork: "projects/host-project/regions/europe-west1/subnetworks/data" }),
    );
    expect(s.hosts.vm.subnetwork).toBe("projects/host-project/regions/europe-west1/subnetworks/data");
  });

  test.each([[""], ["My Location!"], ["x".repeat(31)]])("imageBucketLocation %# is refused", (location) => {
    expect(one({ ...baseSettings(), imageBucketLocation: location })).toMatch(/^imageBucketLocation: must be a Cloud Storage location/);
  });

  test.each([[""], ["/"], ["state dir"], ["st'ate"], ["a/../b"], ["${HOME}"]])("stateDir %j is refused", (dir) => {
    expect(one({ ...baseSettings(), stateDir: dir })).toMatch(/^stateDir: must/);
  });

  test("more than 64 labels on one resource are refused, counting the stack's and the provider's attribution label", () => {
    const labels = (n: number, prefix: string) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, "x"]));
    // 39 + 23 + managed-by + host + goog-terraform-provisioned = 65.
    expect(one({ ...withHost({ labels: labels(39, "h") }), labels: labels(23, "s") })).toBe(
      "hosts.vm.labels: the instance would carry 65 labels (labels, hosts.vm.labels, 2 of the stack's and the provider's goog-terraform-provisioned); Google allows 64",
    );
    expect(() => parseSettings({ ...withHost({ labels: labels(38, "h") }), labels: labels(23, "s") })).not.toThrow();
    // 60 + managed-by, image-id, nix-store-hash, nixos-label + goog-terraform-provisioned = 65.
    expect(problems({ ...baseSettings(), labels: labels(60, "s") })).toContain(
      "labels: images would carry 65 labels (these, 4 of the stack's and the provider's goog-terraform-provisioned); Google allows 64",
    );
    expect(settingsProblems({ ...baseSettings(), labels: labels(59, "s") })).toEqual([]);
  });

  test("labels the stack sets itself cannot be set by hand (they would be silently overridden)", () => {
    expect(one(withHost({ labels: { host: "mine" } }))).toBe('hosts.vm.labels.host: is set by the stack (the host id); choose another key');
    expect(one({ ...baseSettings(), labels: { "nix-store-hash": "x" } })).toBe(
      'labels.nix-store-hash: is set by the stack on the resources it labels; choose another key',
    );
  });

  test("the zone must lie in the region", () => {
    expect(one({ ...baseSettings(), zone: "us-central1-a" })).toBe("zone: is not in region europe-west1; use a zone of europe-west1, such as europe-west1-b");
  });

  test('label keys starting with "goog" (reserved by Google) and a repeated network tag are refused', () => {
    expect(one({ ...baseSettings(), labels: { "goog-team": "x" } })).toBe('labels.goog-team: Google reserves label keys starting with "goog"; choose another key');
    expect(one(withHost({ labels: { googly: "x" } }))).toMatch(/^hosts\.vm\.labels\.googly: Google reserves/);
    expect(one(withHost({ tags: ["web", "db", "web"] }))).toBe('hosts.vm.tags[2]: repeats the tag "web"; list each tag once');
    expect(settingsProblems(withHost({ tags: ["web", "db"], labels: { team: "goo" } }))).toEqual([]);
  });

  test("a subnetwork path must be in the zone's region; tags are at most 64", () => {
    const path = (region: string) => `projects/test-project/regions/${region}/subnetworks/data`;
    expect(one(withHost({ subnetwork: path("us-central1") }))).toBe(
      `hosts.vm.subnetwork: is in region us-central1, but zone ${baseSettings().zone} is in ${baseSettings().zone!.replace(/-[a-z]$/, "")}; use a subnetwork of ${baseSettings().zone!.replace(/-[a-z]$/, "")}`,
    );
    expect(settingsProblems(withHost({ subnetwork: path(baseSettings().zone!.replace(/-[a-z]$/, "")) }))).toEqual([]);
    expect(one(withHost({ tags: Array.from({ length: 65 }, (_, i) => `t${i}`) }))).toMatch(/^hosts\.vm\.tags: .*64/);
  });

  test("the flake reference carries no attribute, is not an option and holds no credential", () => {
    for (const flake of [".#vm", "-L", "--impure"]) {
      expect(one({ ...baseSettings(), flake })).toMatch(/^flake: must be a flake reference without '#'/);
    }
    for (const flake of [
      "git+https://ci:ghp_SECRETTOKEN@github.com/org/repo",
      "https://u:p@example.com/f.tar.gz",
      "GIT+HTTPS://a:@example.com/r",
      "git+https://ghp_SECRETTOKEN@github.com/org/repo",
      "https://example.com/f.tar.gz?access_token=SECRETTOKEN",
      "git+https://example.com/r.git?ref=main&token=SECRETTOKEN",
    ]) {
      const problem = one({ ...baseSettings(), flake });
      expect(problem).toMatch(/^flake: must not carry a credential in its URL/);
      expect(problem).not.toContain("SECRETTOKEN");
    }
    for (const flake of [".", "./my flake", "github:org/repo?dir=infra", "git+https://example.com/r.git?ref=main", "git+ssh://git@github.com/org/repo", "git+ssh://git@example.com:2222/r", "git+https://example.com/r?ref=a:b@c"]) {
      expect(settingsProblems({ ...baseSettings(), flake })).toEqual([]);
    }
  });

  test("two hosts whose ids share their first 55 characters would share a firewall rule", () => {
    const prefix = "h".repeat(55);
    const out = problems({ ...baseSettings(), hosts: { [`${prefix}-a`]: vm(), [`${prefix}-b`]: vm() } });
    expect(out).toEqual([`hosts.${prefix}-b: gives the firewall name "${prefix}-ssh", as hosts.${prefix}-a does; shorten or rename one of them`]);
  });

  test("long host ids get distinct service account ids (6-30 characters)", () => {
    const ids = ["data-pipeline-worker-europe-1", "data-pipeline-worker-europe-2", "data-pipeline-worker-europe-10"];
    const raw = { ...baseSettings(), hosts: Object.fromEntries(ids.map((id) => [id, vm()])) };
    expect(() => parseSettings(raw)).not.toThrow();
    const accounts = ids.map(serviceAccountId);
    expect(new Set(accounts).size).toBe(3);
    for (const a of accounts) expect(a).toMatch(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/);
  });

  test("image families over 42 characters, and two images in one family, are refused", () => {
    expect(one({ ...baseSettings(), images: { base: { nixosConfiguration: "gce-base", family: "f".repeat(43) } } })).toMatch(
      /^images\.base\.family: must be at most 42 characters/,
    );
    const twice = { ...baseSettings(), images: { base: { nixosConfiguration: "a", family: "nixos" }, other: { nixosConfiguration: "b", family: "nixos" } } };
    expect(one(twice)).toBe('images.other.family: gives the image family "nixos", as images.base.family does; shorten or rename one of them');
  });

  test("OCI ids whose outputs collide are refused", () => {
    const raw = { ...baseSettings(), ociImages: { a: { package: "p", version: "1" }, "a-digest": { package: "q", version: "1" } } };
    expect(one(raw)).toBe('ociImages.a-digest: gives the Terraform output "oci-a-digest-reference", as ociImages.a does; shorten or rename one of them');
  });

  // packages.<system> is keyed by package name: a second image of one name, or deploy-rs, would replace an image there.
  test("two OCI images with one package are refused", () => {
    const raw = { ...baseSettings(), ociImages: { a: { package: "p", version: "1" }, b: { package: "p", version: "2" } } };
    expect(one(raw)).toBe('ociImages.b.package: "p" is also ociImages.a.package; give each OCI image a package of its own');
  });

  test("an OCI image's user is a number, or a name the image defines (root, nobody)", () => {
    const user = (value: string) => settingsProblems({ ...baseSettings(), ociImages: { a: { package: "p", version: "1", user: value } } });
    for (const ok of ["0", "65534:65534", "1000:100", "root", "nobody:65534"]) expect(user(ok)).toEqual([]);
    expect(user("pipeline")).toEqual(['ociImages.a.user: must be a uid[:gid] such as 65534:65534 or 0, or root or nobody (the only names the image defines) (got "pipeline")']);
  });

  test("an OCI image whose package is the flake's deploy-rs package is refused", () => {
    const raw = { ...baseSettings(), ociImages: { a: { package: "deploy-rs", version: "1" } } };
    expect(one(raw)).toBe('ociImages.a.package: "deploy-rs" is the flake\'s deploy-rs package (deploy.package); choose another name');
    // flake.nix names it deploy-rs whatever deploy.package says.
    expect(one({ ...raw, deploy: { package: "tools" } })).toBe(
      'ociImages.a.package: "deploy-rs" is the flake\'s deploy-rs package (flake.nix\'s packages.<system>.deploy-rs); choose another name',
    );
  });

  test("recreateOnImageChange needs a host id that leaves room for the image suffix", () => {
    expect(one(withHost({ recreateOnImageChange: true }, "h".repeat(57)))).toMatch(
      /^hosts\.h{57}\.recreateOnImageChange: needs a host id of at most 56 characters/,
    );
    expect(() => parseSettings(withHost({ recreateOnImageChange: true }, "h".repeat(56)))).not.toThrow();
  });

  test("deletionProtection and recreateOnImageChange cannot go together", () => {
    expect(one(withHost({ recreateOnImageChange: true, deletionProtection: true }))).toMatch(
      /^hosts\.vm\.deletionProtection: cannot be combined with recreateOnImageChange: Google refuses to delete the old VM/,
    );
  });

  test("error lines are bounded and escape control characters", () => {
    const huge = "a".repeat(5_000_000);
    const out = problems({ ...baseSettings(), project: huge, zone: "\u001b[31mred\u001b[0m", region: "europe\nwest1" });
    for (const line of out) {
      expect(line.length).toBeLessThan(400);
      expect(line).not.toMatch(/[\u0000-\u001f\u007f]/);
    }
    expect(out).toContain(`project: is 5000000 characters; at most 8192`);
    expect(out.find((l) => l.startsWith("zone:"))).toContain("\\u001b[31mred");
    expect(out.find((l) => l.startsWith("region:"))).toContain('(got "europe\\nwest1")');
    const badKey = problems({ ...baseSettings(), ["\u001b]0;pwned\u0007"]: 1 });
    expect(badKey[0]).toMatch(/^\["\\u001b\]0;pwned\\u0007"\]: key has a control character/);
    const longType = problems({ ...baseSettings(), images: "x".repeat(10_000) });
    expect(longType[0].length).toBeLessThan(200);
    // A bidirectional override would make the terminal show the line in another order ("Trojan Source").
    const bidi = problems({ ...baseSettings(), zone: "eu\u202ewest\u2066" });
    expect(bidi[0]).toMatch(/^zone: .*eu\\u202ewest\\u2066/);
    expect(bidi[0]).not.toMatch(/[\u202a-\u202e\u2066-\u2069]/);
  });

  test("the deploy user cannot be root (hosts refuse root logins over SSH)", () => {
    expect(settingsProblems(baseSettings({ deploy: { user: "root" } as never }))).toEqual([
      'deploy.user: must not be "root": hosts refuse root logins over SSH; keep the default "deploy" (got "root")',
    ]);
    expect(settingsProblems(baseSettings({ deploy: { user: "ops" } as never }))).toEqual([]);
  });

  test("the deploy user cannot be a user NixOS already declares", () => {
    for (const user of ["nobody", "sshd", "postgres", "nixbld3", "systemd-network"]) {
      expect(settingsProblems(baseSettings({ deploy: { user } as never }))).toEqual([
        `deploy.user: is a system user on NixOS hosts (the modules would declare it twice); keep the default "deploy" (got "${user}")`,
      ]);
    }
    expect(settingsProblems(baseSettings({ deploy: { user: "nixbuilder" } as never }))).toEqual([]);
  });

  test("a __proto__ key is refused, not silently dropped", () => {
    const raw: any = baseSettings();
    raw.hosts = JSON.parse(`{"__proto__": ${JSON.stringify(raw.hosts.vm)}, "vm": ${JSON.stringify(raw.hosts.vm)}}`);
    expect(problems(raw)).toEqual(['hosts.__proto__: "__proto__" cannot be a key here; rename it']);
    expect(problems({ ...baseSettings(), labels: JSON.parse('{"__proto__": "x"}') })).toEqual(['labels.__proto__: "__proto__" cannot be a key here; rename it']);
  });

  test("a JSON error gives the line and column", () => {
    const dir = mkdtempSync(join(tmpdir(), "settings-file-"));
    const problemsOf = (text: string) => {
      writeFileSync(join(dir, "infra.json"), text);
      return settingsFileProblems(join(dir, "infra.json"));
    };
    try {
      // Node reports these three differently: "at position N", a quote of the text around a stray character, and nothing.
      expect(problemsOf('{\n  "project": "p",\n}\n')).toEqual([
        "not valid JSON: line 3 column 1: Expected double-quoted property name (remove the comma before it: JSON allows no trailing comma)",
      ]);
      expect(problemsOf('{\n  "sshKeys": ["a",\n  ]\n}\n')).toEqual([
        "not valid JSON: line 3 column 3: Unexpected token ']' (remove the comma before it: JSON allows no trailing comma)",
      ]);
      expect(problemsOf(`{\n  "project": "p",\n  "labels": { "team": data }\n}\n`)).toEqual(["not valid JSON: line 3 column 23: Unexpected token 'd'"]);
      expect(problemsOf("\n")).toEqual(["not valid JSON: line 2 column 1: Unexpected end of JSON input"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("file-level errors are one escaped, bounded line too; a byte order mark is not an error", () => {
    const dir = mkdtempSync(join(tmpdir(), "settings-file-"));
    try {
      const file = join(dir, "infra.json");
      writeFileSync(file, "\u001b[31m{");
      const message = (() => {
        try {
          loadSettings(file);
        } catch (e) {
          return (e as SettingsError).problems;
        }
        return [];
      })();
      expect(message).toHaveLength(1);
      expect(message![0]).toMatch(/^not valid JSON: .*\\u001b/);
      expect(message![0]).not.toMatch(/[\u0000-\u001f]/);
      writeFileSync(file, `\uFEFF${JSON.stringify(baseSettings())}`);
      expect(loadSettings(file).project).toBe("test-project");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const long = new SettingsError("infra.json", [`x: ${"y".repeat(5000)}`]).problems[0];
    expect(long.length).toBeLessThan(450);
    expect(long).toMatch(/… \(line cut\)$/);
  });

  test("an SSH key line cannot carry a second line", () => {
    const key = vm().sshKeys![0];
    expect(one(withHost({ sshKeys: [`${key}\nssh-ed25519 AAAAinjected attacker`] }))).toMatch(/^hosts\.vm\.sshKeys\[0\]: contains a control character/);
  });
});
