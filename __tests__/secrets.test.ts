/**
 * Secrets (issue 22): the settings that name them, the stack that creates
 * them and grants each host its own, the rehearsal's state, and the fetch
 * script run by real bash, curl and jq against a TEST DOUBLE of the metadata
 * server and Secret Manager on 127.0.0.1 (Google's APIs cannot be reached here).
 */
import { spawn, spawnSync } from "node:child_process";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REQUIRED_APIS } from "../constructs/bootstrap-stack.js";
import { rehearsalConfig } from "../tools/rehearse.js";
import { parseSettings, type SettingsInput } from "../lib/settings.js";
import { terraform } from "../tools/terraform.js";
import { REPO_ROOT } from "./helpers/nix.js";
import { baseSettings, settingsProblems } from "./helpers/settings.js";
import { resources, staticResolved, synthStack } from "./helpers/stack.js";
import { describeWithTool, describeWithTools } from "./helpers/tools.js";

const vm = baseSettings().hosts!.vm;
/** Two hosts on two configurations: "shared" is listed by both, "only-a" by a alone. */
const withSecrets = (overrides: Partial<SettingsInput> = {}): SettingsInput =>
  baseSettings({
    hosts: {
      a: { ...vm, secrets: { shared: {}, "only-a": { owner: "pipeline", mode: "0440" } } },
      b: { ...vm, nixosConfiguration: "worker", secrets: { shared: {} } },
    },
    ...overrides,
  });
const synth = (input: SettingsInput) => {
  const s = parseSettings(input, "test");
  return synthStack(s, staticResolved(s)).json;
};

describe("secrets settings: refused at synth, naming the key", () => {
  const host = (secrets: unknown) => baseSettings({ hosts: { vm: { ...vm, secrets } as never } });
  test.each([
    ["a name Secret Manager refuses", host({ "db password": {} }), /^hosts\.vm\.secrets\["db password"\]: "db password" is not a valid id: must be a Secret Manager secret id/],
    ["an unknown key", host({ token: { ownr: "root" } }), /^hosts\.vm\.secrets\.token\.ownr: unknown key/],
    ["an owner that is no user name", host({ token: { owner: "Pipeline User" } }), /^hosts\.vm\.secrets\.token\.owner: must be a user name/],
    ["a mode that lets others read", host({ token: { mode: "0444" } }), /^hosts\.vm\.secrets\.token\.mode: must be an octal mode .* that gives others nothing/],
    ["a location that is no region", withSecrets({ secretLocations: ["EU"] }), /^secretLocations\[0\]: must be a region/],
    [
      "hosts of one configuration that list different secrets",
      baseSettings({ hosts: { a: { ...vm, secrets: { shared: {} } }, b: { ...vm, secrets: {} } } }),
      /^hosts\.b\.secrets: differs from host "a", which runs the same configuration "vm"/,
    ],
  ])("%s", (_rule, raw, line) => {
    const problems = settingsProblems(raw);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(line);
  });
});

describe("secrets in the synthesized stack", () => {
  const json = synth(withSecrets());

  test("one secret per distinct name, automatic replication unless secretLocations says otherwise", () => {
    const secrets = Object.values(resources(json, "google_secret_manager_secret"));
    expect(secrets.map((s) => [s.secret_id, s.replication]).sort()).toEqual([
      ["only-a", { auto: {} }],
      ["shared", { auto: {} }],
    ]);
    const placed = Object.values(resources(synth(withSecrets({ secretLocations: ["europe-west1", "europe-west4"] })), "google_secret_manager_secret"));
    expect(placed[0].replication).toEqual({ user_managed: { replicas: [{ location: "europe-west1" }, { location: "europe-west4" }] } });
  });

  test("the accessor role is granted on each secret to exactly the hosts that list it, never project-wide; deploys wait for their grants", () => {
    const secretIds = Object.fromEntries(Object.entries(resources(json, "google_secret_manager_secret")).map(([id, s]) => [id, s.secret_id]));
    const members = Object.fromEntries(
      Object.entries(resources(json, "google_service_account")).map(([id, sa]) => [`\${google_service_account.${id}.member}`, sa.account_id]),
    );
    const grants = Object.entries(resources(json, "google_secret_manager_secret_iam_member")).map(([id, g]) => {
      expect(g.role).toBe("roles/secretmanager.secretAccessor");
      const secret = secretIds[/^\$\{google_secret_manager_secret\.([^.]+)\.secret_id\}$/.exec(g.secret_id)![1]];
      return { id, pair: `${secret} ${members[g.member]}` };
    });
    expect(grants.map((g) => g.pair).sort()).toEqual(["only-a host-a", "shared host-a", "shared host-b"]);
    expect(Object.values(resources(json, "google_project_iam_member")).map((m) => m.role)).not.toContainEqual(expect.stringContaining("secretmanager"));
    for (const host of ["a", "b"]) {
      const deploy = Object.entries(resources(json, "null_resource")).find(([id]) => id.startsWith(`${host}-deploy_`))![1];
      const own = grants.filter((g) => g.pair.endsWith(` host-${host}`)).map((g) => `google_secret_manager_secret_iam_member.${g.id}`);
      expect(own.length).toBeGreaterThan(0);
      expect(deploy.depends_on).toEqual(expect.arrayContaining(own));
    }
  });

  test("no value anywhere: no secret version resource, no secret_data", () => {
    expect(json).not.toMatch(/secret_version|secret_data|payload/);
    expect(REQUIRED_APIS).toContain("secretmanager.googleapis.com");
  });
});

