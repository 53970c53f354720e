/**
 * Names the stack derives from ids: Google resource names and Terraform
 * output ids. Constructs and the settings checks share these functions, so a
 * collision is refused at settings time with the keys that cause it, instead
 * of a 409 from Google or a cdktf error at synth.
 */
import { createHash } from "node:crypto";
import { MAX_NAME } from "./gce.js";

/** Characters of the boot disk's digest in an instance name under recreateOnImageChange. */
export const RECREATE_SUFFIX = 6;
/** Longest host id with recreateOnImageChange: `<id>-<suffix>` must fit in a GCE name. */
export const MAX_RECREATE_HOST_ID = MAX_NAME - RECREATE_SUFFIX - 1;

/** Service account ids are 6-30 characters; long host names keep a short hash of the whole id to stay unique. */
export function serviceAccountId(host: string): string {
  const id = `host-${host}`;
  if (id.length <= 30) return id;
  const hash = createHash("sha256").update(host).digest("hex").slice(0, 6);
  return `host-${host.slice(0, 18).replace(/-+$/, "")}-${hash}`;
}

/** The host's SSH firewall rule. Ids longer than 55 characters are cut (the name existed before this rule; changing it replaces rules). */
export function firewallName(host: string): string {
  return `${host.slice(0, 55)}-ssh`;
}

/** What the boot disk is made of: the settings that make Google create a new VM. */
export interface BootDisk {
  /** The image's name, `<family>-<digest>`: a VM that boots another image is a new VM, even of the same digest. */
  readonly image: string;
  readonly sizeGb: number;
  readonly type: string;
}

/**
 * The instance name: the host id, or, when the VM is recreated by creating
 * the new one first, `<id>-<suffix>` with a suffix from everything that
 * replaces the VM (image, disk size and type), so the two never share a name.
 */
export function instanceName(host: string, recreateOnImageChange: boolean, disk: BootDisk): string {
  if (!recreateOnImageChange) return host;
  const suffix = createHash("sha256").update(`${disk.image}\n${disk.sizeGb}\n${disk.type}`).digest("hex");
  return `${host}-${suffix.slice(0, RECREATE_SUFFIX)}`;
}

/** Outputs of a host, read by `npm run rollback`. */
export const HOST_OUTPUT_KEYS = ["toplevel", "address", "instance-id", "instance-name", "service-account"] as const;
export type HostOutputKey = (typeof HOST_OUTPUT_KEYS)[number];
export const hostOutputId = (host: string, key: HostOutputKey): string => `host-${host}-${key}`;
export const imageOutputId = (image: string): string => `image-${image}-name`;
export const ociOutputIds = (oci: string) => ({ reference: `oci-${oci}-reference`, digestReference: `oci-${oci}-digest-reference` });
