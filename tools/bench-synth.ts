/**
 * npm run bench-synth [-- 1 100 1000]
 * Synthesizes a fleet of N hosts against the test fixture flake (real Nix,
 * evaluation only) and reports wall time and peak memory of the synth
 * process. A benchmark, not a test: the figures depend on the machine.
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { runCli, usageRequested } from "../lib/cli.js";
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

await runCli(() => {
  if (usageRequested(process.argv.slice(2), "usage: npm run bench-synth [-- 1 100 1000] (host counts; default 1 100 1000)")) return;
  const sizes = process.argv.slice(2).map(Number);
  const counts = sizes.length ? sizes : [1, 100, 1000];
  if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 100_000)) throw new NixError(`host counts must be whole numbers from 1 to 100000 (got ${process.argv.slice(2).join(" ")})`);
  process.stderr.write("bench-synth: building dist/main.js…\n");
  const build = spawnSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "inherit" });
  if (build.status !== 0) throw new NixError("npm run build failed");
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