describeWithTool("terraform", "the rehearsal of a stack with secrets (real Terraform, stand-ins)", () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), "secrets-rehearsal-"))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (input: SettingsInput) => {
    const { config } = rehearsalConfig(JSON.parse(synth(input)));
    for (const block of Object.values<any>(config.resource.terraform_data)) delete block.provisioner;
    writeFileSync(join(dir, "cdk.tf.json"), JSON.stringify(config));
  };

  test("applies; its state holds the secrets and grants and no value; a host that stops listing a secret loses its grant only; a replaced secret is granted again", async () => {
    write(withSecrets());
    for (const args of [["init"], ["apply", "-auto-approve"]]) {
      const run = await terraform([...args, "-no-color"], { dir });
      if (run.exitCode !== 0) throw new Error(`terraform ${args[0]} failed:\n${run.text}`);
    }
    const state = readFileSync(join(dir, "terraform.tfstate"), "utf8");
    const names = JSON.parse(state).resources.map((r: { name: string }) => r.name).filter((n: string) => n.startsWith("google_secret_manager"));
    expect(names).toHaveLength(5);
    expect(state).not.toMatch(/secret_version|secret_data|payload/);

    const fewer = withSecrets();
    fewer.hosts!.b.secrets = {};
    write(fewer);
    const plan = await terraform(["plan", "-json"], { dir });
    const planned = plan.events.filter((e) => e.type === "planned_change").map((e) => `${e.change!.action} ${e.change!.resource!.addr}`);
    expect(planned).toEqual([expect.stringMatching(/^delete terraform_data\.google_secret_manager_secret_iam_member__secret-shared_Access-b_/)]);

    // New locations replace each secret, and Google drops its bindings with it: every grant on it must be made again.
    write(withSecrets({ secretLocations: ["europe-west1"] }));
    const moved = await terraform(["plan", "-json"], { dir });
    const replaced = moved.events
      .filter((e) => e.type === "planned_change" && e.change!.action === "replace")
      .map((e) => e.change!.resource!.addr.replace(/^terraform_data\.(google_\w+?)__secret-([\w-]+?)_(Secret|Access-\w+)_.*$/, "$1 $2 $3"))
      .sort();
    expect(replaced).toEqual([
      "google_secret_manager_secret only-a Secret",
      "google_secret_manager_secret shared Secret",
      "google_secret_manager_secret_iam_member only-a Access-a",
      "google_secret_manager_secret_iam_member shared Access-a",
      "google_secret_manager_secret_iam_member shared Access-b",
    ]);
    // A label change updates the secrets in place: the grants stay.
    write(withSecrets({ labels: { team: "other" } }));
    const relabelled = await terraform(["plan", "-json"], { dir });
    expect(relabelled.events.filter((e) => e.type === "planned_change" && /iam_member/.test(e.change!.resource!.addr) && e.change!.action !== "delete")).toEqual([]);
  }, 60000);
});

/** TEST DOUBLE of the metadata server and Secret Manager: what each secret answers, by name. */
const TOKEN = "ya29.double-token";
const VALUE = Buffer.concat([Buffer.from("line one\nline two\n\n"), Buffer.from([0x01, 0x7f, 0x80, 0xfe, 0xff, 0x0d, 0x0a])]);
const googleError = (code: number, status: string, message: string) => JSON.stringify({ error: { code, message, status } });
const ANSWERS: Record<string, [number, string]> = {
  "warehouse-password": [200, JSON.stringify({ name: "projects/123/secrets/warehouse-password/versions/3", payload: { data: VALUE.toString("base64"), dataCrc32c: "1" } })],
  denied: [403, googleError(403, "PERMISSION_DENIED", "Permission 'secretmanager.versions.access' denied for resource (or it may not exist).")],
  "no-version": [404, googleError(404, "NOT_FOUND", "Secret [projects/123/secrets/no-version] not found or has no versions.")],
  disabled: [400, googleError(400, "FAILED_PRECONDITION", "Secret Version [projects/123/secrets/disabled/versions/2] is in DISABLED state.")],
};

