/**
 * nixGc.schedule becomes nix-gc.timer's OnCalendar on every host: synth must
 * refuse exactly the events systemd refuses. Each value's verdict is checked
 * twice: synth's (as infra.json is parsed) and `systemd-analyze calendar`'s,
 * against the same table, so the two agree value by value.
 */
import { execFileSync } from "node:child_process";
import { baseSettings, settingsProblems } from "./helpers/settings.js";
import { describeWithTools } from "./helpers/tools.js";

/** [event, whether systemd 252 takes it]. */
const EVENTS: [string, boolean][] = [
  // shorthands, any case, with a time zone
  ["weekly", true],
  ["WEEKLY", true],
  ["semiannually", true],
  ["semi-annually", true],
  ["anually", true],
  ["weekly UTC", true],
  ["weekly Europe/Berlin", true],
  // weekdays: lists, ranges that do not wrap, a trailing comma
  ["Sun", true],
  ["Sun 03:00", true],
  ["sun 3:00", true],
  ["Monday 4:00", true],
  ["Mon..Fri 02:00", true],
  ["Mon-Fri 03:00", true],
  ["Mon..Wed,Fri 03:00", true],
  ["Mon, 03:00", true],
  ["Thu..Tue", false],
  ["Sun..Mon 03:00", false],
  ["Mon..Wed..Fri", false],
  ["Mon.. 03:00", false],
  ["Mon.Tue", false],
  ["Su 03:00", false],
  ["Tues 03:00", false],
  ["Sun03:00", false],
  ["03:00 Sun", false],
  // dates: [year-]month-day, ~ counting back from the month's end
  ["Sat,Sun *-*-* 03:15:00", true],
  ["Thu,Fri 2012-*-1,5 11:12:13", true],
  ["*-*~01 03:00", true],
  ["*-02~03", true],
  ["*-*~1..28", true],
  ["24-01-01", true],
  ["2024..2030/2-01-01", true],
  ["2024-13-01", false],
  ["*-0-1", false],
  ["*-*-32", false],
  ["*-*~29", false],
  ["*-*~1/2", false],
  ["1969-01-01", false],
  ["2200-01-01", false],
  ["2024~01-01", false],
  ["~", false],
  // times: ranges, lists, repetitions, fractional seconds
  ["03:00", true],
  ["*:0/15", true],
  ["*:0/59", true],
  ["0..23/2:00", true],
  ["23..23:00", true],
  ["0..1/5:00", true],
  ["Sun 03:00:59.999999", true],
  ["Sun 03:00:00.1234567", true],
  ["Sun 03:00:01..05/2", true],
  ["*:*:*", true],
  ["Sun 25:00", false],
  ["Sun 03:61", false],
  ["Sun 03:00:60", false],
  ["Sun 03:00:59.9999995", false],
  ["Sun 03:00:01..01", false],
  ["22..02:00", false],
  ["*:*/15", false],
  ["*:0/60", false],
  ["*:50/15", false],
  ["*:0/0", false],
  ["*:0..59/2147483647", true],
  ["*:0..59/2147483648", false],
  ["Sun 03:00:00..59/2147.483647", true],
  ["Sun 03:00:00..59/2147.483648", false],
  ["03", false],
  ["*", false],
  ["Sun 03:00.5", false],
  // time zones: UTC in any case, tz database names; no offsets
  ["Sun 03:00 UTC", true],
  ["Sun 03:00 Utc", true],
  ["Sun 03:00 EST5EDT", true],
  ["Sun 03:00 Etc/GMT+1", true],
  ["Sun 3:00 Etc/UTC", true],
  ["Sun 03:00 America/Argentina/Buenos_Aires", true],
  ["Sun 03:00 posix/Europe/Berlin", true],
  ["Sun 03:00 CET", true],
  ["Sun 03:00 ROK", true],
  ["Sun 03:00 PST", false],
  ["Sun 03:00 CEST", false],
  ["Sun 03:00 Z", false],
  ["Sat 03:00 +0100", false],
  ["Sun 03:00 europe/berlin", false],
  ["Sun 03:00  UTC", false],
  ["UTC", false],
  // @ seconds since the epoch, up to 2199
  ["@1700000000", true],
  ["@7258118400", false],
  // words systemd does not know, and what stands alone
  ["weeky", false],
  ["sometimes", false],
  ["03:00 daily", false],
  ["Sun daily", false],
  ["weekly ", false],
];

/** Shaped like a tz database name but absent from tzdata: synth cannot know; the host's tzdata decides. */
const UNKNOWN_ZONES = ["Sun 03:00 Mars/Olympus", "Sun 03:00 Japan/Kyoto"];

