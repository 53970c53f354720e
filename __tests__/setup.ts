/** cdktf's jest matchers (toHaveResourceWithProperties, …), and no temporary directories left behind. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Testing } from "cdktf";
import "cdktf/lib/testing/adapters/jest.js";

Testing.setupJest();

/*
 * Testing.app() makes a temporary outdir per call and never removes it. Give
 * each one a home under one directory per test file, removed when the
 * file's tests end. (Tests remove their own temporary directories.)
 */
const testTmp = mkdtempSync(join(tmpdir(), "jest-cdktf-"));
const app = Testing.app.bind(Testing);
Testing.app = (options = {}) => app({ outdir: mkdtempSync(join(testTmp, "outdir-")), ...options });
afterAll(() => rmSync(testTmp, { recursive: true, force: true }));
