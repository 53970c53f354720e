/**
 * The real tools the integration tests drive. Outside CI a missing tool skips
 * its tests, and the suite name says why; with CI=true (set by .ci/run) a
 * missing tool fails the run, so a green CI always means the tests ran.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const IN_CI = ["true", "1"].includes(process.env.CI ?? "");

/** Tools found at a fixed path rather than on PATH (tzdata: the time zones systemd looks up). */
const FIXED_PATHS: Record<string, string> = { sshd: "/usr/sbin/sshd", tzdata: "/usr/share/zoneinfo/Europe/Berlin" };

/** How a newcomer gets each tool. */
const HOW: Record<string, string> = {
  nix: "apt-get install nix-bin",
  skopeo: "apt-get install skopeo",
  umoci: "apt-get install umoci",
  "docker-registry": "apt-get install docker-registry",
  sshd: "apt-get install openssh-server",
  ssh: "apt-get install openssh-client",
  "ssh-keygen": "apt-get install openssh-client",
  "systemd-analyze": "apt-get install systemd",
  tzdata: "apt-get install tzdata",
  unshare: "apt-get install util-linux (and user namespaces allowed)",
  curl: "apt-get install curl",
  jq: "apt-get install jq",
  shellcheck: "apt-get install shellcheck",
  terraform: "install Terraform >= 1.5 from HashiCorp (not in Debian)",
};

/** Every tool the suite drives. */
export const TOOLS: readonly string[] = Object.keys(HOW);

/** Where `tool` is, or undefined. */
export function findTool(tool: string): string | undefined {
  if (FIXED_PATHS[tool]) return existsSync(FIXED_PATHS[tool]) ? FIXED_PATHS[tool] : undefined;
  // unshare counts only where it may create a user and mount namespace.
  if (tool === "unshare" && spawnSync("unshare", ["-rm", "true"]).status !== 0) return undefined;
  try {
    return execFileSync("sh", ["-c", 'command -v "$1"', "sh", tool], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const cache = new Map<string, boolean>();
function missingTools(tools: readonly string[]): string[] {
  return tools.filter((t) => {
    if (!cache.has(t)) cache.set(t, findTool(t) !== undefined);
    return !cache.get(t);
  });
}

function why(missing: string[]): string {
  return `${missing.join(", ")} not found (${missing.map((t) => HOW[t] ?? t).join("; ")}; .ci/run installs the Debian ones)`;
}

type Body = () => void;

/** `describe` when every tool is there; skipped with the reason in its name; a failing test in CI. */
export function describeWithTools(tools: readonly string[], name: string, body: Body): void {
  const missing = missingTools(tools);
  if (missing.length === 0) describe(name, body);
  else if (IN_CI) {
    describe(name, () => {
      test(`needs ${missing.join(", ")}`, () => {
        throw new Error(`CI=true and ${why(missing)}: in CI a missing tool fails the run instead of skipping`);
      });
    });
  } else describe.skip(`${name} [SKIPPED: ${why(missing)}]`, body);
}

export function describeWithTool(tool: string, name: string, body: Body): void {
  describeWithTools([tool], name, body);
}

/** One test that needs tools (e.g. an HCL snapshot through `terraform fmt`). */
export function testWithTools(tools: readonly string[], name: string, fn: () => unknown): void {
  const missing = missingTools(tools);
  if (missing.length === 0) test(name, fn as jest.ProvidesCallback);
  else if (IN_CI) {
    test(name, () => {
      throw new Error(`CI=true and ${why(missing)}: in CI a missing tool fails the run instead of skipping`);
    });
  } else test.skip(`${name} [SKIPPED: ${why(missing)}]`, () => undefined);
}
