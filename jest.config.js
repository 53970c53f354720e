/** ESM + ts-jest: execa is ESM-only, so the tests run as ES modules. */
export default {
  preset: "ts-jest/presets/default-esm",
  testEnvironment: "node",
  roots: ["<rootDir>/__tests__"],
  testMatch: ["**/*.test.ts"],
  setupFilesAfterEnv: ["<rootDir>/__tests__/setup.ts"],
  moduleNameMapper: { "^(\\.{1,2}/.*)\\.js$": "$1" },
  transform: {
    "^.+\\.ts$": ["ts-jest", { useESM: true, diagnostics: false }],
  },
  testTimeout: 60000,
  // Jest's default is one worker per core less one: on 2 cores, one file at a
  // time, in band. Much of a file's time is waiting (SSH waits, Terraform's
  // 10 s progress tick, sleeps of the doubles), so a worker per core keeps
  // both busy; the files share no port, path or state (each makes its own).
  maxWorkers: "100%",
  // Suite names carry the reason when real tools are missing; verbose shows them.
  verbose: true,
};
