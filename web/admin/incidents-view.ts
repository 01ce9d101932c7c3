// The Incidents view (docs/admin.md "Incidents"; docs/api.md "Incidents"): the organisation's incidents with their
// severity and, for a suspected data leak, the time left to report it; an incident's detail with its facts, its
// timeline of audit entries (people named by e-mail), its notes, and the acts: acknowledge, escalate, mark a suspected
// leak, close, add a note. Leak and close are confirmed first. The countdowns tick every 30 s while the view is open.
import { IncidentDetail, IncidentList, timeToDeadline, type Incident } from '@kluis/shared';
import { api } from './api.js';
import { ask } from './dialog.js';
import { formatDateTime, formatNumber, t, type Key } from './i18n.js';
import { button, el } from '../common/ui.js';
import { attempt, email, loadPeople, note, table, type Me } from './views.js';

/** "12 h 5 min left", or how long ago the deadline passed. */
function timeLeft(deadlineAt: number, now = Date.now()): string {
  const { hours, minutes, late } = timeToDeadline(deadlineAt, now);
  return t(late ? 'deadline.passed' : 'deadline.left', { hours: String(hours), minutes: String(minutes) });
}

/** A countdown that keeps itself up to date while it is in the page. */
function countdown(deadlineAt: number): HTMLElement {
  const span = el('span', { class: 'countdown', 'data-late': String(deadlineAt < Date.now()) }, timeLeft(deadlineAt));
  const timer = setInterval(() => {
    if (!span.isConnected) return clearInterval(timer);
    span.textContent = timeLeft(deadlineAt);
    span.dataset.late = String(deadlineAt < Date.now());
  }, 30_000);
  return span;
}

const severity = (i: Incident) => el('span', { class: `severity severity-${i.severity}` }, t(`severity.${i.severity}` as Key));
const status = (i: Incident) => el('span', { class: `istatus istatus-${i.status}` }, t(`istatus.${i.status}` as Key));

function deadlineCell(i: Incident): HTMLElement {
  if (i.deadlineAt === null) return el('span', { class: 'meta' }, t('deadline.none'));
  const box = el('span', { class: 'deadline' }, formatDateTime(i.deadlineAt));
  box.append(el('br'), countdown(i.deadlineAt));
  return box;
}

export async function incidents(me: Me): Promise<HTMLElement[]> {
  const holder = el('div', { id: 'incidents-view' });
  await showList(me, holder, false);
  return [el('p', { class: 'lead' }, t('incidents.intro')), holder];
}

async function showList(me: Me, holder: HTMLElement, all: boolean): Promise<void> {
  const list = (await api('GET', `/api/v1/orgs/${me.orgId}/incidents${all ? '?status=all' : ''}`, undefined, IncidentList)).incidents;
  const rows = list.map((i) => [
    severity(i), el('span', {}, t(`rule.${i.rule}` as Key)), status(i), formatDateTime(i.openedAt), deadlineCell(i),
    i.ownerEmail ? email(i.ownerEmail) : el('span', { class: 'meta' }, '—'),
    button(t('incidents.open'), () => void open(me, holder, i.incidentId), 'small', `open-${i.incidentId}`),
  ]);
  const toggle = button(t(all ? 'incidents.hideClosed' : 'incidents.showClosed'), () => void showList(me, holder, !all).catch(failed), 'secondary', 'toggle-closed');
  holder.replaceChildren(
    table('incidents', t(all ? 'incidents.captionAll' : 'incidents.caption', { org: me.orgName }), ['col.severity', 'col.incident', 'col.status', 'col.opened', 'col.deadline', 'col.ownerShort', 'col.actions'], rows),
    el('div', { class: 'toolbar after' }),
  );
  holder.querySelector('.toolbar')!.append(toggle);
}

function failed(err: unknown): void {
  note(t('error.act', { message: err instanceof Error ? err.message : String(err) }));
}

