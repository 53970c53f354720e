import { SecretManagerSecret } from "@cdktf/provider-google/lib/secret-manager-secret/index.js";
import { SecretManagerSecretIamMember } from "@cdktf/provider-google/lib/secret-manager-secret-iam-member/index.js";
import { Construct } from "constructs";
import { SECRET_NAME } from "../lib/secrets.js";

export interface SecretProps {
  readonly project: string;
  /** Secret Manager secret id: the file name on hosts too. */
  readonly secretId: string;
  /** Regions of user-managed replication. @default undefined (automatic replication) */
  readonly locations?: readonly string[];
}

/**
 * A Secret Manager secret without a value: versions are added with
 * `gcloud secrets versions add`, so no value passes through Terraform, its
 * state or its plans. Hosts read it through `grantAccess`, on this secret only.
 */
export class Secret extends Construct {
  public readonly secret: SecretManagerSecret;

  constructor(scope: Construct, id: string, props: SecretProps) {
    super(scope, id);
    if (!SECRET_NAME.test(props.secretId)) {
      throw new Error(`Secret: secretId "${props.secretId}" is not a Secret Manager secret id (1-255 letters, digits, '-' and '_')`);
    }
    if (props.locations?.length === 0) throw new Error(`Secret ${props.secretId}: locations is empty; leave it out for automatic replication`);
    this.secret = new SecretManagerSecret(this, "Secret", {
      project: props.project,
      secretId: props.secretId,
      replication: props.locations ? { userManaged: { replicas: props.locations.map((location) => ({ location })) } } : { auto: {} },
    });
  }

  /** Lets `member` (a host's service account) read this secret's versions, and nothing else. */
  public grantAccess(id: string, member: string): SecretManagerSecretIamMember {
    return new SecretManagerSecretIamMember(this, `Access-${id}`, {
      project: this.secret.project,
      secretId: this.secret.secretId,
      role: "roles/secretmanager.secretAccessor",
      member,
      // A replaced secret (its replication is ForceNew) comes back without this
      // binding, while the grant's own arguments are unchanged: re-grant then.
      // Its id is unknown only when the secret is replaced, so a label update does not.
      lifecycle: { replaceTriggeredBy: [`${this.secret.terraformResourceType}.${this.secret.friendlyUniqueId}.id`] },
    });
  }
}
