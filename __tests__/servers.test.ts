/**
 * The servers tests and npm run rehearse start on a free port (tools/local-registry.ts, helpers/sshd.ts):
 * a port taken between freePort() and their bind (another jest run, an
 * outgoing connection) must not leave the test talking to someone else's server.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { startLocalRegistry } from "../tools/local-registry.js";
import { REPO_ROOT } from "./helpers/nix.js";
import { startRegistry } from "./helpers/registry.js";
import { startSshd } from "./helpers/sshd.js";
import { describeWithTool, describeWithTools } from "./helpers/tools.js";

/** A server on a free port that answers like any HTTP server ("200 OK", no registry of ours). */
async function occupied(): Promise<{ port: number; server: Server }> {
  const server = createServer((_request, response) => response.end("{}"));
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return { port: (server.address() as { port: number }).port, server };
}

describeWithTool("docker-registry", "a registry whose port is taken", () => {
  test("starts on another port and answers there itself", async () => {
    const { port, server } = await occupied();
    try {
      const registry = await startRegistry({ port });
      try {
        expect(registry.address).not.toBe(`127.0.0.1:${port}`);
        const answer = await fetch(`http://${registry.address}/v2/`);
        expect(answer.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
      } finally {
        await registry.stop();
      }
    } finally {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    }
  });
});

describeWithTool("docker-registry", "npm run rehearse's registry (tools/local-registry.ts) whose port is taken", () => {
  test("answers on another port itself, and keeps its data in its directory for the next rehearsal", async () => {
    const { port, server } = await occupied();
    const dir = mkdtempSync(join(tmpdir(), "local-registry-"));
    try {
      const registry = await startLocalRegistry(dir, { port });
      try {
        expect(registry.address).not.toBe(`127.0.0.1:${port}`);
        const answer = await fetch(`http://${registry.address}/v2/`);
        expect(answer.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
        const upload = await fetch(`http://${registry.address}/v2/probe/blobs/uploads/`, { method: "POST" });
        expect(upload.status).toBe(202);
      } finally {
        await registry.stop();
      }
      await expect(fetch(`http://${registry.address}/v2/`)).rejects.toThrow();
      expect(existsSync(join(dir, "data", "docker", "registry", "v2", "repositories", "probe"))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    }
  });
});

describeWithTools(["sshd", "ssh"], "an sshd whose port is taken", () => {
  test("starts on another port and lets the test's key in there", async () => {
    const { port, server } = await occupied();
    try {
      const sshd = await startSshd({ port });
      try {
        expect(sshd.port).not.toBe(port);
        const login = await execa(
          "ssh",
          ["-p", String(sshd.port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", `${sshd.user}@127.0.0.1`, "echo in"],
          { env: sshd.agentEnv, reject: false },
        );
        expect([login.exitCode, login.stdout]).toEqual([0, "in"]);
      } finally {
        await sshd.stop();
      }
    } finally {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    }
  });
});

describe("npm run rehearse's registry without docker-registry", () => {
  test("fails with one line saying how to get it, instead of an unhandled spawn error", async () => {
    // In a Node process of its own: jest's process.env is not what child_process spawns with.
    const dir = mkdtempSync(join(tmpdir(), "local-registry-"));
    try {
      const bundle = join(dir, "local-registry.mjs");
      await execa(join(REPO_ROOT, "node_modules", ".bin", "esbuild"), [join(REPO_ROOT, "tools", "local-registry.ts"), "--bundle", "--platform=node", "--format=esm", `--outfile=${bundle}`, "--log-level=warning"]);
      const script = `import(${JSON.stringify(bundle)}).then((m) => m.startLocalRegistry(${JSON.stringify(dir)})).then(() => console.log("started"), (e) => console.log(e.message))`;
      // A PATH without docker-registry (node's own directory may hold it: /usr/bin).
      const path = join(dir, "bin");
      mkdirSync(path);
      const run = await execa(process.execPath, ["-e", script], { env: { PATH: path }, extendEnv: false, reject: false, timeout: 30000 });
      expect(run.exitCode).toBe(0);
      expect(run.stdout).toMatch(/^docker-registry could not start: .*ENOENT.* \(Debian: apt-get install docker-registry\)$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