async function open(me: Me, holder: HTMLElement, incidentId: string): Promise<void> {
  const [detail, people] = await Promise.all([
    api('GET', `/api/v1/orgs/${me.orgId}/incidents/${incidentId}`, undefined, IncidentDetail),
    loadPeople(me).catch(() => []),
  ]);
  const emails = new Map(people.map((p) => [p.userId, p.email]));
  const i = detail.incident;
  const again = () => void open(me, holder, incidentId).catch(failed);
  const act = async (path: string, done: Key, json: unknown = {}) => {
    if (await attempt(api('POST', `/api/v1/orgs/${me.orgId}/incidents/${incidentId}/${path}`, json))) {
      again();
      note(t(done));
    }
  };

  const head = el('div', { class: 'incident-head' });
  head.append(
    el('h2', { id: 'incident-title', tabindex: '-1' }, t(`rule.${i.rule}` as Key)),
    el('p', { class: 'facts' }, t('incident.facts', { severity: t(`severity.${i.severity}` as Key), status: t(`istatus.${i.status}` as Key), date: formatDateTime(i.openedAt), entries: formatNumber(i.entries) })),
    el('p', {}, i.ownerEmail ? t('incident.owner', { email: i.ownerEmail }) : t('incident.noOwner')),
    el('p', { class: 'meta' }, t('incident.subject', { subject: emails.get(i.subject) ?? i.subject })),
  );
  head.dataset.severity = i.severity;
  if (i.deadlineAt !== null) {
    const leak = el('p', { class: 'leak', id: 'leak-deadline', role: 'status' }, t('incident.leak', { date: formatDateTime(i.deadlineAt) }));
    leak.append(' ', countdown(i.deadlineAt));
    head.append(leak);
  }

  const acts = el('div', { class: 'actions incident-acts' });
  if (i.status === 'open') acts.append(button(t('incident.ack'), () => void act('ack', 'incident.done.ack'), 'small', 'incident-ack'));
  if (i.status !== 'closed' && i.severity !== 'very_high') acts.append(button(t('incident.escalate'), () => void act('escalate', 'incident.done.escalate'), 'small', 'incident-escalate'));
  if (i.status !== 'closed' && i.leakAt === null) {
    acts.append(button(t('incident.markLeak'), () => void ask({ title: t('incident.leak.title'), lines: [t('incident.leak.what')], confirm: t('incident.markLeak'), danger: true })
      .then((ok) => (ok === null ? undefined : act('leak', 'incident.done.leak'))), 'danger', 'incident-leak'));
  }
  if (i.status !== 'closed') {
    acts.append(button(t('incident.close'), () => void ask({ title: t('incident.close.title'), lines: [t('incident.close.what')], confirm: t('incident.close') })
      .then((ok) => (ok === null ? undefined : act('close', 'incident.done.close'))), 'small', 'incident-close'));
  }

  const notes = el('section', { class: 'section notes', 'aria-labelledby': 'notes-title' });
  notes.append(el('h3', { id: 'notes-title' }, t('incident.notes')));
  const noteList = el('ul', { class: 'plain note-list', id: 'notes' });
  for (const n of detail.notes) {
    const li = el('li', {});
    li.append(el('span', { class: 'meta block' }, `${formatDateTime(n.createdAt)} · ${n.authorEmail ?? t('incident.kluis')}`), el('span', { class: 'note-text' }, n.text));
    noteList.append(li);
  }
  notes.append(detail.notes.length ? noteList : el('p', { class: 'meta' }, t('incident.noNotes')));
  const form = el('form', { class: 'note-form', novalidate: '' });
  const area = el('textarea', { id: 'note-text', rows: '3', maxlength: '4000' }) as HTMLTextAreaElement;
  form.append(el('label', { for: 'note-text' }, t('incident.noteLabel')), area, el('button', { type: 'submit', class: 'primary inline', id: 'note-add' }, t('incident.addNote')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!area.value.trim()) return note(t('incident.noteEmpty'));
    void act('notes', 'incident.done.note', { text: area.value.trim() });
  });
  notes.append(form);

  const rows = detail.timeline.map((e) => [
    formatDateTime(e.ts), e.action, el('span', { class: `outcome outcome-${e.outcome}` }, t(`outcome.${e.outcome}` as Key)),
    e.actorUserId ? email(emails.get(e.actorUserId) ?? e.actorUserId) : el('span', { class: 'meta' }, '—'), e.ip ?? '—',
    e.details ? el('span', { class: 'details' }, Object.entries(e.details).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' · ')) : '',
  ]);
  const timeline = el('section', { class: 'section', 'aria-labelledby': 'timeline-title' });
  timeline.append(el('h3', { id: 'timeline-title' }, t('incident.timeline')), table('timeline', t('incident.timelineCaption'), ['col.time', 'col.action', 'col.outcome', 'col.actor', 'col.ip', 'col.facts'], rows));

  const back = button(t('incidents.back'), () => void showList(me, holder, false).catch(failed), 'secondary', 'incidents-back');
  back.classList.add('inline');
  holder.replaceChildren(el('div', { class: 'toolbar' }), el('article', { class: 'incident', id: 'incident' }));
  holder.querySelector('.toolbar')!.append(back);
  holder.querySelector('#incident')!.append(head, acts, notes, timeline);
  document.getElementById('incident-title')?.focus({ preventScroll: true });
}
