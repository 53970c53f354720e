/**
 * Real Nix for tests: fixture flakes copied to temp dirs outside any git
 * repository, and a spy that logs each nix invocation before exec'ing the
 * real binary (it changes nothing about what Nix does).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describeWithTools } from "./tools.js";

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const FIXTURES = join(REPO_ROOT, "__tests__", "fixtures");
/** The rehearsal's doubles for gcloud, ssh and deploy-rs (tools/doubles). */
export const DOUBLES = join(REPO_ROOT, "tools", "doubles");

/** Where `tool` is on PATH, or undefined. */
export function onPath(tool: string): string | undefined {
  try {
    return execFileSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}
export const NIX = onPath("nix");
/** `describe` when real Nix is installed; otherwise skipped with the reason in the suite name (a failure with CI=true). */
export function describeWithNix(name: string, body: () => void): void {
  describeWithTools(["nix"], name, body);
}

/** Offline Nix for fixtures: flakes on, no binary cache to wait for. */
export const NIX_ENV = {
  NIX_CONFIG: "experimental-features = nix-command flakes\nsubstituters =",
};

export interface FixtureFlake {
  readonly dir: string;
  /** `path:<dir>`: a plain directory, so Nix sees every file. */
  readonly ref: string;
  readInputs(): any;
  writeInputs(inputs: unknown): void;
  cleanup(): void;
}

/**
 * Copies an example flake (examples/<example>: the offline example's by
 * default) to a fresh temp dir and gives it a random salt, so its store paths
 * were never built before.
 */
export function fixtureFlake(prefix = "nix-fixture-", example = "flake"): FixtureFlake {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cpSync(join(REPO_ROOT, "examples", example), dir, { recursive: true });
  const inputsFile = join(dir, "inputs.json");
  const inputs = JSON.parse(readFileSync(inputsFile, "utf8"));
  writeFileSync(inputsFile, JSON.stringify({ ...inputs, salt: randomBytes(8).toString("hex") }, null, 2));
  return {
    dir,
    ref: `path:${dir}`,
    readInputs: () => JSON.parse(readFileSync(join(dir, "inputs.json"), "utf8")),
    writeInputs: (inputs) => writeFileSync(join(dir, "inputs.json"), JSON.stringify(inputs, null, 2)),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface NixSpy {
  /** Directory to put first on PATH. */
  readonly binDir: string;
  /** Each recorded invocation's argv. */
  calls(): string[][];
  cleanup(): void;
}

/** A PATH entry named `nix` that records its argv, then execs the real nix. */
export function nixSpy(): NixSpy {
  if (!NIX) throw new Error("nixSpy needs real nix");
  const binDir = mkdtempSync(join(tmpdir(), "nix-spy-"));
  const log = join(binDir, "calls.log");
  writeFileSync(log, "");
  writeFileSync(
    join(binDir, "nix"),
    // One append per call (a file's content in one write): steps run nix in parallel, and per-argument writes interleaved.
    `#!/bin/sh\ncall=$(mktemp '${log}.XXXXXX')\nfor a in "$@"; do printf '%s\\037' "$a"; done > "$call"\nprintf '\\036' >> "$call"\ncat "$call" >> '${log}'\nrm -f "$call"\nexec '${NIX}' "$@"\n`,
  );
  chmodSync(join(binDir, "nix"), 0o755);
  return {
    binDir,
    calls: () =>
      readFileSync(log, "utf8")
        .split("\x1e")
        .filter(Boolean)
        .map((line) => line.split("\x1f").slice(0, -1)),
    cleanup: () => rmSync(binDir, { recursive: true, force: true }),
  };
}