function synthTakes(schedule: string): boolean {
  return settingsProblems(baseSettings({ nixGc: { keepGenerations: 5, schedule } })).length === 0;
}

describe("nixGc.schedule at synth", () => {
  test.each(EVENTS)("%j: taken %s", (schedule, ok) => {
    expect(synthTakes(schedule)).toBe(ok);
  });

  test("a time zone is taken by its shape: one synth cannot find is left to the host's tzdata", () => {
    expect(UNKNOWN_ZONES.filter((e) => !synthTakes(e))).toEqual([]);
  });

  test.each([
    ["Sun 25:00", 'hour "25" is outside 0..23; e.g. Sun 23:00'],
    ["Sun 03:61", 'minute "61" is outside 0..59; e.g. Sun 03:59'],
    ["2024-13-01", 'month "13" is outside 1..12; e.g. *-12-01'],
    ["Thu..Tue", 'weekday range "Thu..Tue" wraps past Sunday, and ranges run Monday to Sunday; write Thu..Sun,Mon..Tue'],
    ["22..02:00", 'hour range "22..02" runs backwards, and ranges do not wrap; write 22..23,0..02'],
    ["Sun 03:00:05..01", 'second range "05..01" runs backwards, and ranges do not wrap; write 05..59.999999,0..01'],
    ["*:50/15", 'minute "50/15" never repeats: 50 + 15 is outside 0..59; start at 44 or earlier, or repeat less often'],
    ["*:*/15", '"*/15": * takes no repetition; write 0/N (from 0, every N), e.g. *:0/15'],
    ["Sun 03:00 PST", '"PST" is not a tz database name (systemd takes an abbreviation only for the host\'s own zone); name the zone, e.g. Sun 03:00 America/Los_Angeles'],
    ["Sat 03:00 +0100", '"+0100" is a UTC offset, which systemd does not take; name a time zone instead, e.g. Sun 03:00 Europe/Berlin or Sun 03:00 UTC'],
    ["~", 'cannot read "~"; the form is [weekdays] [[year-]month-day] [hour:minute[:second]] [time zone], e.g. Sun *-*-* 03:00 UTC'],
    ["03:00 daily", '"daily" stands alone (with at most a time zone); write weekly, or a weekday and time such as Sun 03:00'],
    ["03:00 Sun", 'weekday "Sun" goes first, before the date and time; e.g. Sun 03:00'],
  ])("%j is refused on one line naming the key, the part and the fix", (schedule, problem) => {
    expect(settingsProblems(baseSettings({ nixGc: { keepGenerations: 5, schedule } }))).toEqual([
      `nixGc.schedule: is not a systemd calendar event: ${problem} (got ${JSON.stringify(schedule)})`,
    ]);
  });

  test("the problem quotes at most 40 characters of a long value's parts", () => {
    const [line] = settingsProblems(baseSettings({ nixGc: { keepGenerations: 5, schedule: `Sun ${"x".repeat(5000)}` } }));
    expect(line.split(" (got ")[0]).toBe(`nixGc.schedule: is not a systemd calendar event: "${"x".repeat(39)}…" is neither a weekday nor one of minutely, hourly, daily, weekly, monthly, yearly, annually, quarterly, semiannually; e.g. weekly or Sun 03:00`);
    expect(line.length).toBeLessThan(1000);
  });

  test("a host's own schedule is checked the same way, under its key", () => {
    const raw = baseSettings();
    (raw.hosts!.vm as Record<string, unknown>).nixGc = { schedule: "Sun 03:61" };
    expect(settingsProblems(raw)).toEqual(['hosts.vm.nixGc.schedule: is not a systemd calendar event: minute "61" is outside 0..59; e.g. Sun 03:59 (got "Sun 03:61")']);
  });
});

/** Whether `systemd-analyze calendar` takes `event`, in UTC (systemd also takes the local zone's abbreviations). */
function systemdTakes(event: string): boolean {
  try {
    execFileSync("systemd-analyze", ["calendar", event], { env: { ...process.env, TZ: "UTC" }, stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

describeWithTools(["systemd-analyze", "tzdata"], "nixGc.schedule in systemd-analyze calendar (the table's verdicts are systemd's)", () => {
  test.each(EVENTS)("%j: taken %s", (event, ok) => {
    expect(systemdTakes(event)).toBe(ok);
  });

  test("the zones synth takes by shape are indeed unknown to this machine's tzdata (the one divergence)", () => {
    expect(UNKNOWN_ZONES.filter(systemdTakes)).toEqual([]);
  });
});
