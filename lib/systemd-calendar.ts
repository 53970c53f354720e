/**
 * systemd.time(7) calendar events, read at synth as systemd reads OnCalendar=
 * (its calendarspec.c; the verdicts are tested against `systemd-analyze
 * calendar` of systemd 252). nixGc.schedule becomes nix-gc.timer's OnCalendar
 * on every host, and an event systemd refuses passes the image build and the
 * VM, then fails the host's activation at deploy time.
 *
 *   event     = shorthand [zone] | [weekdays " "] [date " "] [time] [zone] | "@" seconds [zone]
 *   weekdays  = day ("," | ".." | "-") day …  (ranges run Monday to Sunday; a trailing "," is allowed)
 *   date      = [year "-"] month ("-" | "~") day   (~ counts back from the month's last day)
 *   time      = hour ":" minute [":" second]      (second may have up to 6 decimals)
 *   component = "*" | value [".." value] ["/" repeat] ("," …)
 *
 * The time zone is the one part decided on the host, by its tzdata: a last
 * word shaped like a tz database name (Europe/Berlin, EST5EDT, Etc/GMT+1,
 * posix/…) is accepted without looking it up, so a name the host lacks fails
 * there, as before. Every tz database name but localtime and posixrules has
 * that shape. UTC is taken in any case, as systemd does. A word of capitals
 * alone is a zone only if tzdata has it (its legacy top-level names, which tz
 * no longer adds to): PST, CEST or BST, abbreviations systemd takes only for
 * the host's own zone (UTC unless a module sets time.timeZone), are refused.
 */

/** systemd's one-word events; systemd also takes anually, biannually, bi-annually and semi-annually. */
const CALENDAR_SHORTHANDS = ["minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually", "quarterly", "semiannually"];
const ALL_SHORTHANDS = [...CALENDAR_SHORTHANDS, "anually", "biannually", "bi-annually", "semi-annually"];

/** Longest names first, as systemd tries them: "Monday" is not "Mon" followed by "day". */
const WEEKDAYS = ["Monday", "Mon", "Tuesday", "Tue", "Wednesday", "Wed", "Thursday", "Thu", "Friday", "Fri", "Saturday", "Sat", "Sunday", "Sun"];
const dayNumber = (name: string) => Math.floor(WEEKDAYS.indexOf(name) / 2);
const DAY_SHORT = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/** A tz database name: components starting upper case, optionally under posix/ or right/. */
const TIME_ZONE = /^(?:posix\/|right\/)?[A-Z][A-Za-z0-9_+-]*(?:\/[A-Z][A-Za-z0-9_+-]*)*$/;
/** tzdata's names of capitals alone. */
const CAPITAL_ZONES = ["CET", "EET", "EST", "GB", "GMT", "HST", "MET", "MST", "NZ", "PRC", "ROC", "ROK", "UCT", "UTC", "WET"];
const WEEKDAY_WORD = new RegExp(`^(?:${WEEKDAYS.join("|")})(?:[-.,]|$)`, "i");
const FORM = "the form is [weekdays] [[year-]month-day] [hour:minute[:second]] [time zone], e.g. Sun *-*-* 03:00 UTC";

/** Seconds are kept in microseconds, as systemd keeps them. */
const USEC = 1_000_000;
/** The last second systemd schedules: 2199-12-31 23:59:59 UTC. */
const LAST_TIMESTAMP = 7258118399;
/** systemd's limit on a component's comma list (CALENDARSPEC_COMPONENTS_MAX + 1). */
const MAX_LIST = 241;
/** systemd keeps each number, seconds in microseconds, in a C int. */
const INT_MAX = 2147483647;

interface Field {
  readonly name: string;
  readonly from: number;
  readonly to: number;
  /** A valid event using this field, for the fix. */
  readonly example: string;
}
const YEAR: Field = { name: "year", from: 1970, to: 2199, example: "2025-01-01" };
const MONTH: Field = { name: "month", from: 1, to: 12, example: "*-12-01" };
const DAY: Field = { name: "day", from: 1, to: 31, example: "*-*-28" };
/** Days before the month's end (~): systemd takes at most 28. */
const LAST_DAYS: Field = { name: "day", from: 1, to: 28, example: "*-*~01 (the month's last day)" };
const HOUR: Field = { name: "hour", from: 0, to: 23, example: "Sun 23:00" };
const MINUTE: Field = { name: "minute", from: 0, to: 59, example: "Sun 03:59" };
const SECOND: Field = { name: "second", from: 0, to: 60 * USEC - 1, example: "Sun 03:00:59" };

