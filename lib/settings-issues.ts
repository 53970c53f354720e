/**
 * zod's issues in the settings' words (lib/settings.ts, and the lock file's
 * schema in lib/lock.ts): one line per problem, naming the key and the value.
 */
import type { z } from "zod";
import { keyPath } from "./settings-rules.js";
import { shown } from "./text.js";

/**
 * One line per zod issue: the key path, what is wrong in our words (zod's own
 * are for programmers), the value it got, and the fix. `unknownKey` says what
 * to do about a key the schema lacks.
 */
export function describeIssue(issue: z.core.$ZodIssue, unknownKey: (key: string, path: readonly PropertyKey[]) => string): string[] {
  const at = keyPath(issue.path);
  const input = "input" in issue ? issue.input : undefined;
  const got = input === undefined ? "" : ` (got ${shown(input)})`;
  switch (issue.code) {
    case "unrecognized_keys":
      return issue.keys.map((k) => `${keyPath([...issue.path, k])}: unknown key (${unknownKey(k, issue.path)})`);
    case "invalid_type":
      return [`${at}: expected ${TYPE_NAMES[issue.expected] ?? issue.expected}${input === undefined ? " (missing)" : `, got ${shown(input)}`}`];
    case "invalid_value":
      return [`${at}: must be ${issue.values.length === 1 ? "" : "one of "}${issue.values.map((v) => JSON.stringify(v)).join(", ")}${got}`];
    case "invalid_union": {
      // A discriminated union (backend): zod reports the whole object; the value is its discriminator's.
      const { discriminator, options } = issue as { discriminator?: string; options?: unknown[] };
      if (discriminator === undefined || !options) break;
      const value = input && typeof input === "object" ? (input as Record<string, unknown>)[discriminator] : undefined;
      return [`${at}: must be one of ${options.map((v) => JSON.stringify(v)).join(", ")}${value === undefined ? " (missing)" : ` (got ${shown(value)})`}`];
    }
    case "too_small":
    case "too_big":
      // A list's length, not the list.
      return [`${at}: ${sizeRule(issue)}${Array.isArray(input) ? ` (got ${input.length})` : got}`];
    case "invalid_key":
      return [`${at}: ${shown(String(issue.path[issue.path.length - 1]))} is not a valid id: ${issue.issues[0]?.message ?? issue.message}`];
  }
  return [`${at}: ${issue.message}${typeof input === "string" ? got : ""}`];
}

/** A bound in words: "must be at least 10", "must not be empty", "must have at most 64 items". */
function sizeRule(issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig): string {
  const small = issue.code === "too_small";
  const limit = Number(small ? issue.minimum : issue.maximum);
  const inclusive = issue.inclusive !== false;
  if (issue.origin === "number" || issue.origin === "int" || issue.origin === "bigint") {
    return `must be ${small ? (inclusive ? "at least" : "more than") : inclusive ? "at most" : "less than"} ${limit}`;
  }
  if (small && limit === 1 && inclusive) return "must not be empty";
  const unit = issue.origin === "string" ? "characters" : "items";
  return `must have ${small ? "at least" : "at most"} ${limit} ${unit}`;
}

/**
 * One line per value for the schema's own rules: zod checks every rule of a
 * string, so a value can break several (flake "" is empty and not a
 * reference); the first says enough. Custom rules (across keys) each stay.
 */
export function oneProblemPerValue(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => {
    if (issue.code === "unrecognized_keys" || issue.code === "custom") return true;
    const key = JSON.stringify(issue.path.map(String));
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** zod's type names that a settings author would not recognise as JSON. */
const TYPE_NAMES: Record<string, string> = { record: "an object ({...})", object: "an object ({...})", array: "a list ([...])", int: "a whole number" };
