/**
 * The cdktf app command (cdktf.json) and `npm run synth`: bundles main.ts with
 * esbuild only when a source changed, then runs the bundle in this process.
 * `--build` (npm run build) rebuilds the bundle and stops; it takes no other
 * argument but --help.
 *
 * Plain JavaScript, so it needs no TypeScript loader: starting one would cost
 * more than the check. dist/main.inputs.json records the esbuild version and
 * the size and mtime of every file the bundle read (esbuild's metafile), of
 * the files that configure the build (this one, package.json, tsconfig.json),
 * and of node_modules/.package-lock.json, which every npm install rewrites
 * (npm may give files from tarballs a fixed mtime), and of the bundle itself
 * (so a bundle another synth put in place is not taken for this stamp's).
 * Any difference rebuilds. A source that does not bundle, or a missing
 * esbuild, is one `error:` line per problem and exit 1, without a stack.
 */
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, relative } from "node:path";
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
  if (JSON.stringify(fileState(relative(ROOT, BUNDLE))) !== JSON.stringify(stamp.bundle)) return false;
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
      logLevel: "silent",
    });
    for (const warning of result.warnings) process.stderr.write(`warning: ${located(warning)}\n`);
    const inputs = {};
    for (const path of [...Object.keys(result.metafile.inputs), ...CONFIGURATION]) {
      const state = fileState(path);
      inputs[path] = state === null || state[0] < started ? state : "changed during the build";
    }
    writeFileSync(`${temp}.inputs`, JSON.stringify({ esbuild: esbuildVersion(), bundle: fileState(relative(ROOT, temp)), inputs }));
    renameSync(temp, BUNDLE);
    renameSync(`${temp}.inputs`, STAMP);
  } finally {
    rmSync(temp, { force: true });
    rmSync(`${temp}.inputs`, { force: true });
  }
}

/** An esbuild message as "file:line:column: text". */
const located = ({ text, location }) => (location ? `${location.file}:${location.line}:${location.column}: ${text}` : text);

/** What went wrong, one line per problem, when the bundle could not be built; undefined for anything else. */
function buildProblems(error) {
  if (/^ERR_MODULE_NOT_FOUND$|^MODULE_NOT_FOUND$/.test(error?.code) && /'esbuild[/']/.test(error.message)) {
    return ["esbuild is not installed, and synth bundles main.ts with it: run npm ci (esbuild is a devDependency)"];
  }
  if (Array.isArray(error?.errors) && error.errors.length) return error.errors.map(located);
  return undefined;
}

/**
 * `npm run build` runs this file with --build: its own --help, and its own
 * refusal of anything else. `npm run synth`'s arguments are main.ts's to read.
 */
function buildArguments(extra) {
  if (extra.includes("--help") || extra.includes("-h")) {
    process.stdout.write("usage: npm run build\nRebuilds dist/main.js, the bundle of main.ts that synth runs, and stops.\n  -h, --help  print this help and exit\n");
    process.exit(0);
  }
  if (extra.length) {
    process.stderr.write(`error: ${extra[0].startsWith("-") ? "unknown option" : "unexpected argument"} ${extra[0]}; usage: npm run build\n`);
    process.exit(1);
  }
}

const args = process.argv.slice(2);
const buildOnly = args[0] === "--build";
if (buildOnly) buildArguments(args.slice(1));
try {
  if (buildOnly || !upToDate()) await build();
} catch (e) {
  const problems = buildProblems(e);
  if (!problems) throw e;
  process.stderr.write(problems.map((line) => `error: ${line}\n`).join(""));
  process.exit(1);
}
if (!buildOnly) await import(pathToFileURL(BUNDLE).href);
