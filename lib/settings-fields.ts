/**
 * The value types the settings file's keys share: names Google accepts,
 * labels, networks, paths, SSH keys and nixGc. lib/settings.ts assembles the
 * document from them.
 */
import { z } from "zod";
import { BUCKET_NAME, BUCKET_NAME_RULE, GCE_NAME, GCE_NAME_RULE, LABEL_KEY, LABEL_VALUE } from "./gce.js";
import { FLAKE_ATTR } from "./resolved.js";
import { isIpv4Cidr } from "./settings-rules.js";
import { sshPublicKeyProblem } from "./ssh-public-key.js";

export const gceName = z.string().regex(GCE_NAME, { message: `must be ${GCE_NAME_RULE}` });
export const labels = z
  .record(
    z.string().regex(LABEL_KEY, { message: "label keys are lowercase letters, digits, '_' and '-', starting with a letter" }),
    z.string().regex(LABEL_VALUE, { message: "label values are at most 63 lowercase letters, digits, '_' and '-'" }),
  )
  // Google reserves label keys starting with "goog" (its own goog-terraform-provisioned, goog-dm, ...) and refuses them.
  .superRefine((map, ctx) => {
    for (const key of Object.keys(map).filter((k) => k.startsWith("goog"))) {
      ctx.addIssue({ code: "custom", path: [key], message: 'Google reserves label keys starting with "goog"; choose another key' });
    }
  })
  .describe("Labels added to every labelled resource. Keys starting with goog are Google's and refused.");
export const cidr = z.string().refine(isIpv4Cidr, { message: "must be an IPv4 CIDR range such as 203.0.113.0/24 (octets 0-255, prefix 0-32)" });
/** Google refuses bucket names that start with "goog" or contain "google" or a close misspelling. */
export const bucketName = z
  .string()
  .regex(BUCKET_NAME, { message: `must be ${BUCKET_NAME_RULE}` })
  .refine((name) => !name.startsWith("goog") && !/g[o0]{2}gle/.test(name), {
    message: "Cloud Storage refuses bucket names that start with \"goog\" or contain \"google\"; choose another name",
  });
const GCE_NAME_PART = GCE_NAME.source.slice(1, -1);
export const network = z.string().regex(new RegExp(`^(projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/global/networks/)?${GCE_NAME_PART}$`), {
  message: "must be a VPC network name such as default, or projects/<project>/global/networks/<name>",
});
export const subnetwork = z
  .string()
  .regex(new RegExp(`^(projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/regions/[a-z]+-[a-z]+[0-9]+/subnetworks/)?${GCE_NAME_PART}$`), {
    message: "must be a subnetwork name, or projects/<project>/regions/<region>/subnetworks/<name>",
  });

/** A directory the scripts write to: not empty, not "/", no "..", nothing a shell or Terraform would read. */
export const stateDirectory = z
  .string()
  .regex(/^\/?[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*\/?$/, {
    message: "must be a directory path of letters, digits, '.', '_', '-' and '/' (not empty, no spaces or quotes), such as .infra",
  })
  .refine((path) => !path.split("/").includes(".."), { message: "must not contain '..'" });
/** Attribute names inside a flake; kept to what needs no quoting anywhere. */
export const flakeAttr = z
  .string()
  .regex(FLAKE_ATTR, { message: "must be a Nix attribute name (letters, digits, '_', '-', '\\'')" });
/** Checked by shape (lib/ssh-public-key.ts): sshd silently ignores a damaged key line. */
export const sshPublicKey = z.string().superRefine((line, ctx) => {
  const problem = sshPublicKeyProblem(line);
  // input: undefined keeps the value out of the message: it may be a private key.
  if (problem) ctx.addIssue({ code: "custom", message: `${problem} (paste the whole line of a .pub file)`, input: undefined });
});

/**
 * nixGc.schedule: a few systemd.time(7) calendar events. Any other goes in a
 * host module as nix.gc.dates, which the hosts' own systemd-analyze checks
 * when the system is built (nixos/maintenance.nix).
 */
const SCHEDULE = /^(daily|weekly|monthly|((Mon|Tue|Wed|Thu|Fri|Sat|Sun) )?(\*-\*-\* )?([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?)$/;
const schedule = z
  .string()
  .regex(SCHEDULE, {
    message: 'must be daily, weekly, monthly or "[Mon..Sun] [*-*-*] HH:MM[:SS]" such as "Sun 03:15"; for another systemd calendar event, set nix.gc.dates in the host\'s NixOS module',
  })
  .describe('When generations are pruned and the store collected: daily, weekly, monthly or "[Mon..Sun] [*-*-*] HH:MM[:SS]".');
const keepGenerations = z
  .number()
  .int()
  .min(1)
  .max(1000)
  .describe("System generations kept (the current one included); older ones are deleted before the store GC.");
const NIX_GC_DEFAULT = { keepGenerations: 5, schedule: "weekly" } as const;
export const nixGc = z
  .strictObject({
    keepGenerations: keepGenerations.default(NIX_GC_DEFAULT.keepGenerations),
    schedule: schedule.default(NIX_GC_DEFAULT.schedule),
  })
  .default(NIX_GC_DEFAULT)
  .describe("Bounded system generations and store garbage collection on every host.");
export const hostNixGc = z
  .strictObject({ keepGenerations: keepGenerations.optional(), schedule: schedule.optional() })
  .optional()
  .describe("Overrides of the top-level nixGc for this host. Hosts sharing a nixosConfiguration must agree.");
