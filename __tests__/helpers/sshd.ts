/**
 * A real OpenSSH server on 127.0.0.1 (Debian's openssh-server), with its own
 * host key, and a real ssh-agent holding the client key. Started and stopped
 * by the test.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";

const SSHD = "/usr/sbin/sshd";

/**
 * Until this sshd listens: it writes its PidFile once bound. Another server
 * may hold the port (taken between freePort() and the bind); then sshd exits,
 * and a mere connect would reach that server instead.
 */
async function waitForSshd(child: ChildProcess, pidFile: string, port: number): Promise<"listening" | "port taken"> {
  const deadline = Date.now() + 10000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) return "port taken";
    if (existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() === String(child.pid)) return "listening";
    if (Date.now() > deadline) throw new Error(`sshd did not listen on ${port}`);
    await new Promise((ok) => setTimeout(ok, 50));
  }
}

export interface Sshd {
  readonly port: number;
  readonly user: string;
  /** Environment that lets ssh authenticate through the agent. */
  readonly agentEnv: Record<string, string>;
  /** The private key the server accepts (the agent holds it too). */
  readonly clientKey: string;
  /** Restarts the server with a fresh host key, as a re-created or tampered host would have. */
  rotateHostKey(): Promise<void>;
  stop(): Promise<void>;
}

export async function startSshd(options: { port?: number } = {}): Promise<Sshd> {
  // sshd refuses to start without its privilege separation directory (the
  // Debian service creates it; nothing here runs that service).
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const dir = mkdtempSync(join(tmpdir(), "sshd-"));
  const user = userInfo().username;
  let port = options.port ?? (await freePort());
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
    const pidFile = join(dir, "sshd.pid");
    rmSync(pidFile, { force: true });
    writeFileSync(
      config,
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${hostKey}`,
        `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
        `PidFile ${pidFile}`,
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "StrictModes no",
        "UsePAM no",
        "",
      ].join("\n"),
    );
    child = spawn(SSHD, ["-D", "-e", "-f", config], { stdio: "ignore" });
    return waitForSshd(child, pidFile, port);
  };
  const stopServer = async () => {
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((ok) => child!.once("exit", ok));
    child.kill();
    await exited;
  };
  const stopAgent = () => {
    try {
      process.kill(Number(agentPid));
    } catch {
      // already gone
    }
  };
  try {
    // A port taken before sshd bound it: another one (up to three).
    for (let attempt = 1; (await start()) === "port taken"; attempt++) {
      if (attempt === 3) throw new Error("sshd: three free ports were taken before it could bind one");
      port = await freePort();
    }
  } catch (e) {
    await stopServer();
    stopAgent();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    port,
    user,
    agentEnv,
    clientKey: join(dir, "client"),
    rotateHostKey: async () => {
      await stopServer();
      // Clients know this port: a restart cannot move.
      if ((await start()) === "port taken") throw new Error(`sshd: port ${port} was taken while it restarted`);
    },
    stop: async () => {
      await stopServer();
      stopAgent();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
