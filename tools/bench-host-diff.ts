/**
 * npm run bench-host-diff [-- 1 100]
 * Runs `npm run host-diff` on fleets of N hosts, each with a configuration of
 * its own, against the host-diff fixture flake (head: PostgreSQL bumped in
 * every configuration), and reports wall time and the nix processes it
 * started (counted by a `nix` first on PATH that logs, then execs the real
 * one). A benchmark, not a test: the figures depend on the machine.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseCommand, runCli } from "../lib/cli.js";
import { NixError } from "../lib/nix.js";

const ROOT = resolve(import.meta.dirname, "..");

function configurations(n: number, postgresql: string) {
  const packages = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`lib${i}`, `1.${i}`]));
  const configuration = (i: number) => ({ packages: { ...packages, postgresql, openssh: "9.8p1" }, units: { app: `host ${i}` } });
  return { "gce-base": configuration(-1), ...Object.fromEntries(Array.from({ length: n }, (_, i) => [`host-${i}`, configuration(i)])) };
}

await runCli(() => {
  const args = parseCommand({
    usage: "npm run bench-host-diff [-- <hosts> ...]",
    does: "Times npm run host-diff on fleets of that many hosts (default 1 100) against the host-diff example flake (examples/host-diff).",
    positionals: { min: 0, max: Infinity, name: "<hosts>", help: "host counts, whole numbers from 1 to 10000" },
  });
  if (!args) return;
  const { positionals } = args;
  const counts = positionals.length ? positionals.map(Number) : [1, 100];
  if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 10_000)) throw new NixError(`host counts must be whole numbers from 1 to 10000 (got ${positionals.join(" ")})`);
  const nix = spawnSync("sh", ["-c", "command -v nix"], { encoding: "utf8" }).stdout.trim();
  if (!nix) throw new NixError("nix is not on PATH");
  const work = mkdtempSync(join(tmpdir(), "bench-host-diff-"));
  try {
    const log = join(work, "nix-calls.log");
    // One line per call: its subcommand.
    const wrapper = `for a; do case "$a" in eval|show-derivation|derivation|build) echo "$a" >> '${log}'; break;; esac; done\nexec '${nix}' "$@"`;
    writeFileSync(join(work, "nix"), `#!/bin/sh\n${wrapper}\n`);
    chmodSync(join(work, "nix"), 0o755);
    console.log("hosts  wall (s)  nix processes  comment (KiB)");
    for (const n of counts) {
      process.stderr.write(`bench-host-diff: ${n} host(s)…\n`);
      const salt = `${Date.now()}-${n}`;
      for (const [side, postgresql] of [["base", "16.4"], ["head", "16.6"]] as const) {
        cpSync(join(ROOT, "examples", "host-diff"), join(work, `${side}-${n}`), { recursive: true });
        writeFileSync(join(work, `${side}-${n}`, "inputs.json"), JSON.stringify({ salt, configurations: configurations(n, postgresql) }));
      }
      const hosts = Object.fromEntries(Array.from({ length: n }, (_, i) => [`host-${i}`, { nixosConfiguration: `host-${i}`, image: "base", machineType: "e2-small" }]));
      const settings = {
        project: "bench-project",
        region: "europe-west1",
        zone: "europe-west1-b",
        flake: `path:${join(work, `head-${n}`)}`,
        imageBucket: "bench-project-images",
        images: { base: { nixosConfiguration: "gce-base", family: "nixos-base" } },
        hosts,
      };
      writeFileSync(join(work, `infra-${n}.json`), JSON.stringify(settings));
      writeFileSync(log, "");
      const started = process.hrtime.bigint();
      const run = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "bin", "host-diff.ts"), "--base", `path:${join(work, `base-${n}`)}`], {
        cwd: ROOT,
        env: { ...process.env, PATH: `${work}:${process.env.PATH}`, INFRA_CONFIG: join(work, `infra-${n}.json`), NIX_CONFIG: "experimental-features = nix-command flakes\nsubstituters =" },
        encoding: "utf8",
        maxBuffer: 64 * 1024 * 1024,
      });
      const wall = Number(process.hrtime.bigint() - started) / 1e9;
      if (run.status !== 0) throw new NixError(`host-diff of ${n} host(s) failed:\n${run.stderr.slice(-2000)}`);
      const calls = readFileSync(log, "utf8").split("\n").filter(Boolean);
      const kinds = [...new Set(calls)].map((kind) => `${calls.filter((c) => c === kind).length} ${kind}`).join(", ");
      console.log(`${String(n).padStart(5)}  ${wall.toFixed(2).padStart(8)}  ${String(calls.length).padStart(13)}  ${(run.stdout.length / 1024).toFixed(1).padStart(13)}  (${kinds})`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
