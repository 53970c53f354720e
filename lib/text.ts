/**
 * Showing user input inside one-line error messages: control characters
 * escaped (no ANSI sequence or newline reaches the terminal), and long values
 * cut, so an error line stays one readable line whatever the input was.
 */

/** Longest part of a value quoted in an error. */
const SHOWN_CHARS = 60;
/** Longest error line. */
const MAX_LINE = 400;

/** C0/C1 controls, DEL, the Unicode line and paragraph separators, and bidirectional overrides (they reorder what a terminal shows). */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

export function hasControlChars(text: string): boolean {
  return new RegExp(CONTROL.source).test(text);
}

function escapeControls(text: string): string {
  return text.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** A value as a quoted, escaped, bounded string: `"abc"`, `"aaaa…" (5000000 characters)`. */
export function shown(value: unknown): string {
  const text = typeof value === "string" ? value : (JSON.stringify(value) ?? String(value));
  const cut = text.length > SHOWN_CHARS ? `${text.slice(0, SHOWN_CHARS)}…` : text;
  const quoted = typeof value === "string" ? JSON.stringify(cut) : cut;
  return `${escapeControls(quoted)}${text.length > SHOWN_CHARS ? ` (${text.length} characters)` : ""}`;
}

/** One line: controls escaped, at most MAX_LINE characters. */
export function oneLine(line: string): string {
  const safe = escapeControls(line);
  return safe.length > MAX_LINE ? `${safe.slice(0, MAX_LINE)}… (line cut)` : safe;
}

/** Edits (insert, delete, substitute, swap two neighbours: the commonest typo) between two short strings. */
export function editDistance(a: string, b: string): number {
  let [before, row] = [[] as number[], Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) next[j] = Math.min(next[j], before[j - 2] + 1);
    }
    [before, row] = [row, next];
  }
  return row[b.length];
}

/** The candidate closest to `word` by edit distance (the first of equals). */
export function nearest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}