/** One list item: start[..stop][/repeat], as written. */
interface Item {
  readonly text: string;
  start: number;
  stop?: number;
  repeat: number;
}

class Refusal extends Error {}
function refuse(problem: string): never {
  throw new Refusal(problem);
}

/**
 * What is wrong with `event` as a systemd calendar event, with an example
 * fix, or undefined when systemd would take it. Expects one line of
 * CALENDAR_CHARACTERS.
 */
export function calendarProblem(event: string): string | undefined {
  try {
    read(event);
    return undefined;
  } catch (e) {
    if (e instanceof Refusal) return e.message;
    throw e;
  }
}

function read(event: string): void {
  if (event !== event.trim()) refuse("it starts or ends with a space; remove it");
  const body = withoutTimeZone(event);
  if (ALL_SHORTHANDS.includes(body.toLowerCase())) return;
  const r = new Reader(body);
  weekdays(r);
  if (r.peek() === "@") timestamp(r);
  else dateAndTime(r);
}

/** `event` without its time zone, as systemd splits it: " UTC", or a last word that names a zone. */
function withoutTimeZone(event: string): string {
  const space = event.lastIndexOf(" ");
  if (space < 0) return event;
  const last = event.slice(space + 1);
  if (last.toUpperCase() === "UTC" || isTimeZone(last)) return event.slice(0, space);
  if (/^[A-Za-z][\w+/-]*\/[\w+/-]*$/.test(last)) refuse(`"${clip(last)}" is not shaped like a tz database name (Area/Location, each part starting upper case); e.g. Sun 03:00 Europe/Berlin`);
  if (/^[A-Z]+$/.test(last) && !WEEKDAY_WORD.test(last) && !ALL_SHORTHANDS.includes(last.toLowerCase())) refuse(`"${clip(last)}" is not a tz database name (systemd takes an abbreviation only for the host's own zone); name the zone, e.g. Sun 03:00 America/Los_Angeles`);
  if (/^[+-]\d/.test(last)) refuse(`"${clip(last)}" is a UTC offset, which systemd does not take; name a time zone instead, e.g. Sun 03:00 Europe/Berlin or Sun 03:00 UTC`);
  return event;
}

function isTimeZone(word: string): boolean {
  if (/^[A-Z]+$/.test(word) && !CAPITAL_ZONES.includes(word)) return false;
  return TIME_ZONE.test(word) && !WEEKDAY_WORD.test(word) && !ALL_SHORTHANDS.includes(word.toLowerCase());
}

/** Weekdays: a list of days and non-wrapping ranges, then spaces; or nothing. */
function weekdays(r: Reader): void {
  let range: { at: number; day: string } | undefined;
  for (let first = true; ; first = false) {
    const at = r.i;
    const day = WEEKDAYS.find((d) => r.s.slice(r.i, r.i + d.length).toLowerCase() === d.toLowerCase());
    if (!day) {
      if (first) return;
      unexpected(r);
    }
    r.i += day.length;
    const next = r.peek();
    if (/[A-Za-z]/.test(next)) refuse(wordProblem(/^[A-Za-z]+/.exec(r.s.slice(at))![0]));
    if (!["", "-", ".", ",", " "].includes(next)) refuse(`"${clip(r.s.slice(at))}": a space goes between the weekdays and the date or time, e.g. Sun 03:00`);
    if (range && dayNumber(range.day) > dayNumber(day)) {
      const [a, b] = [DAY_SHORT[dayNumber(range.day)], DAY_SHORT[dayNumber(day)]];
      refuse(`weekday range "${r.s.slice(range.at, r.i)}" wraps past Sunday, and ranges run Monday to Sunday; write ${a === "Sun" ? a : `${a}..Sun`},${b === "Mon" ? b : `Mon..${b}`}`);
    }
    if (next === "") return;
    if (next === " ") return r.skipSpaces();
    if (next === ",") {
      range = undefined;
      r.i += 1;
    } else {
      if (range) refuse(`weekday range "${clip(r.s.slice(range.at))}" has more than one end; e.g. Mon..Fri`);
      if (next === "." && r.s[r.i + 1] !== ".") refuse(`"${clip(r.s.slice(at))}": a weekday range takes two dots, e.g. Mon..Fri`);
      range = { at, day };
      r.i += next === "." ? 2 : 1;
    }
    if (r.peek() === "" || r.peek() === " ") {
      if (range) refuse(`weekday range "${r.s.slice(range.at, r.i)}" has no end; e.g. Mon..Fri`);
      return r.skipSpaces();
    }
  }
}

