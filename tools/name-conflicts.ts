/**
 * Creates Google would refuse with 409, which Terraform cannot see: a
 * resource created under a name that an object in the state still holds.
 * Terraform deletes an address's old object before creating its new one
 * only in a destroy-then-create replacement; a create_before_destroy
 * replacement keeps the name until the end, and between two addresses (a
 * construct id renamed: the old address deleted, the new one created) it
 * sets no order at all. The rehearsal refuses such a plan; the pull-request
 * comment warns about it.
 */

/**
 * Deletes the google provider refuses before it asks Google: an instance
 * whose state has deletion_protection on (resource_compute_instance.go,
 * 6.50.0). A removed or renamed host, or a replaced VM (disk size or type),
 * fails there, even when the same change turns the setting off: the delete
 * reads the old state. One line per such delete, with the fix.
 */
export function protectedDeletes(changes: readonly NamedChange[]): string[] {
  return changes
    .filter((c) => c.type === "google_compute_instance" && c.actions.includes("delete") && c.before?.deletion_protection === true)
    .map(
      (c) =>
        `${c.address} would be deleted (${c.actions.includes("create") ? "replaced" : "removed"}), but its deletion protection is on: ` +
        `the google provider refuses; set the host's deletionProtection to false and apply that alone first`,
    );
}

/**
 * The attribute that names each Google resource the stack creates, unique in
 * its project (an instance's in its zone).
 */
const UNIQUE_NAME: Readonly<Record<string, string>> = {
  google_compute_instance: "name",
  google_compute_image: "name",
  google_compute_firewall: "name",
  google_service_account: "account_id",
  google_storage_bucket: "name",
  google_artifact_registry_repository: "repository_id",
  google_secret_manager_secret: "secret_id",
};

/** One planned change, as the caller reads it from `terraform show -json`. */
export interface NamedChange {
  /** The resource's address in the synthesized stack (what `terraform state mv` takes). */
  readonly address: string;
  readonly type: string;
  readonly actions: readonly string[];
  /** Its configuration before and after (for a rehearsal stand-in: its `input`). */
  readonly before?: Readonly<Record<string, unknown>> | null;
  readonly after?: Readonly<Record<string, unknown>> | null;
}

/** One line per create that Google would refuse, naming the resources, the name and the fix. */
export function nameConflicts(changes: readonly NamedChange[]): string[] {
  // `scope`: where the name must be unique (an instance's zone; the project for the rest).
  const named = (c: NamedChange, value: NamedChange["before"]) => {
    const key = UNIQUE_NAME[c.type];
    const name = key ? value?.[key] : undefined;
    const scope = c.type === "google_compute_instance" ? String(value?.zone ?? "") : "";
    return typeof name === "string" ? { key, name, slot: `${c.type} ${scope} ${name}` } : undefined;
  };
  const holders = new Map<string, NamedChange[]>();
  for (const c of changes) {
    const held = named(c, c.before);
    if (held) holders.set(held.slot, [...(holders.get(held.slot) ?? []), c]);
  }
  const problems: string[] = [];
  for (const c of changes) {
    if (!c.actions.includes("create")) continue;
    const created = named(c, c.after);
    if (!created) continue;
    for (const holder of holders.get(created.slot) ?? []) {
      if (holder.address === c.address) {
        if (holder.actions.join(",") === "create,delete") {
          problems.push(`${c.address} is created before the old one is deleted, under the same ${created.key} "${created.name}": Google would refuse it (409)`);
        }
        continue;
      }
      const until = holder.actions.includes("delete") ? "until it is deleted in this same apply, in no set order" : "and keeps it";
      problems.push(
        `${c.address} is created under the ${created.key} "${created.name}", which ${holder.address} holds ${until}: ` +
          `Google would refuse it (409); move the state instead (terraform state mv ${holder.address} ${c.address})`,
      );
    }
  }
  return problems;
}
