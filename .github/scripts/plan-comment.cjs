// The pull request's plan comment, built from summary.md (npm run plan-summary,
// the host diff below it). Plain CommonJS: pull-request.yml's github-script step
// requires it from the checkout, with no build step. Pure: the GitHub API calls
// stay in the workflow. Tested by __tests__/workflows.test.ts.
"use strict";

/** The comment's first line: how the workflow finds its own comment to update. */
const MARKER = "<!-- nixos-gce-cdktf plan summary -->";
/** GitHub rejects a comment over 65536 characters; below that, room to spare. */
const LIMIT = 65000;

const isFence = (line) => /^ {0,3}(```|~~~)/.test(line);

/**
 * The comment's body: the summary as it is, cut under LIMIT when longer, or,
 * when there is no summary (a step failed), "plan failed" naming the pull
 * request's head commit, so that an earlier plan is not left standing.
 * @param {{ summary: string | undefined, headSha: string, runUrl: string }} options
 * @returns {string}
 */
function planCommentBody({ summary, headSha, runUrl }) {
  if (summary === undefined) {
    return `${MARKER}\n**plan failed**: no plan for this commit (${headSha.slice(0, 7)}); an earlier one no longer applies. See [the run](${runUrl}).\n`;
  }
  if (!summary.startsWith(MARKER)) throw new Error("summary.md does not start with the plan summary marker");
  if (summary.length <= LIMIT) return summary;
  return truncated(summary, runUrl);
}

/**
 * Whole lines while they fit, then whatever closes the code fence and the
 * <details> blocks left open (else the rest of the page would render inside
 * them), then a note pointing at the run's summary page, which has it all.
 */
function truncated(summary, runUrl) {
  const note = `\n… (truncated: the full plan is on [the run's summary page](${runUrl}))\n`;
  const kept = [];
  let length = 0;
  let inFence = false;
  let openDetails = 0;
  const closing = (fence, details) => `${fence ? "```\n" : ""}${"</details>\n".repeat(details)}`;
  for (const line of summary.split("\n")) {
    let fence = inFence;
    let details = openDetails;
    if (isFence(line)) fence = !fence;
    else if (!fence) details = Math.max(0, details + (line.match(/<details[\s>]/g) ?? []).length - (line.match(/<\/details>/g) ?? []).length);
    if (length + line.length + 1 + closing(fence, details).length + note.length > LIMIT) break;
    kept.push(line);
    length += line.length + 1;
    inFence = fence;
    openDetails = details;
  }
  return `${kept.join("\n")}\n${closing(inFence, openDetails)}${note}`;
}

module.exports = { MARKER, LIMIT, planCommentBody };
