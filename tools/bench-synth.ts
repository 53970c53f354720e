/**
 * npm run bench-synth [-- [--app] [1 100 1000]]
 * Synthesizes a fleet of N hosts against the offline example's flake (real
 * Nix, evaluation only) and reports wall time and peak memory of the synth
 * process. --app times the whole app command (cdktf.json's, bundle up to
 * date) for the one-host offline example against `node -e 'require("cdktf")'`.
 * A benchmark, not a test: the figures depend on the machine.
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseCommand, runCli } from "../lib/cli.js";
import { NixError } from "../lib/nix.js";
import { INFRA_STACK } from "../lib/paths.js";

const ROOT = resolve(import.meta.dirname, "..");
/** Written by the synth process as it exits: its own peak RSS (KiB). */
const REPORT_RSS = `data:text/javascript,process.on("exit",()=>process.stderr.write("bench-rss-kib "+process.resourceUsage().maxRSS+"\\n"))`;

function fleet(n: number, flake: string) {
  const hosts = Object.fromEntries(
    Array.from({ length: n }, (_, i) => [`worker-${i}`, { nixosConfiguration: i % 2 ? "vm" : "worker", image: "base", machineType: "e2-small" }]),
  );
  return {
    project: "bench-project",
    region: "europe-west1",
    zone: "europe-west1-b",
    flake,
    imageBucket: "bench-project-images",
    images: { base: { nixosConfiguration: "gce-base", family: "nixos-base" } },
    hosts,
  };
}

/** Median wall time (ms) of each command, run alternately `runs` times so load drifts hit all alike. */
function medians(commands: Record<string, string[]>, runs: number, env: NodeJS.ProcessEnv): Record<string, number> {
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(commands).map((name) => [name, []]));
  for (let i = 0; i < runs; i++) {
    for (const [name, [command, ...args]] of Object.entries(commands)) {
      const started = process.hrtime.bigint();
      const run = spawnSync(command, args, { cwd: ROOT, env, stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
      if (run.status !== 0) throw new NixError(`${name} failed:\n${run.stderr.slice(-2000)}`);
      times[name].push(Number(process.hrtime.bigint() - started) / 1e6);
    }
  }
  return Object.fromEntries(Object.entries(times).map(([name, t]) => [name, t.sort((a, b) => a - b)[Math.floor(t.length / 2)]]));
}

function benchApp(runs: number): void {
  const outdir = mkdtempSync(join(tmpdir(), "bench-app-"));
  try {
    const env = { ...process.env, INFRA_CONFIG: "examples/offline.json", INFRA_RESOLVE: "pinned", CDKTF_OUTDIR: outdir };
    const m = medians({ cdktf: [process.execPath, "-e", 'require("cdktf")'], app: [process.execPath, "bin/synth.js"], bundle: [process.execPath, "dist/main.js"] }, runs, env);
    console.log(`median of ${runs} (examples/offline.json, INFRA_RESOLVE=pinned: one host, no nix eval)`);
    console.log(`node -e 'require("cdktf")'  ${m.cdktf.toFixed(0).padStart(5)} ms`);
    console.log(`node bin/synth.js (the app)  ${m.app.toFixed(0).padStart(5)} ms  ${(m.app / m.cdktf).toFixed(2)} x`);
    console.log(`node dist/main.js (bundle)   ${m.bundle.toFixed(0).padStart(5)} ms  ${(m.bundle / m.cdktf).toFixed(2)} x`);
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

await runCli(() => {
  const args = parseCommand({
    usage: "npm run bench-synth [-- [--app] [--runs N] [<hosts> ...]]",
    does: "Times synth of fleets of <hosts> hosts (default 1 100 1000) against the offline example's flake (real nix eval), or, with --app, the app command.",
    positionals: { min: 0, max: Infinity, name: "<hosts>", help: "fleet sizes, whole numbers from 1 to 100000" },
    flags: {
      app: { help: "time the app command (bundle up to date) against node -e 'require(\"cdktf\")' instead" },
      runs: { value: "N", help: "runs per command for --app (default 21; the median is reported)" },
    },
  });
  if (!args) return;
  process.stderr.write("bench-synth: building dist/main.js…\n");
  const build = spawnSync(process.execPath, ["bin/synth.js", "--build"], { cwd: ROOT, stdio: "inherit" });
  if (build.status !== 0) throw new NixError("npm run build failed");
  if (args.flags.app) {
    const runs = Number(args.flags.runs ?? 21);
    if (!Number.isInteger(runs) || runs < 1) throw new NixError(`--runs must be a whole number of at least 1 (got ${args.flags.runs})`);
    return benchApp(runs);
  }
  const counts = args.positionals.length ? args.positionals.map(Number) : [1, 100, 1000];
  if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 100_000)) throw new NixError(`host counts must be whole numbers from 1 to 100000 (got ${args.positionals.join(" ")})`);
  const work = mkdtempSync(join(tmpdir(), "bench-synth-"));
  try {
    // A copy outside any git repository: Nix reads it as a plain path.
    cpSync(join(ROOT, "examples", "flake"), join(work, "flake"), { recursive: true });
    console.log("hosts  wall (s)  nix eval (s)  peak RSS (MiB)  cdk.tf.json (KiB)");
    for (const n of counts) {
      process.stderr.write(`bench-synth: ${n} host(s)…\n`);
      const config = join(work, `infra-${n}.json`);
      writeFileSync(config, JSON.stringify(fleet(n, `path:${join(work, "flake")}`)));
      const outdir = join(work, `out-${n}`);
      const started = process.hrtime.bigint();
      const run = spawnSync(process.execPath, ["--import", REPORT_RSS, join(ROOT, "dist", "main.js")], {
        cwd: work,
        env: { ...process.env, INFRA_CONFIG: config, CDKTF_OUTDIR: outdir, NIX_CONFIG: "experimental-features = nix-command flakes\nsubstituters =" },
        encoding: "utf8",
        maxBuffer: 64 * 1024 * 1024,
      });
      const wall = Number(process.hrtime.bigint() - started) / 1e9;
      if (run.status !== 0) throw new NixError(`synth of ${n} host(s) failed:\n${run.stderr.slice(-2000)}`);
      const rss = Number(/bench-rss-kib (\d+)/.exec(run.stderr)?.[1] ?? NaN) / 1024;
      const nixEval = /nix eval: done in ([\d.]+) s/.exec(run.stderr)?.[1] ?? "?";
      const size = readFileSync(join(outdir, "stacks", INFRA_STACK, "cdk.tf.json")).length / 1024;
      console.log(`${String(n).padStart(5)}  ${wall.toFixed(2).padStart(8)}  ${nixEval.padStart(12)}  ${rss.toFixed(0).padStart(14)}  ${size.toFixed(0).padStart(17)}`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
