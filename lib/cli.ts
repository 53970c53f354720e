/** Entry-point plumbing shared by main.ts and bin/: clear errors, never a bare stack trace. */
import { relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { NixError } from "./nix.js";
import { SettingsError } from "./settings.js";
import { editDistance, nearest } from "./text.js";

/** One flag of a command: a `--name` switch, or `--name VALUE` when `value` names its placeholder. */
export interface Flag {
  /** Placeholder of its value (`--address IP`); a switch when absent. */
  readonly value?: string;
  /** One line for --help. */
  readonly help: string;
}

/** What a command accepts; --help prints it, one line per flag. */
export interface Command {
  /** The command line a user types, e.g. `npm run pin [-- --check]`. */
  readonly usage: string;
  /** One sentence: what it does. */
  readonly does: string;
  readonly flags?: Readonly<Record<string, Flag>>;
  /** Positional arguments: how many, their placeholder and one help line. @default none */
  readonly positionals?: { readonly min: number; readonly max: number; readonly name: string; readonly help: string };
}

export interface ParsedArgs {
  readonly flags: Readonly<Record<string, string | boolean | undefined>>;
  readonly positionals: readonly string[];
}

/** main.ts, run by `npm run synth` (bin/synth.js) and by the cdktf CLI (which passes no arguments). */
export const SYNTH: Command = {
  usage: "npm run synth",
  does:
    "Writes cdktf.out/stacks/<stack>/cdk.tf.json from the settings file INFRA_CONFIG names (default infra.json); INFRA_RESOLVE=pinned reads the lock instead of running nix eval.",
};

/** --help's text: the usage, what the command does, then one line per flag. */
export function helpText(command: Command): string {
  const rows: [string, string][] = [];
  if (command.positionals) rows.push([command.positionals.name, command.positionals.help]);
  for (const [name, flag] of Object.entries(command.flags ?? {})) rows.push([`--${name}${flag.value ? ` ${flag.value}` : ""}`, flag.help]);
  rows.push(["-h, --help", "print this help and exit"]);
  const width = Math.max(...rows.map(([left]) => left.length));
  return [`usage: ${command.usage}`, command.does, ...rows.map(([left, help]) => `  ${left.padEnd(width)}  ${help}`)].join("\n");
}

/** ` (did you mean --check?)` for a flag one or two typos away from a known one, else nothing. */
function flagGuess(typed: string, names: string[]): string {
  const word = typed.replace(/^-+/, "");
  const guess = nearest(word, names);
  return guess && editDistance(word, guess) <= 2 ? ` (did you mean --${guess}?)` : "";
}

/**
 * What is wrong with the value of option `name` (parseArgs' invalid option value),
 * read from the arguments rather than from Node's wording, which varies by version.
 */
function valueProblem(name: string, options: Record<string, { type: "string" | "boolean" }>, args: readonly string[]): string {
  if (options[name.replace(/^-+/, "")]?.type === "boolean") return `${name} takes no value`;
  // parseArgs takes no value starting with '-' after a space: it could be a flag.
  const next = args[args.indexOf(name) + 1];
  if (next?.startsWith("-")) return `${name} needs a value; for one starting with '-', write ${name}=${next}`;
  return `${name} needs a value`;
}

/**
 * Parses `args` (node:util parseArgs, strict). --help or -h prints the help to
 * stdout and returns undefined: the command does nothing else (exit 0). An
 * unknown flag, a missing value or a wrong number of arguments is a NixError
 * naming it, with the usage.
 */
export function parseCommand(command: Command, args: readonly string[] = process.argv.slice(2)): ParsedArgs | undefined {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = { help: { type: "boolean", short: "h" } };
  for (const [name, flag] of Object.entries(command.flags ?? {})) options[name] = { type: flag.value ? "string" : "boolean" };
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (e) {
    const error = e as Error & { code?: string };
    const name = /'(-[^' ]+)/.exec(error.message)?.[1];
    const problem =
      error.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" ? `unknown option ${name}${flagGuess(name ?? "", Object.keys(options))}` : error.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" ? valueProblem(name ?? "", options, args) : error.message;
    throw new NixError(`${problem}; usage: ${command.usage}`);
  }
  if (parsed.values.help) {
    process.stdout.write(`${helpText(command)}\n`);
    return undefined;
  }
  const { min, max } = command.positionals ?? { min: 0, max: 0 };
  const positionals = parsed.positionals;
  if (positionals.length > max) throw new NixError(`unexpected argument ${positionals[max]}; usage: ${command.usage}`);
  if (positionals.length < min) throw new NixError(`usage: ${command.usage}`);
  const { help: _help, ...flags } = parsed.values;
  return { flags, positionals };
}

/**
 * Writes a progress line: to stderr, except under the cdktf CLI, which labels
 * every stderr line of the app `[ERROR]` and shows its stdout as plain lines.
 */
export function progressLine(line: string): void {
  (process.env.CDKTF_CONTEXT_JSON ? process.stdout : process.stderr).write(`${line}\n`);
}

/** The line synth ends with: which stacks it wrote, and where (`synth: wrote bootstrap, infra to cdktf.out/stacks/`). */
export function synthSummary(stacks: readonly string[], outdir: string): string {
  const dir = resolve(outdir);
  const inside = relative(process.cwd(), dir);
  return `synth: wrote ${stacks.join(", ")} to ${inside && !inside.startsWith("..") ? inside : dir}/stacks/`;
}

/** Runs `main`; on failure prints `error: <message>` and exits 1. INFRA_DEBUG=1 adds the stack. */
export async function runCli(main: () => Promise<void> | void): Promise<void> {
  try {
    await main();
  } catch (e) {
    const error = e as Error;
    const known = error instanceof SettingsError || error instanceof NixError;
    process.stderr.write(`error: ${error.message ?? String(e)}\n`);
    if (process.env.INFRA_DEBUG === "1" || (!known && !error.message)) process.stderr.write(`${error.stack ?? ""}\n`);
    process.exitCode = 1;
  }
}
