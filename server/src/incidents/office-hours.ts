// Whether a moment falls inside an organisation's office hours, in its time zone (Europe/Brussels by default, with
// its summer time): the "admin acting outside office hours" rule.
import type { IncidentSettings } from '@kluis/shared';

const WEEKDAYS: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };
const formats = new Map<string, Intl.DateTimeFormat>();

/** ISO weekday (1 Monday … 7 Sunday) and minutes since local midnight of `ms` in `timeZone`. */
export function localTime(ms: number, timeZone: string): { weekday: number; minutes: number } {
  let f = formats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', { timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formats.set(timeZone, f);
  }
  const parts = Object.fromEntries(f.formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  return { weekday: WEEKDAYS[parts.weekday!] ?? 0, minutes: Number(parts.hour) * 60 + Number(parts.minute) };
}

const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** Inside the office hours: a working day and officeStart <= time < officeEnd (a window may cross midnight). */
export function withinOfficeHours(ms: number, s: Pick<IncidentSettings, 'timeZone' | 'officeStart' | 'officeEnd' | 'officeDays'>): boolean {
  const { weekday, minutes } = localTime(ms, s.timeZone);
  if (!s.officeDays.includes(weekday)) return false;
  const start = minutesOf(s.officeStart);
  const end = minutesOf(s.officeEnd);
  return start <= end ? minutes >= start && minutes < end : minutes >= start || minutes < end;
}
