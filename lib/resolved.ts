/**
 * What the flake answered, checked before anything uses it. Values from
 * `nix eval` and from the lock file meet the same rules, so nothing from
 * either reaches Terraform that could read as a template or break a name.
 */
import { z } from "zod";
import { STORE_PATH } from "./gce.js";

/** Nix attribute names as settings allow them. */
export const FLAKE_ATTR = /^[A-Za-z_][A-Za-z0-9_'-]*$/;

export const resolvedFields = {
  storePath: z.string().regex(STORE_PATH, { message: "is not a Nix store path (/nix/store/<hash>-<name>)" }),
  /** config.image.filePath: a file inside the store path. */
  filePath: z
    .string()
    .regex(/^[A-Za-z0-9+_=-][A-Za-z0-9+._=-]*(\/[A-Za-z0-9+_=-][A-Za-z0-9+._=-]*)*$/, {
      message: "must be a relative path inside the store path (letters, digits, '+', '.', '_', '=', '-')",
    })
    .max(255),
  /** system.nixos.label: nixpkgs restricts it to [a-zA-Z0-9:_.-]. */
  nixosLabel: z.string().regex(/^[A-Za-z0-9:_.-]{0,128}$/, { message: "must be a NixOS label ([A-Za-z0-9:_.-], as nixpkgs allows)" }),
  attribute: z.string().regex(FLAKE_ATTR, { message: "must be a Nix attribute name" }),
};

export const resolvedImageSchema = z.strictObject({
  nixosConfiguration: resolvedFields.attribute,
  storePath: resolvedFields.storePath,
  filePath: resolvedFields.filePath,
  nixosLabel: resolvedFields.nixosLabel,
});
export const resolvedHostSchema = z.strictObject({ nixosConfiguration: resolvedFields.attribute, toplevel: resolvedFields.storePath });
export const resolvedOciSchema = z.strictObject({ package: resolvedFields.attribute, storePath: resolvedFields.storePath });