/** "@" and seconds since the epoch, UTC; systemd reads them with strtoul (spaces and a sign allowed). */
function timestamp(r: Reader): void {
  const m = /^@ *([+-]?)(\d+)$/.exec(r.rest());
  if (!m) refuse(`"${clip(r.rest())}": "@" takes whole seconds since 1970 and nothing after, e.g. @1700000000`);
  const seconds = Number(m[2]);
  if (seconds > LAST_TIMESTAMP || (m[1] === "-" && seconds !== 0)) refuse(`"${clip(r.rest())}" is outside 1970..2199, the years systemd takes; e.g. @1700000000`);
}

/** [date] [time], both optional: a first component followed by ":" or nothing is an hour, not a date. */
function dateAndTime(r: Reader): void {
  if (r.peek() === "") return;
  const start = r.i;
  const first = components(r, false);
  if (r.peek() === "" || r.peek() === ":") {
    r.i = start;
    return time(r);
  }
  let lastDays = r.peek() === "~";
  if (!lastDays && r.peek() !== "-") unexpected(r);
  r.i += 1;
  const second = components(r, false);
  if (r.peek() === "" || r.peek() === " ") {
    check(MONTH, first);
    check(lastDays ? LAST_DAYS : DAY, second);
  } else {
    if (lastDays) refuse(`"~" goes between month and day (the day counted back from the month's end), e.g. *-02~03`);
    lastDays = r.peek() === "~";
    if (!lastDays && r.peek() !== "-") unexpected(r);
    r.i += 1;
    const third = components(r, false);
    if (r.peek() !== "" && r.peek() !== " ") unexpected(r);
    check(YEAR, first?.map(twoDigitYear));
    check(MONTH, second);
    check(lastDays ? LAST_DAYS : DAY, third);
  }
  r.skipSpaces();
  time(r);
}

/** hour:minute[:second], or nothing (midnight). */
function time(r: Reader): void {
  if (r.peek() === "") return;
  const start = r.i;
  const hour = components(r, false);
  if (r.peek() === "") refuse(`"${clip(r.s.slice(start))}" has no minutes; write hour:minute, e.g. 03:00`);
  if (r.peek() !== ":") unexpected(r);
  r.i += 1;
  const minute = components(r, false);
  check(HOUR, hour);
  check(MINUTE, minute);
  if (r.peek() === "") return;
  if (r.peek() !== ":") unexpected(r);
  r.i += 1;
  const second = components(r, true);
  if (r.peek() !== "") unexpected(r);
  check(SECOND, second);
}

/** "*" (undefined: any value; for seconds, every whole second) or a comma list of items. */
function components(r: Reader, seconds: boolean): Item[] | undefined {
  if (r.peek() === "*") {
    r.i += 1;
    if (r.peek() === "/") refuse(`"*${clip(r.rest())}": * takes no repetition; write 0/N (from 0, every N), e.g. *:0/15`);
    return seconds ? [{ text: "*", start: 0, repeat: USEC }] : undefined;
  }
  const items = [item(r, seconds)];
  while (r.peek() === ",") {
    r.i += 1;
    items.push(item(r, seconds));
    if (items.length > MAX_LIST) refuse(`a list has more than ${MAX_LIST} items, systemd's limit; use ranges such as 0..30/2`);
  }
  return items;
}

/** value[..value][/repeat], followed by what may follow a component. */
function item(r: Reader, seconds: boolean): Item {
  const at = r.i;
  const start = number(r, seconds);
  let stop: number | undefined;
  let repeat = 0;
  if (r.rest().startsWith("..")) {
    r.i += 2;
    stop = number(r, seconds);
    repeat = seconds ? USEC : 1;
  }
  if (r.peek() === "/") {
    r.i += 1;
    repeat = number(r, seconds);
    if (repeat === 0) refuse(`"${clip(r.s.slice(at, r.i))}" repeats every 0; repeat at least every 1, e.g. 0/15`);
  } else if (seconds && stop !== undefined && start <= stop && start + repeat > stop) {
    refuse(`second range "${clip(r.s.slice(at, r.i))}" is less than a second long; give its step, e.g. 00..01/0.5`);
  }
  if (!["", " ", ",", "-", "~", ":"].includes(r.peek())) unexpected(r);
  return { text: r.s.slice(at, r.i), start, stop, repeat };
}

