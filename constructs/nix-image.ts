import { Resource } from "@cdktf/provider-null/lib/resource/index.js";
import { TerraformSelf } from "cdktf";
import { Construct } from "constructs";
import { storeHash } from "../lib/gce.js";
import type { ResolvedImage } from "../lib/nix.js";
import { literal, localExec } from "../lib/steps.js";

/** The build step's script; gce-image.sh sources it to rebuild a missing file. */
export const BUILD_IMAGE_SCRIPT = "constructs/nix-image.sh";
/** The destroy step's script. */
export const DROP_IMAGE_ROOT_SCRIPT = "constructs/nix-image-destroy.sh";

/** NixImage build step. */
export interface BuildImageEnv {
  /** Flake reference as the user wrote it. */
  readonly NIX_FLAKE: string;
  /** `nixosConfigurations.<name>.config.system.build.googleComputeImage` */
  readonly NIX_ATTRIBUTE: string;
  readonly PLANNED_STORE_PATH: string;
  /** The image file, relative to the store path. */
  readonly IMAGE_FILE: string;
  /** GC root symlink, relative to the project root. */
  readonly GC_ROOT: string;
}

/** NixImage destroy step, run by `terraform destroy` only. */
export interface DropImageRootEnv {
  /** The build's GC root, read from its own triggers (`self`): a destroy step may refer to nothing else. */
  readonly GC_ROOT: string;
}

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
        localExec(BUILD_IMAGE_SCRIPT, this.environment),
        {
          ...localExec<DropImageRootEnv>(DROP_IMAGE_ROOT_SCRIPT, { GC_ROOT: TerraformSelf.getString("triggers.gc_root") }),
          when: "destroy",
        },
      ],
    });
  }
}
