/**
 * Rules that let the flake give each NixOS configuration one answer. What a
 * configuration gets from the settings (the deploy keys of the hosts that run
 * or first boot it, EFI boot, nixGc, secrets) is computed in one place, the flake's
 * nixos/configurations.nix; these rules refuse settings for which it would
 * have to pick between two answers.
 */

/** The parts of the settings these rules read (a subset of Settings, so tests can pass less). */
export interface ConfigurationSettings {
  readonly nixGc: { readonly keepGenerations: number; readonly schedule: string };
  readonly images: Record<string, { readonly nixosConfiguration: string; readonly guestOsFeatures: readonly string[] }>;
  readonly hosts: Record<string, { readonly nixosConfiguration: string; readonly image: string; readonly nixGc?: object; readonly secrets?: object }>;
}

const uefi = (features: readonly string[]) => features.includes("UEFI_COMPATIBLE");

/** One problem per setting that would give a configuration two answers. */
export function configurationProblems(s: ConfigurationSettings): Array<{ path: string[]; message: string }> {
  const problems: Array<{ path: string[]; message: string }> = [];
  // A system installs its boot loader the way its image does: the images that
  // are a configuration, and those its hosts boot, must agree on EFI.
  const imagesOf = new Map<string, Set<string>>();
  const addImage = (name: string, id: string) => imagesOf.set(name, (imagesOf.get(name) ?? new Set()).add(id));
  for (const [id, image] of Object.entries(s.images)) addImage(image.nixosConfiguration, id);
  for (const host of Object.values(s.hosts)) if (Object.hasOwn(s.images, host.image)) addImage(host.nixosConfiguration, host.image);
  for (const name of [...imagesOf.keys()].sort()) {
    const ids = [...imagesOf.get(name)!].sort();
    const withUefi = ids.filter((id) => uefi(s.images[id].guestOsFeatures));
    if (withUefi.length === 0) continue;
    for (const id of ids.filter((i) => !withUefi.includes(i))) {
      problems.push({
        path: ["images", id, "guestOsFeatures"],
        message: `configuration "${name}" boots with EFI from images ${withUefi.join(", ")} but without it from "${id}"; add "UEFI_COMPATIBLE" here or give the hosts their own configurations`,
      });
    }
  }
  // Hosts running one configuration share its nixGc, and its secrets: a host
  // fetches only what it was granted.
  const sorted = (o: object | undefined) => JSON.stringify(Object.entries(o ?? {}).sort(([x], [y]) => (x < y ? -1 : 1)));
  const shared = {
    nixGc: (id: string) => sorted({ ...s.nixGc, ...s.hosts[id].nixGc }),
    secrets: (id: string) => sorted(s.hosts[id].secrets),
  };
  const first = new Map<string, string>();
  for (const [id, host] of Object.entries(s.hosts)) {
    const other = first.get(host.nixosConfiguration);
    if (other === undefined) {
      first.set(host.nixosConfiguration, id);
      continue;
    }
    for (const [key, of] of Object.entries(shared)) {
      if (of(id) === of(other)) continue;
      problems.push({
        path: ["hosts", id, key],
        message: `differs from host "${other}", which runs the same configuration "${host.nixosConfiguration}"; make them equal or give the hosts their own configurations`,
      });
    }
  }
  return problems;
}
