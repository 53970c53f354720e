/**
 * A real OpenSSH server on 127.0.0.1 (Debian's openssh-server), with its own
 * host key, and a real ssh-agent holding the client key. Started and stopped
 * by the test.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";

const SSHD = "/usr/sbin/sshd";

async function waitForPort(port: number): Promise<void> {
  const deadline = Date.now() + 10000;
  for (;;) {
    const open = await new Promise<boolean>((ok) => {
      const socket = createConnection({ host: "127.0.0.1", port }, () => {
        socket.destroy();
        ok(true);
      });
      socket.on("error", () => ok(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`sshd did not listen on ${port}`);
    await new Promise((ok) => setTimeout(ok, 50));
  }
}

export interface Sshd {
  readonly port: number;
  readonly user: string;
  /** Environment that lets ssh authenticate through the agent. */
  readonly agentEnv: Record<string, string>;
  /** Restarts the server with a fresh host key, as a re-created or tampered host would have. */
  rotateHostKey(): Promise<void>;
  stop(): Promise<void>;
}

export async function startSshd(): Promise<Sshd> {
  // sshd refuses to start without its privilege separation directory (the
  // Debian service creates it; nothing here runs that service).
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const dir = mkdtempSync(join(tmpdir(), "sshd-"));
  const user = userInfo().username;
  const port = await freePort();
  const keygen = (file: string) => execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", file]);
  keygen(join(dir, "client"));
  writeFileSync(join(dir, "authorized_keys"), readFileSync(join(dir, "client.pub")));
  const agent = execFileSync("ssh-agent", ["-s", "-a", join(dir, "agent.sock")], { encoding: "utf8" });
  const agentPid = /SSH_AGENT_PID=(\d+)/.exec(agent)![1];
  const agentEnv = { SSH_AUTH_SOCK: join(dir, "agent.sock") };
  execFileSync("ssh-add", ["-q", join(dir, "client")], { env: { ...process.env, ...agentEnv } });

  let child: ChildProcess | undefined;
  let generation = 0;
  const start = async () => {
    generation += 1;
    const hostKey = join(dir, `host-${generation}`);
    keygen(hostKey);
    const config = join(dir, "sshd_config");
    writeFileSync(
      config,
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${hostKey}`,
        `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
        `PidFile ${join(dir, "sshd.pid")}`,
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "StrictModes no",
        "UsePAM no",
        "",
      ].join("\n"),
    );
    child = spawn(SSHD, ["-D", "-e", "-f", config], { stdio: "ignore" });
    await waitForPort(port);
  };
  const stopServer = async () => {
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((ok) => child!.once("exit", ok));
    child.kill();
    await exited;
  };
  await start();
  return {
    port,
    user,
    agentEnv,
    rotateHostKey: async () => {
      await stopServer();
      await start();
    },
    stop: async () => {
      await stopServer();
      try {
        process.kill(Number(agentPid));
      } catch {
        // already gone
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