describeWithTools(["curl", "jq", "shellcheck"], "nixos/secrets-fetch.sh: real bash, curl and jq against a double of Google's servers", () => {
  let server: Server;
  let base: string;
  let dir: string;
  const requests: string[] = [];
  let slowAnswered = false;
  let lateGranted = false;

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const url = req.url ?? "";
      requests.push(url);
      const send = (code: number, body: string): void => void res.writeHead(code, { "content-type": "application/json" }).end(body);
      if (url.startsWith("/computeMetadata/v1/")) {
        if (req.headers["metadata-flavor"] !== "Google") return send(403, "missing Metadata-Flavor");
        if (url.endsWith("/instance/service-accounts/default/token")) return send(200, JSON.stringify({ access_token: TOKEN, expires_in: 3599, token_type: "Bearer" }));
        if (url.endsWith("/project/project-id")) return send(200, "test-project");
      }
      const [, secret, version] = /^\/v1\/projects\/test-project\/secrets\/([^/]+)\/versions\/(latest|\d+):access$/.exec(url) ?? [];
      if (!secret) return send(404, "no such path");
      if (req.headers.authorization !== `Bearer ${TOKEN}`) return send(401, googleError(401, "UNAUTHENTICATED", "no token"));
      // "slow" answers its first request after the script's bound on one request, then at once.
      if (secret === "slow") {
        if (slowAnswered) return send(...ANSWERS["warehouse-password"]);
        slowAnswered = true;
        setTimeout(() => send(...ANSWERS["warehouse-password"]), 2500).unref();
        return;
      }
      // Versions by number: "disabled" has two, both disabled; "older-enabled" three, of which only 1 is enabled.
      const state = (n: string, s: string) => [400, googleError(400, "FAILED_PRECONDITION", `Secret Version [projects/123/secrets/${secret}/versions/${n}] is in ${s} state.`)] as [number, string];
      if (secret === "disabled") return send(...state(version === "latest" ? "2" : version, "DISABLED"));
      if (secret === "older-enabled") {
        if (version === "1") return send(...ANSWERS["warehouse-password"]);
        return send(...state(version === "latest" ? "3" : version, version === "2" ? "DESTROYED" : "DISABLED"));
      }
      // "granted-late" is denied once, as while a new grant is not yet in effect.
      if (secret === "granted-late") {
        if (lateGranted) return send(...ANSWERS["warehouse-password"]);
        lateGranted = true;
        return send(...ANSWERS.denied);
      }
      send(...(ANSWERS[secret] ?? [403, googleError(403, "PERMISSION_DENIED", "denied")]));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "secrets-run-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs the script (asynchronously: the double answers from this process). */
  const run = (entries: string[], extraEnv: Record<string, string> = {}) =>
    new Promise<{ status: number | null; lines: string[] }>((resolve) => {
      const child = spawn("bash", [join(REPO_ROOT, "nixos", "secrets-fetch.sh"), ...entries], {
        env: {
          PATH: process.env.PATH!,
          SECRETS_DIR: dir,
          METADATA_URL: `${base}/computeMetadata/v1`,
          SECRET_MANAGER_URL: `${base}/v1`,
          SECRETS_REQUEST_SECONDS: "1",
          SECRETS_RETRY_SECONDS: "20",
          SECRETS_DENIED_RETRY_SECONDS: "0",
          ...extraEnv,
        },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (d) => (stderr += d));
      child.on("close", (status) => resolve({ status, lines: stderr.trim().split("\n") }));
    });

  test("shellcheck passes it, as the writeShellApplication build requires", () => {
    expect(spawnSync("shellcheck", [join(REPO_ROOT, "nixos", "secrets-fetch.sh")], { encoding: "utf8" })).toMatchObject({ status: 0, stdout: "" });
  });

  test("the token reaches curl in a file, never in its arguments (any user sees those in ps)", async () => {
    // A PATH entry named curl that records its arguments, then runs the real one.
    const spy = mkdtempSync(join(tmpdir(), "curl-spy-"));
    const real = spawnSync("sh", ["-c", "command -v curl"], { encoding: "utf8" }).stdout.trim();
    writeFileSync(join(spy, "curl"), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${spy}/argv.log'\nexec '${real}' "$@"\n`, { mode: 0o755 });
    try {
      const { status } = await run(["warehouse-password:nobody:0400"], { PATH: `${spy}:${process.env.PATH}` });
      expect(status).toBe(0);
      const argv = readFileSync(join(spy, "argv.log"), "utf8");
      expect(argv).toContain("/secrets/warehouse-password/versions/latest:access");
      expect(argv).not.toContain(TOKEN);
    } finally {
      rmSync(spy, { recursive: true, force: true });
    }
  }, 30000);

  test("a value with newlines and binary bytes is written verbatim, with the mode and owner given; nothing else is left", async () => {
    const { status, lines } = await run(["warehouse-password:nobody:0400"]);
    expect({ status, lines }).toEqual({ status: 0, lines: [`infra-secrets: warehouse-password: written to ${dir}/warehouse-password`] });
    const file = join(dir, "warehouse-password");
    expect(readFileSync(file).equals(VALUE)).toBe(true);
    const st = statSync(file);
    expect({ mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid }).toEqual({ mode: "400", uid: 65534, gid: 65534 });
    expect(readdirSync(dir)).toEqual(["warehouse-password"]);
  }, 30000);

  test.each([
    ["denied", 403, "list it under hosts.<id>.secrets in infra.json and apply"],
    ["no-version", 404, "gcloud secrets versions add no-version --project test-project --data-file=FILE"],
    ["disabled", 400, "gcloud secrets versions add disabled --project test-project --data-file=FILE"],
  ])("%s (HTTP %d): one line naming the secret and the fix, the unit fails, the other secrets are still written", async (name, code, fix) => {
    const { status, lines } = await run([`${name}:root:0400`, "warehouse-password:root:0400"]);
    expect(status).toBe(1);
    const failures = lines.filter((l) => l.includes("not fetched"));
    expect(failures).toHaveLength(1);
    expect(failures[0]).toContain(`infra-secrets: secret ${name} not fetched (HTTP ${code}): `);
    expect(failures[0]).toContain(fix);
    expect(failures[0]).toContain("systemctl restart infra-secrets");
    expect(readdirSync(dir)).toEqual(["warehouse-password"]);
  }, 30000);

  test("a newest version disabled or destroyed: the latest enabled one is fetched", async () => {
    const { status, lines } = await run(["older-enabled:root:0400"]);
    expect({ status, lines }).toEqual({ status: 0, lines: [`infra-secrets: older-enabled: written to ${dir}/older-enabled`] });
    expect(requests.filter((r) => r.includes("/secrets/older-enabled/")).map((r) => r.split("/versions/")[1])).toEqual(["latest:access", "2:access", "1:access"]);
    expect(readFileSync(join(dir, "older-enabled")).equals(VALUE)).toBe(true);
  }, 30000);

  test("a re-fetch that fails keeps the last copy; a secret no longer listed is removed", async () => {
    writeFileSync(join(dir, "disabled"), "last good copy");
    writeFileSync(join(dir, "dropped"), "no longer listed");
    const { status, lines } = await run(["disabled:root:0400", "warehouse-password:root:0400"]);
    expect(status).toBe(1);
    expect(lines).toContain("infra-secrets: dropped: no longer listed, removed");
    expect(readdirSync(dir).sort()).toEqual(["disabled", "warehouse-password"]);
    expect(readFileSync(join(dir, "disabled"), "utf8")).toBe("last good copy");
  }, 30000);

  test("a denied secret is retried for SECRETS_DENIED_RETRY_SECONDS (a new grant takes minutes to apply), then written", async () => {
    const { status, lines } = await run(["granted-late:root:0400"], { SECRETS_DENIED_RETRY_SECONDS: "5" });
    expect({ status, lines }).toEqual({
      status: 0,
      lines: ["infra-secrets: granted-late: denied, perhaps by a grant not yet in effect (HTTP 403), retrying in 1s", `infra-secrets: granted-late: written to ${dir}/granted-late`],
    });
    expect(readFileSync(join(dir, "granted-late")).equals(VALUE)).toBe(true);
  }, 30000);

  test("a server that answers slowly is retried with backoff until it answers", async () => {
    const before = requests.filter((r) => r.includes("/secrets/slow/")).length;
    const { status, lines } = await run(["slow:root:0400"]);
    expect(status).toBe(0);
    expect(lines[0]).toBe("infra-secrets: slow: no answer yet (HTTP 000), retrying in 1s");
    expect(requests.filter((r) => r.includes("/secrets/slow/")).length - before).toBe(2);
    expect(readFileSync(join(dir, "slow")).equals(VALUE)).toBe(true);
  }, 30000);
});
