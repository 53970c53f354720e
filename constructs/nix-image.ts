import { Resource } from "@cdktf/provider-null/lib/resource/index.js";
import { TerraformSelf } from "cdktf";
import { Construct } from "constructs";
import { storeHash } from "../lib/gce.js";
import type { ResolvedImage } from "../lib/nix.js";
import { literal } from "../lib/scripts.js";
import { type BuildImageEnv, type DropImageRootEnv, localExec, STEP_SCRIPTS } from "../lib/steps.js";

export interface NixImageProps {
  /** Flake reference as the user wrote it ("." is the project root). */
  readonly flake: string;
  /** nixosConfigurations attribute that defines the image. */
  readonly configuration: string;
  /** Resolved at synth by `nix eval`; never built at synth. */
  readonly planned: ResolvedImage;
  /** Directory of GC roots, relative to the project root. */
  readonly gcRootDir: string;
}

/**
 * The build step: at apply time, builds the planned googleComputeImage, checks
 * that the result is the planned store path, and keeps a GC root while the
 * image is planned. Triggered by the planned store path only.
 */
export class NixImage extends Construct {
  /** Planned output of system.build.googleComputeImage. */
  public readonly storePath: string;
  /** The 32-character store hash; the object name and the image's label carry it. */
  public readonly storeHash: string;
  /** File name of the tarball (nixpkgs' name, the same for every configuration). */
  public readonly fileName: string;
  /** GC root symlink, relative to the project root. */
  public readonly gcRoot: string;
  public readonly nixosLabel: string;
  /** What the build step reads; the upload step reads it too, to rebuild a missing file. */
  public readonly environment: BuildImageEnv;
  /** The null_resource, for dependsOn. */
  public readonly build: Resource;

  constructor(scope: Construct, id: string, props: NixImageProps) {
    super(scope, id);
    const { planned } = props;
    if (planned.filePath === "" || planned.filePath.startsWith("/") || planned.filePath.split("/").includes("..")) {
      throw new Error(`NixImage: planned.filePath "${planned.filePath}" must be a path inside the image's store path`);
    }
    this.storePath = planned.storePath;
    this.storeHash = storeHash(planned.storePath);
    this.fileName = planned.filePath.split("/").pop()!;
    this.gcRoot = `${props.gcRootDir.replace(/\/+$/, "")}/${this.storeHash}`;
    this.nixosLabel = planned.nixosLabel;
    this.environment = {
      NIX_FLAKE: props.flake,
      NIX_ATTRIBUTE: `nixosConfigurations.${props.configuration}.config.system.build.googleComputeImage`,
      PLANNED_STORE_PATH: planned.storePath,
      IMAGE_FILE: planned.filePath,
      GC_ROOT: this.gcRoot,
    };

    // Terraform skips destroy provisioners of replaced (create_before_destroy,
    // deposed) and removed resources: the stack's GcRoots step drops the roots
    // no image plans any more. The destroy step here runs on `terraform
    // destroy` only, which leaves no GcRoots step to do it.
    this.build = new Resource(this, "Build", {
      triggers: { planned_store_path: planned.storePath, gc_root: literal(this.gcRoot) },
      lifecycle: { createBeforeDestroy: true },
      provisioners: [
        localExec(STEP_SCRIPTS.buildImage, this.environment),
        {
          ...localExec<DropImageRootEnv>(STEP_SCRIPTS.dropImageRoot, { GC_ROOT: TerraformSelf.getString("triggers.gc_root") }),
          when: "destroy",
        },
      ],
    });
  }
}
