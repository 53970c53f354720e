/** A real registry (Debian's docker-registry) on 127.0.0.1, started and stopped by the test. */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
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

/**
 * A free port can be taken between freePort() and the registry's bind (another
 * jest run, an outgoing connection): the registry then exits, and a poll of
 * the port would reach the other server. Each registry answers with a header
 * of its own, so only its answer counts; a taken port means another one.
 */
export async function startRegistry(options: { port?: number } = {}): Promise<Registry> {
  for (let attempt = 1; ; attempt++) {
    const started = await startOn(attempt === 1 && options.port ? options.port : await freePort());
    if (started !== "port taken") return started;
    if (attempt === 3) throw new Error("docker-registry: three free ports were taken before it could bind one");
  }
}

async function startOn(port: number): Promise<Registry | "port taken"> {
  const dir = mkdtempSync(join(tmpdir(), "registry-"));
  const address = `127.0.0.1:${port}`;
  const token = randomBytes(8).toString("hex");
  const config = join(dir, "config.yml");
  writeFileSync(
    config,
    [
      "version: 0.1", "log:", "  level: error", "storage:", "  filesystem:", `    rootdirectory: ${join(dir, "data")}`,
      "http:", `  addr: ${address}`, "  headers:", `    X-Test-Registry: [${token}]`, "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn("docker-registry", ["serve", config], { stdio: "ignore" });
  const exited = new Promise((ok) => (child.exitCode !== null ? ok(undefined) : child.once("exit", ok)));
  const stop = async () => {
    child.kill();
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15000;
  for (;;) {
    let answer: string | null | undefined;
    try {
      const response = await fetch(`http://${address}/v2/`, { signal: AbortSignal.timeout(2000) });
      answer = response.ok ? response.headers.get("x-test-registry") : undefined;
    } catch {
      // not listening yet
    }
    if (answer === token) break;
    // Another server answers there, or ours could not bind: try another port.
    if (child.exitCode !== null || (answer !== undefined && answer !== token)) {
      await stop();
      return "port taken";
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not answer on ${address} within 15 s`);
    }
    await new Promise((ok) => setTimeout(ok, 100));
  }
  const blobs = join(dir, "data", "docker", "registry", "v2", "blobs", "sha256");
  return {
    address,
    blobCount: () => (existsSync(blobs) ? readdirSync(blobs).flatMap((d) => readdirSync(join(blobs, d))).length : 0),
    stop,
  };
}
