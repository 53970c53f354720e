/** The npm run commands as a new user meets them: --help, stray arguments, and what they need said. */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { REPO_ROOT } from "./helpers/nix.js";
import { baseSettings } from "./helpers/settings.js";
import { describeWithTool } from "./helpers/tools.js";

const TSX = join(REPO_ROOT, "node_modules", "tsx", "dist", "loader.mjs");

describe("npm run <command> from an empty directory", () => {
  // cwd is an empty directory, so anything a command writes there shows (one for the file: the tests run concurrently and write nothing).
  // Made here, not in beforeAll: jest starts concurrent tests before any hook runs.
  const work = mkdtempSync(join(tmpdir(), "cli-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  // The file and arguments each npm script runs (`node [--import tsx] <file> [args]`); synth is the cdktf app, main.ts (npm run synth runs its bundle).
  const scripts: Record<string, string> = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")).scripts;
  const entry = (bin: string) => {
    if (bin === "synth") return [join(REPO_ROOT, "main.ts")];
    const [file, ...args] = /^node (?:--import tsx )?(.+)$/.exec(scripts[bin])![1].split(" ");
    return [join(REPO_ROOT, file), ...args];
  };
  const run = (bin: string, ...args: string[]) =>
    execa("node", ["--import", TSX, ...entry(bin), ...args], { cwd: work, reject: false, env: { INFRA_CONFIG: join(work, "infra.json") } });

  const commands = ["synth", "build", "pin", "rehearse", "rollback", "schema", "check-backend", "host-keys", "bench-synth", "plan-summary", "host-diff", "bench-host-diff"];
  test("every npm script but typecheck and the tests is a command here", () => {
    expect(Object.keys(scripts).filter((s) => !["typecheck", "test", "test:rehearsal"].includes(s)).sort()).toEqual([...commands].sort());
  });

  test.concurrent.each(commands.map((c) => [c, c === "pin" ? "-h" : "--help"]))("%s %s prints its usage and one line per flag, exits 0 and does nothing else", async (bin, flag) => {
    const r = await run(bin, flag);
    expect({ code: r.exitCode, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const [usage, does, ...rows] = r.stdout.split("\n");
    expect(usage).toMatch(new RegExp(`^usage: npm run ${bin}\\b`));
    expect(does).toMatch(/^[A-Z].*\.$/);
    expect(rows.at(-1)).toMatch(/^ {2}-h, --help {2,}print this help and exit$/);
    // Every flag of the usage line has its own line, and every line is `  <flag or argument>  <help>`.
    for (const name of usage.match(/--[a-z][\w-]*/g) ?? []) expect(rows.filter((row) => row.startsWith(`  ${name} `))).toHaveLength(1);
    for (const row of rows) expect(row).toMatch(/^ {2}\S.*\S {2,}\S/);
    // Read literally, the usage is a command that works: npm passes a second "--" on as an argument.
    expect(usage.match(/(?<![\w-])--(?![\w-])/g)?.length ?? 0).toBeLessThanOrEqual(1);
    // schema once wrote infra.schema.json when asked for help.
    expect(readdirSync(work)).toEqual([]);
  });

  // One parser (lib/cli.ts parseCommand) for all but build (bin/synth.js, plain JavaScript); rehearse would otherwise start a rehearsal.
  test.concurrent.each(["rehearse", "pin", "build"])("%s refuses an unknown option with its usage, before doing anything", async (bin) => {
    const r = await run(bin, "--bogus");
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^error: (rehearse: )?unknown option --bogus; usage: npm run ${bin}\\b[^\\n]*$`));
    expect(readdirSync(work)).toEqual([]);
  });

  test.concurrent.each(["0", "1"])("INFRA_DEBUG=%s: the stack trace comes with the error only at 1, as the README says", async (value) => {
    const r = await execa("node", ["--import", TSX, ...entry("pin"), "--bogus"], { cwd: work, reject: false, env: { INFRA_DEBUG: value } });
    expect(r.stderr).toMatch(/^error: unknown option --bogus/);
    expect(r.stderr.includes("\n    at ")).toBe(value === "1");
  });

  test.concurrent.each([
    ["synth", ["stray"], "unexpected argument stray; usage: npm run synth"],
    ["rollback", ["vm", "--address"], "--address needs a value; usage: npm run rollback -- <host>"],
    ["pin", ["--check=yes"], "--check takes no value; usage: npm run pin"],
    ["host-diff", ["--base", "-x"], "--base needs a value; for one starting with '-', write --base=-x; usage: npm run host-diff"],
    ["rollback", [], "usage: npm run rollback -- <host>"],
    ["pin", ["--chek"], "unknown option --chek (did you mean --check?); usage: npm run pin"],
    ["host-keys", ["pul"], "unknown action pul (pull or push); usage: npm run host-keys -- pull|push"],
  ])("%s %j: says what is wrong, with the usage", async (bin, args, message) => {
    const r = await run(bin, ...args);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^error: ${message.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}[^\\n]*$`));
  });
});

describeWithTool("terraform", "npm run rollback without the stack's outputs (real terraform)", () => {
  let work: string;
  beforeEach(() => (work = mkdtempSync(join(tmpdir(), "cli-rollback-"))));
  afterEach(() => rmSync(work, { recursive: true, force: true }));
  const rollback = (settings: unknown, ...args: string[]) => {
    writeFileSync(join(work, "infra.json"), JSON.stringify(settings));
    return execa("node", ["--import", TSX, join(REPO_ROOT, "bin", "rollback.ts"), ...args], { cwd: work, reject: false, env: { INFRA_CONFIG: join(work, "infra.json") } });
  };

  test("an IAP host: Terraform's reason, and only --instance-id to pass", async () => {
    const r = await rollback(baseSettings(), "vm");
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(
      "error: cannot read the outputs of stack infra (Error handling -chdir option: chdir cdktf.out/stacks/infra: no such file or directory); " +
        "pass --instance-id ID, or run npx cdktf synth and terraform -chdir=cdktf.out/stacks/infra init where the stack was deployed",
    );
  });

  test("a direct-SSH host that is recreated on image change: the flags it still lacks", async () => {
    const s = baseSettings();
    s.hosts!.vm = { ...s.hosts!.vm, sshSourceRanges: ["203.0.113.0/24"], externalIp: true, recreateOnImageChange: true };
    const r = await rollback(s, "vm", "--instance-id", "42");
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^error: cannot read the outputs of stack infra \([^\n]*\); pass --address IP --instance-name NAME, or run npx cdktf synth/);
  });
});
