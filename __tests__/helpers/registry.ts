/** A real registry (Debian's docker-registry) on 127.0.0.1, started and stopped by the test. */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";

export interface Registry {
  readonly address: string;
  /** Blobs stored so far: a push that uploads nothing leaves this unchanged. */
  blobCount(): number;
  stop(): Promise<void>;
}

export async function startRegistry(): Promise<Registry> {
  const dir = mkdtempSync(join(tmpdir(), "registry-"));
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const config = join(dir, "config.yml");
  writeFileSync(
    config,
    ["version: 0.1", "log:", "  level: error", "storage:", "  filesystem:", `    rootdirectory: ${join(dir, "data")}`, "http:", `  addr: ${address}`, ""].join("\n"),
  );
  const child: ChildProcess = spawn("docker-registry", ["serve", config], { stdio: "ignore" });
  const deadline = Date.now() + 15000;
  for (;;) {
    try {
      if ((await fetch(`http://${address}/v2/`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`docker-registry did not answer on ${address} within 15 s`);
    }
    await new Promise((ok) => setTimeout(ok, 100));
  }
  const blobs = join(dir, "data", "docker", "registry", "v2", "blobs", "sha256");
  return {
    address,
    blobCount: () => (existsSync(blobs) ? readdirSync(blobs).flatMap((d) => readdirSync(join(blobs, d))).length : 0),
    stop: async () => {
      child.kill();
      await new Promise((ok) => (child.exitCode !== null ? ok(undefined) : child.once("exit", ok)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
