/** A real registry (Debian's docker-registry) on 127.0.0.1, started and stopped by the test. */
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalRegistry } from "../../tools/local-registry.js";

export interface Registry {
  readonly address: string;
  /** Blobs stored so far: a push that uploads nothing leaves this unchanged. */
  blobCount(): number;
  stop(): Promise<void>;
}

/** On a free port (tools/local-registry.ts: a port taken before the bind means another); its data removed at stop. */
export async function startRegistry(options: { port?: number } = {}): Promise<Registry> {
  const dir = mkdtempSync(join(tmpdir(), "registry-"));
  try {
    const registry = await startLocalRegistry(dir, options);
    const blobs = join(dir, "data", "docker", "registry", "v2", "blobs", "sha256");
    return {
      address: registry.address,
      blobCount: () => (existsSync(blobs) ? readdirSync(blobs).flatMap((d) => readdirSync(join(blobs, d))).length : 0),
      stop: async () => {
        await registry.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
