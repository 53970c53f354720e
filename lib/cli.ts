/** Entry-point plumbing shared by main.ts and bin/: clear errors, never a bare stack trace. */
import { NixError } from "./nix.js";
import { SettingsError } from "./settings.js";

/** Runs `main`; on failure prints `error: <message>` and exits 1. INFRA_DEBUG=1 adds the stack. */
export async function runCli(main: () => Promise<void> | void): Promise<void> {
  try {
    await main();
  } catch (e) {
    const error = e as Error;
    const known = error instanceof SettingsError || error instanceof NixError;
    process.stderr.write(`error: ${error.message ?? String(e)}\n`);
    if (process.env.INFRA_DEBUG || (!known && !error.message)) process.stderr.write(`${error.stack ?? ""}\n`);
    process.exitCode = 1;
  }
}
