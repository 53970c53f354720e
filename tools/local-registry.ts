/**
 * Debian's docker-registry on 127.0.0.1, for what pushes OCI images offline:
 * `npm run rehearse` and the tests. Not part of a real deploy.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

export interface LocalRegistry {
  /** `127.0.0.1:<port>`, plain HTTP. */
  readonly address: string;
  /** Stops the registry and waits for it to exit; its data stays in the directory. */
  stop(): Promise<void>;
}

export interface LocalRegistryOptions {
  /** The port to try first. @default a free port */
  readonly port?: number;
}

/** A port nothing listens on now; another process can take it before the caller binds it. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const port = (server.address() as { port: number }).port;
  await new Promise((ok) => server.close(ok));
  return port;
}

/**
 * Starts a registry that keeps its config and data in `dir` and answers on a
 * free port. The port can be taken between freePort() and the registry's bind
 * (another registry, an outgoing connection): the registry then exits, and a
 * poll of the port would reach the other server. Each registry answers with a
 * header of its own, so only its answer counts; a taken port means another one.
 */
export async function startLocalRegistry(dir: string, options: LocalRegistryOptions = {}): Promise<LocalRegistry> {
  for (let attempt = 1; ; attempt++) {
    const started = await startOn(dir, attempt === 1 && options.port ? options.port : await freePort());
    if (started !== "port taken") return started;
    if (attempt === 3) throw new Error("docker-registry: three free ports on 127.0.0.1 were taken before it could bind one; try again");
  }
}

async function startOn(dir: string, port: number): Promise<LocalRegistry | "port taken"> {
  const address = `127.0.0.1:${port}`;
  const token = randomBytes(8).toString("hex");
  const config = join(dir, "config.yml");
  writeFileSync(
    config,
    [
      "version: 0.1", "log:", "  level: error", "storage:", "  filesystem:", `    rootdirectory: ${join(dir, "data")}`,
      "http:", `  addr: ${address}`, "  headers:", `    X-Local-Registry: [${token}]`, "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn("docker-registry", ["serve", config], { stdio: "ignore" });
  // A registry that could not start at all (not on PATH) emits "error", never "exit".
  let spawnError: Error | undefined;
  const exited = new Promise<void>((ok) => {
    if (child.exitCode !== null || child.signalCode !== null) return ok();
    child.once("exit", () => ok());
    child.once("error", (e) => ((spawnError = e), ok()));
  });
  // However this process ends, the registry ends with it.
  const kill = () => child.kill();
  process.once("exit", kill);
  const stop = async () => {
    process.removeListener("exit", kill);
    child.kill();
    await exited;
  };
  const deadline = Date.now() + 15000;
  for (;;) {
    let answer: string | null | undefined;
    try {
      const response = await fetch(`http://${address}/v2/`, { signal: AbortSignal.timeout(2000) });
      answer = response.ok ? response.headers.get("x-local-registry") : undefined;
    } catch {
      // not listening yet
    }
    if (spawnError) throw new Error(`docker-registry could not start: ${spawnError.message} (Debian: apt-get install docker-registry)`);
    if (answer === token) return { address, stop };
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
}
