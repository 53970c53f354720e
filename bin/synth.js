/**
 * The cdktf app command (cdktf.json) and `npm run synth`: bundles main.ts with
 * esbuild only when a source changed, then runs the bundle in this process.
 * `--build` (npm run build) rebuilds the bundle and stops.
 *
 * Plain JavaScript, so it needs no TypeScript loader: starting one would cost
 * more than the check. dist/main.inputs.json records the esbuild version and
 * the size and mtime of every file the bundle read (esbuild's metafile), of
 * the files that configure the build (this one, package.json, tsconfig.json),
 * and of node_modules/.package-lock.json, which every npm install rewrites
 * (npm may give files from tarballs a fixed mtime). Any difference rebuilds.
 */
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DIST = join(ROOT, "dist");
const BUNDLE = join(DIST, "main.js");
const STAMP = join(DIST, "main.inputs.json");
/** Read by the build without esbuild listing them. */
const CONFIGURATION = ["bin/synth.js", "package.json", "tsconfig.json", "node_modules/.package-lock.json"];
const require = createRequire(import.meta.url);

/** [mtimeMs, size] of a path relative to ROOT, or null when it is missing. */
function fileState(path) {
  try {
    const s = statSync(join(ROOT, path));
    return [s.mtimeMs, s.size];
  } catch {
    return null;
  }
}

function esbuildVersion() {
  return JSON.parse(readFileSync(require.resolve("esbuild/package.json"), "utf8")).version;
}

/** True when the bundle exists and was built by this esbuild from the sources as they are now. */
function upToDate() {
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(STAMP, "utf8"));
    statSync(BUNDLE);
  } catch {
    return false;
  }
  if (stamp.esbuild !== esbuildVersion()) return false;
  return Object.entries(stamp.inputs).every(([path, state]) => JSON.stringify(fileState(path)) === JSON.stringify(state));
}

/**
 * Builds into files of this process's own and renames them into place, so a
 * concurrent synth never reads a half-written bundle. A source changed during
 * the build is recorded as unknown, so the next run builds again.
 */
async function build() {
  const { build: esbuild } = await import("esbuild");
  const started = Date.now();
  const temp = join(DIST, `.main.${process.pid}.js`);
  try {
    const result = await esbuild({
      absWorkingDir: ROOT,
      entryPoints: ["main.ts"],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
      outfile: temp,
      metafile: true,
      logLevel: "warning",
    });
    const inputs = {};
    for (const path of [...Object.keys(result.metafile.inputs), ...CONFIGURATION]) {
      const state = fileState(path);
      inputs[path] = state === null || state[0] < started ? state : "changed during the build";
    }
    writeFileSync(`${temp}.inputs`, JSON.stringify({ esbuild: esbuildVersion(), inputs }));
    renameSync(temp, BUNDLE);
    renameSync(`${temp}.inputs`, STAMP);
  } finally {
    rmSync(temp, { force: true });
    rmSync(`${temp}.inputs`, { force: true });
  }
}

const args = process.argv.slice(2);
if (args[0] === "--build" && args.length === 1) {
  await build();
} else {
  if (!upToDate()) await build();
  await import(pathToFileURL(BUNDLE).href);
}
