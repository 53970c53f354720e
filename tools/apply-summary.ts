/**
 * What a rehearsal's Terraform runs said, read against the stand-ins: the
 * apply's events counted per kind of step, and the saved plan's creates and
 * deletes that Google or the provider would refuse.
 */
import { nameConflicts as findNameConflicts, protectedDeletes } from "./name-conflicts.js";
import { type Block, type StandIn, type StepKind, STEP_KINDS, TYPE_KINDS } from "./rehearse.js";

/** One line of `terraform apply -json`/`plan -json` output, as far as the rehearsal reads it. */
export interface TerraformEvent {
  readonly type: string;
  readonly "@message"?: string;
  readonly hook?: {
    readonly resource?: { readonly addr: string };
    readonly action?: string;
    readonly elapsed_seconds?: number;
    readonly provisioner?: string;
    readonly output?: string;
  };
  readonly change?: { readonly resource?: { readonly addr: string }; readonly action?: string };
  readonly diagnostic?: { readonly severity: string; readonly summary: string; readonly detail?: string; readonly address?: string };
}

export interface StepCount {
  /** Provisioners that ran to completion when the step was created: its work. */
  ran: number;
  /** Destroy-time provisioners that ran to completion (a build's GC-root drop, a deploy step's check before it is replaced). */
  ranOnDestroy: number;
  /** Provisioners that failed. */
  failed: number;
  created: number;
  updated: number;
  destroyed: number;
}

/**
 * A stand-in no longer in the configuration (a removed host, say): what its
 * name says. Its kind is known for Google resources only; keep the stand-ins
 * of earlier rehearsals to know the rest.
 */
function removedStandIn(address: string): StandIn | undefined {
  const m = /^terraform_data\.(data_)?(google_[a-z0-9_]+|null_resource)__([\w-]+)/.exec(address);
  if (!m) return undefined;
  return { original: `${m[1] ? "data." : ""}${m[2]}.${m[3]}`, kind: (!m[1] && TYPE_KINDS[m[2]]) || "other" };
}

/** The stand-in at an address of the rehearsal (an instance key dropped), known or removed. */
export function standInAt(address: string, standIns: Record<string, StandIn>): StandIn | undefined {
  return standIns[address.replace(/\[[^\]]*\]$/, "")] ?? removedStandIn(address);
}

/** What one apply did, per kind of step, in event order. */
export interface ApplySummary {
  readonly steps: Record<StepKind, StepCount>;
  /** `<kind> <action> <original address>` for every apply_start, in order. */
  readonly order: string[];
  /**
   * Every change begun, finished or failed and every provisioner run or
   * refused, in order: `begin|done|failed <kind> <action> <original address>`,
   * `ran|ran on destroy|refused <kind> <original address>`.
   */
  readonly timeline: string[];
  readonly errors: string[];
}

function emptyCounts(): Record<StepKind, StepCount> {
  return Object.fromEntries(STEP_KINDS.map((k) => [k, { ran: 0, ranOnDestroy: 0, failed: 0, created: 0, updated: 0, destroyed: 0 }])) as Record<StepKind, StepCount>;
}

/** Reads `apply -json` events into per-kind counts and the order Terraform acted in. */
export function summarizeApply(events: TerraformEvent[], standIns: Record<string, StandIn>): ApplySummary {
  const steps = emptyCounts();
  const order: string[] = [];
  const timeline: string[] = [];
  const errors: string[] = [];
  // Provisioner events carry no action: the address's last apply_start says whether it is a destroy.
  const acting = new Map<string, string>();
  const describe = (addr: string) => {
    const standIn = standInAt(addr, standIns);
    return { kind: standIn?.kind ?? "other", original: standIn?.original ?? addr };
  };
  for (const event of events) {
    const addr = event.hook?.resource?.addr;
    if (event.type === "diagnostic" && event.diagnostic?.severity === "error") {
      errors.push([event.diagnostic.summary, event.diagnostic.detail].filter(Boolean).join(": "));
    }
    if (!addr) continue;
    const { kind, original } = describe(addr);
    const action = event.hook?.action ?? "";
    switch (event.type) {
      case "apply_start":
        acting.set(addr, action);
        order.push(`${kind} ${action} ${original}`);
        timeline.push(`begin ${kind} ${action} ${original}`);
        break;
      case "apply_complete":
        timeline.push(`done ${kind} ${action} ${original}`);
        if (action === "create") steps[kind].created += 1;
        else if (action === "update") steps[kind].updated += 1;
        else if (action === "delete") steps[kind].destroyed += 1;
        break;
      case "apply_errored":
        timeline.push(`failed ${kind} ${action} ${original}`);
        break;
      case "provision_complete":
        if (acting.get(addr) === "delete") {
          steps[kind].ranOnDestroy += 1;
          timeline.push(`ran on destroy ${kind} ${original}`);
        } else {
          steps[kind].ran += 1;
          timeline.push(`ran ${kind} ${original}`);
        }
        break;
      case "provision_errored":
        steps[kind].failed += 1;
        timeline.push(`refused ${kind} ${original}`);
        break;
    }
  }
  return { steps, order, timeline, errors };
}

/** What `terraform show -json <plan>` gives, as far as the rehearsal reads it. */
export interface SavedPlan {
  readonly resource_changes?: ReadonlyArray<{
    readonly address: string;
    readonly change: { readonly actions: readonly string[]; readonly before?: Block | null; readonly after?: Block | null };
  }>;
}

/**
 * Creates Google would refuse and deletes the provider refuses
 * (tools/name-conflicts.ts), read from a plan of stand-ins and named by the
 * original addresses.
 */
export function nameConflicts(plan: SavedPlan, standIns: Record<string, StandIn>): string[] {
  const changes = (plan.resource_changes ?? []).map(({ address, change }) => {
    const original = standInAt(address, standIns)?.original ?? address;
    return { address: original, type: original.split(".")[0], actions: change.actions, before: change.before?.input, after: change.after?.input };
  });
  return [...findNameConflicts(changes), ...protectedDeletes(changes)];
}
