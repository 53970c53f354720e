/**
 * The secrets settings: `hosts.<id>.secrets` (which Secret Manager secrets a
 * host reads, and how their files look on it) and `secretLocations`. Only
 * names reach Terraform (constructs/secret.ts); values are added with
 * `gcloud secrets versions add` and fetched on the host (nixos/secrets.nix).
 */
import { z } from "zod";
import { REGION } from "./gce.js";

/** Secret Manager secret ids. They are also the file names under /run/secrets. */
export const SECRET_NAME = /^[A-Za-z0-9_-]{1,255}$/;

const secretFile = z.strictObject({
  owner: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,31}$/, { message: "must be a user name such as root or pipeline" })
    .default("root")
    .describe("User that owns /run/secrets/<name> (its login group too). The host's configuration must declare the user. Default root."),
  mode: z
    .string()
    .regex(/^0[0-7][0-7]0$/, { message: "must be an octal mode such as 0400 or 0440 that gives others nothing" })
    .default("0400")
    .describe("File mode of /run/secrets/<name>. Default 0400."),
});

/** `hosts.<id>.secrets`: secret names, each with the file the host writes it to. */
export const hostSecretsSchema = z
  .record(z.string().regex(SECRET_NAME, { message: "must be a Secret Manager secret id: 1-255 letters, digits, '-' and '_'" }), secretFile)
  .default({})
  .describe(
    "Secret Manager secrets the host reads, by name, e.g. {\"warehouse-password\": {}}. The stack creates each secret and lets exactly these hosts access it; the host fetches the latest version into /run/secrets/<name> at boot. Values never pass through Terraform: add them with gcloud secrets versions add (docs/secrets.md).",
  );

/** Top-level `secretLocations`. */
export const secretLocationsSchema = z
  .array(z.string().regex(REGION, { message: "must be a region such as europe-west1" }))
  .min(1)
  .optional()
  .describe("Regions that keep the secrets' values (user-managed replication). Default: automatic replication. Changing it replaces the secrets, and their versions with them.");
