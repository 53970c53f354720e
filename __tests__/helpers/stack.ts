/** Synthesizing the stack in-process, and reading what it produced. */
import { execFileSync } from "node:child_process";
import { App, Testing, type TerraformStack } from "cdktf";
import { InfraStack } from "../../constructs/infra-stack.js";
import type { Resolved } from "../../lib/nix.js";
import type { Settings } from "../../lib/settings.js";

export function synthStack(settings: Settings, resolved: Resolved): { stack: InfraStack; json: string } {
  const app: App = Testing.app();
  const stack = new InfraStack(app, "infra", { settings, resolved });
  return { stack, json: Testing.synth(stack) };
}

/**
 * HCL as reviewers read it: Testing.synthHcl through `terraform fmt -`.
 * An empty CLI config keeps terraform from warning about a missing ~/.terraformrc.
 */
export function hclFor(stack: TerraformStack): string {
  return execFileSync("terraform", ["fmt", "-"], {
    input: Testing.synthHcl(stack),
    encoding: "utf8",
    env: { ...process.env, TF_CLI_CONFIG_FILE: "/dev/null" },
  });
}

type Block = Record<string, any>;
/** resource[type] of a synthesized stack, keyed by logical id. */
export function resources(json: string, type: string): Record<string, Block> {
  return JSON.parse(json).resource?.[type] ?? {};
}
/** The one resource of `type` whose logical id starts with `prefix`. */
export function resource(json: string, type: string, prefix: string): Block {
  const hits = Object.entries(resources(json, type)).filter(([id]) => id.startsWith(prefix));
  if (hits.length !== 1) throw new Error(`expected one ${type} starting with ${prefix}, found ${hits.map(([id]) => id).join(", ") || "none"}`);
  return hits[0][1];
}

/** Static resolved paths for snapshot tests (real store-path shape, no Nix needed). */
export function staticResolved(settings: Settings): Resolved {
  const hash = (seed: string) => {
    const alphabet = "0123456789abcdfghijklmnpqrsvwxyz";
    let out = "";
    let n = [...seed].reduce((a, c) => (Math.imul(a, 31) + c.charCodeAt(0)) >>> 0, 7);
    for (let i = 0; i < 32; i++) {
      n = (Math.imul(n, 1103515245) + 12345) >>> 0;
      out += alphabet[(n >>> 16) % 32];
    }
    return out;
  };
  return {
    flake: settings.flake,
    system: settings.system,
    images: Object.fromEntries(
      Object.entries(settings.images).map(([id, i]) => [
        id,
        {
          nixosConfiguration: i.nixosConfiguration,
          storePath: `/nix/store/${hash(`image-${i.nixosConfiguration}`)}-google-compute-image`,
          filePath: "nixos-image-google-compute-25.11.20260107.d351d06-x86_64-linux.raw.tar.gz",
          nixosLabel: "25.11.20260107.d351d06",
        },
      ]),
    ),
    hosts: Object.fromEntries(
      Object.entries(settings.hosts).map(([id, h]) => [
        id,
        { nixosConfiguration: h.nixosConfiguration, toplevel: `/nix/store/${hash(`host-${id}`)}-nixos-system-${id}-25.11` },
      ]),
    ),
    ociImages: Object.fromEntries(
      Object.entries(settings.ociImages).map(([id, o]) => [id, { package: o.package, storePath: `/nix/store/${hash(`oci-${id}`)}-${id}.tar.gz` }]),
    ),
  };
}
