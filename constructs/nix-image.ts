import { Resource } from "@cdktf/provider-null/lib/resource/index.js";
import { Construct } from "constructs";
import { storeHash } from "../lib/gce.js";
import type { ResolvedImage } from "../lib/nix.js";
import { PROJECT_ROOT_FROM_STACK } from "../lib/paths.js";
import { BASH, literal, SCRIPTS } from "../lib/scripts.js";

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
 * that the result is the planned store path, and keeps a GC root until the
 * step is replaced. Triggered by the planned store path only.
 */
export class NixImage extends Construct {
  /** Planned output of system.build.googleComputeImage. */
  public readonly storePath: string;
  /** The 32-character store hash; every name downstream derives from it. */
  public readonly storeHash: string;
  /** Absolute path of the image tarball inside the store path. */
  public readonly imageFile: string;
  /** File name of the tarball (nixpkgs' name, the same for every configuration). */
  public readonly fileName: string;
  /** GC root symlink, relative to the project root. */
  public readonly gcRoot: string;
  public readonly nixosLabel: string;
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
    this.imageFile = `${planned.storePath}/${planned.filePath}`;
    this.fileName = planned.filePath.split("/").pop()!;
    this.gcRoot = `${props.gcRootDir.replace(/\/+$/, "")}/${this.storeHash}`;
    this.nixosLabel = planned.nixosLabel;
    const attribute = `nixosConfigurations.${props.configuration}.config.system.build.googleComputeImage`;

    this.build = new Resource(this, "Build", {
      triggers: { planned_store_path: planned.storePath, gc_root: literal(this.gcRoot) },
      lifecycle: { createBeforeDestroy: true },
      provisioners: [
        {
          type: "local-exec",
          command: SCRIPTS.buildImage,
          interpreter: BASH,
          workingDir: PROJECT_ROOT_FROM_STACK,
          environment: {
            NIX_FLAKE: literal(props.flake),
            NIX_ATTRIBUTE: attribute,
            PLANNED_STORE_PATH: planned.storePath,
            IMAGE_FILE: planned.filePath,
            GC_ROOT: literal(this.gcRoot),
          },
        },
        {
          // A replaced build step drops its GC root; the new one already holds its own.
          type: "local-exec",
          when: "destroy",
          command: SCRIPTS.dropGcRoot,
          interpreter: BASH,
          workingDir: PROJECT_ROOT_FROM_STACK,
          environment: { GC_ROOT: "${self.triggers.gc_root}" },
        },
      ],
    });
  }
}
