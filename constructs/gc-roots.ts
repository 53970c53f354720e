import { Resource } from "@cdktf/provider-null/lib/resource/index.js";
import type { ITerraformDependable } from "cdktf";
import { Construct } from "constructs";
import { literal, localExec } from "../lib/steps.js";

export const PRUNE_GC_ROOTS_SCRIPT = "constructs/gc-roots.sh";

/** GcRoots prune step. */
export interface PruneGcRootsEnv {
  readonly GC_ROOT_DIR: string;
  /** Space-separated names of the roots to keep. */
  readonly GC_ROOTS_KEEP: string;
}

export interface GcRootsProps {
  /** Directory of the GC roots, relative to the project root. */
  readonly dir: string;
  /** Names (store hashes) of the roots the planned images hold. */
  readonly keep: readonly string[];
  /** Steps that must finish first: the builds and the images they feed. */
  readonly after: ITerraformDependable[];
}

/**
 * Drops the GC roots of images no longer planned, and their upload locks
 * (constructs/gce-image-lock.sh). Terraform runs no destroy
 * provisioner for a replaced create_before_destroy resource nor for one
 * removed from the configuration (hashicorp/terraform 13395, 31266), so a
 * build step cannot clean up after itself: this step runs whenever the set
 * of planned roots changes instead.
 */
export class GcRoots extends Construct {
  public readonly prune: Resource;

  constructor(scope: Construct, id: string, props: GcRootsProps) {
    super(scope, id);
    const keep = [...new Set(props.keep)].sort().join(" ");
    const dir = props.dir.replace(/\/+$/, "");
    this.prune = new Resource(this, "Prune", {
      triggers: { dir: literal(dir), keep },
      dependsOn: props.after,
      // Replaced after its successor ran, not destroyed first: an apply that
      // stops earlier (a build refused because the flake changed after the
      // plan) then leaves it in the state, and the next apply does not run it
      // again for nothing. What it depends on (builds, images) is
      // create-before-destroy already, so Terraform forces that on nothing else.
      lifecycle: { createBeforeDestroy: true },
      provisioners: [localExec<PruneGcRootsEnv>(PRUNE_GC_ROOTS_SCRIPT, { GC_ROOT_DIR: dir, GC_ROOTS_KEEP: keep })],
    });
  }
}
