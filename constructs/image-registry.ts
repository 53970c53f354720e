import { ArtifactRegistryRepository } from "@cdktf/provider-google/lib/artifact-registry-repository/index.js";
import { ArtifactRegistryRepositoryIamMember } from "@cdktf/provider-google/lib/artifact-registry-repository-iam-member/index.js";
import { Construct } from "constructs";

export interface ImageRegistryProps {
  readonly project: string;
  /** Region of the repository. */
  readonly location: string;
  /** Repository id (registry.repository, checked by lib/settings.ts). */
  readonly repositoryId: string;
  /** Cleanup policy: keep the newest N versions of each image; older ones are deleted (registry.keepVersions, checked by lib/settings.ts). @default 10 */
  readonly keepVersions?: number;
  /** @default {} */
  readonly labels?: Record<string, string>;
}

/** A Docker-format Artifact Registry repository with immutable tags and a keep-last-N cleanup policy. */
export class ImageRegistry extends Construct {
  public readonly repository: ArtifactRegistryRepository;
  /** `<location>-docker.pkg.dev/<project>/<repository>`: the prefix of every image reference. */
  public readonly path: string;

  constructor(scope: Construct, id: string, props: ImageRegistryProps) {
    super(scope, id);
    const keep = props.keepVersions ?? 10;
    this.repository = new ArtifactRegistryRepository(this, "Repository", {
      project: props.project,
      location: props.location,
      repositoryId: props.repositoryId,
      format: "DOCKER",
      description: "OCI images built by Nix; tags are <version>-<store hash>",
      dockerConfig: { immutableTags: true },
      cleanupPolicyDryRun: false,
      // KEEP wins over DELETE: everything is eligible for deletion except the newest N versions.
      cleanupPolicies: [
        { id: "delete-all-but-kept", action: "DELETE", condition: { tagState: "ANY" } },
        { id: `keep-newest-${keep}`, action: "KEEP", mostRecentVersions: { keepCount: keep } },
      ],
      labels: props.labels,
    });
    this.path = `${props.location}-docker.pkg.dev/${props.project}/${props.repositoryId}`;
  }

  /** Lets `member` (e.g. a host's service account) pull images. */
  public grantRead(id: string, member: string): ArtifactRegistryRepositoryIamMember {
    return new ArtifactRegistryRepositoryIamMember(this, `Read-${id}`, {
      project: this.repository.project,
      location: this.repository.location,
      repository: this.repository.name,
      role: "roles/artifactregistry.reader",
      member,
    });
  }
}