/** A decimal number; seconds in microseconds, with up to 6 decimals (a 7th rounds, as systemd does). */
function number(r: Reader, seconds: boolean): number {
  const at = r.i;
  const m = /^\d+/.exec(r.rest());
  if (!m) unexpected(r);
  r.i += m[0].length;
  let value = Number(m[0]) * (seconds ? USEC : 1);
  if (seconds && r.peek() === "." && r.s[r.i + 1] !== ".") {
    const f = /^\.(\d+)/.exec(r.rest());
    if (!f) unexpected(r);
    r.i += f[0].length;
    value += Number(f[1].slice(0, 6).padEnd(6, "0")) + (f[1][6] >= "5" ? 1 : 0);
  }
  if (value > INT_MAX) refuse(`"${clip(r.s.slice(at, r.i))}" is larger than systemd reads (at most ${seconds ? INT_MAX / USEC : INT_MAX}); use a smaller number`);
  return value;
}

function twoDigitYear(item: Item): Item {
  // systemd reads 0-69 as 2000-2069 and 70-99 as 1970-1999.
  const year = (v: number) => (v < 70 ? v + 2000 : v < 100 ? v + 1900 : v);
  return { ...item, start: year(item.start), stop: item.stop === undefined ? undefined : year(item.stop) };
}

/** The field's range, after systemd's normalization: a range ends on its last step; a one-value range is that value. */
function check(field: Field, items: Item[] | undefined): void {
  const show = (v: number) => String(field === SECOND ? v / USEC : v);
  for (const it of items ?? []) {
    const text = clip(it.text);
    let { stop, repeat } = it;
    const start = it.start;
    if (stop !== undefined && stop > start && repeat > 0) stop -= (stop - start) % repeat;
    if (stop === start) [stop, repeat] = [undefined, 0];
    const { from, to } = field;
    const outside = (v: number) => v < from || v > to;
    if (outside(start) || (stop !== undefined && outside(stop))) refuse(`${field.name} "${text}" is outside ${show(from)}..${show(to)}; e.g. ${field.example}`);
    if (repeat > to - from) refuse(`${field.name} "${text}" repeats every ${show(repeat)}, more than ${show(from)}..${show(to)} spans; repeat at most every ${show(to - from)}`);
    if (stop !== undefined) {
      if (start + repeat > stop) {
        const [a, b] = it.text.split("/")[0].split("..").map(clip);
        refuse(`${field.name} range "${text}" runs backwards, and ranges do not wrap; write ${a}..${show(to)},${show(from)}..${b}`);
      }
    } else if (field === LAST_DAYS ? start - repeat < from : start + repeat > to) {
      const [sign, fix] = field === LAST_DAYS ? ["-", `${show(from + repeat)} or later`] : ["+", `${show(to - repeat)} or earlier`];
      refuse(`${field.name} "${text}" never repeats: ${show(start)} ${sign} ${show(repeat)} is outside ${show(from)}..${show(to)}; start at ${fix}, or repeat less often`);
    }
  }
}

/** Letters or a character where systemd wants something else: the words get their own message. */
function unexpected(r: Reader): never {
  const word = /^ *([A-Za-z]+(?:-[A-Za-z]+)*)/.exec(r.rest());
  if (word) refuse(wordProblem(word[1]));
  if (/^ +$/.test(r.rest())) refuse("it has more than one space before its time zone; use one");
  if (r.peek() === "") refuse(`it ends where a number is due, after "${clip(r.s)}"; ${FORM}`);
  refuse(`cannot read "${clip(r.rest())}"${r.i > 0 ? ` after "${clip(r.s.slice(0, r.i))}"` : ""}; ${FORM}`);
}

function wordProblem(whole: string): string {
  const word = clip(whole);
  const w = whole.toLowerCase();
  if (ALL_SHORTHANDS.includes(w)) return `"${word}" stands alone (with at most a time zone); write weekly, or a weekday and time such as Sun 03:00`;
  if (WEEKDAY_WORD.test(whole)) return `weekday "${word}" goes first, before the date and time; e.g. Sun 03:00`;
  if (w === "utc" || /^[A-Z]{3,}[A-Z0-9+-]*$/.test(whole)) return `"${word}" looks like a time zone, which goes last, after the event; e.g. Sun 03:00 ${word}`;
  return `"${word}" is neither a weekday nor one of ${CALENDAR_SHORTHANDS.join(", ")}; e.g. weekly or Sun 03:00`;
}

/** At most 40 characters of the user's text. */
function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 39)}…` : s;
}

class Reader {
  i = 0;
  constructor(readonly s: string) {}
  /** The next character, or "" at the end. */
  peek(): string {
    return this.s[this.i] ?? "";
  }
  rest(): string {
    return this.s.slice(this.i);
  }
  skipSpaces(): void {
    while (this.peek() === " ") this.i += 1;
  }
}
