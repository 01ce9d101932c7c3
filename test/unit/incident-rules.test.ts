// The pure parts of the incident rules: office hours in the organisation's time zone (with summer time), and the
// network an address belongs to for the "new network" rule.
import test from 'ava';
import { INCIDENT_DEFAULTS } from '@kluis/shared';
import { localTime, withinOfficeHours } from '../../server/dist/incidents/office-hours.js';
import { networkOf } from '../../server/dist/incidents/network.js';

test('office hours are judged in Brussels time, summer and winter', (t) => {
  // Tuesday 2026-07-14 05:30 UTC is 07:30 in Brussels (CEST, UTC+2): inside; 04:30 UTC is 06:30: outside.
  t.deepEqual(localTime(Date.parse('2026-07-14T05:30:00Z'), 'Europe/Brussels'), { weekday: 2, minutes: 7 * 60 + 30 });
  t.true(withinOfficeHours(Date.parse('2026-07-14T05:30:00Z'), INCIDENT_DEFAULTS));
  t.false(withinOfficeHours(Date.parse('2026-07-14T04:30:00Z'), INCIDENT_DEFAULTS));
  // Tuesday 2026-01-13 17:59 UTC is 18:59 (CET, UTC+1): inside; 18:00 UTC is 19:00: outside (the end is exclusive).
  t.true(withinOfficeHours(Date.parse('2026-01-13T17:59:00Z'), INCIDENT_DEFAULTS));
  t.false(withinOfficeHours(Date.parse('2026-01-13T18:00:00Z'), INCIDENT_DEFAULTS));
  // Saturday noon is outside; so is Friday 23:30 UTC, Saturday 00:30 in Brussels.
  t.false(withinOfficeHours(Date.parse('2026-01-17T11:00:00Z'), INCIDENT_DEFAULTS));
  t.false(withinOfficeHours(Date.parse('2026-01-16T23:30:00Z'), { ...INCIDENT_DEFAULTS, officeEnd: '23:59' }));
  // Another zone, and a night shift that crosses midnight.
  t.false(withinOfficeHours(Date.parse('2026-01-13T08:00:00Z'), { ...INCIDENT_DEFAULTS, timeZone: 'America/New_York' }));
  const night = { ...INCIDENT_DEFAULTS, officeStart: '22:00', officeEnd: '06:00', officeDays: [1, 2, 3, 4, 5, 6, 7] };
  t.true(withinOfficeHours(Date.parse('2026-01-13T23:30:00Z'), night));
  t.true(withinOfficeHours(Date.parse('2026-01-13T03:00:00Z'), night));
  t.false(withinOfficeHours(Date.parse('2026-01-13T12:00:00Z'), night));
});

test('networks: IPv4 /24, IPv6 /48, IPv4-mapped addresses as IPv4, anything else none', (t) => {
  t.is(networkOf('198.51.100.7'), '198.51.100.0/24');
  t.is(networkOf('::ffff:198.51.100.7'), '198.51.100.0/24');
  t.is(networkOf('2001:db8:12:34::1'), '2001:db8:12::/48');
  t.is(networkOf('2001:0db8:0012:ffff:1:2:3:4'), '2001:db8:12::/48');
  t.is(networkOf('2001:db8::1'), '2001:db8:0::/48');
  t.is(networkOf('::1'), '0:0:0::/48');
  t.is(networkOf('not an address'), null);
  t.is(networkOf(null), null);
});
