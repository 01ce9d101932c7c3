// Versions and restore (issue 19 item 3): a file's versions, newest first (versions:list), and "Restore" on an older
// one (versions:restore: main makes a new version with that content; the folder's engine brings it down).
import type { Response } from '../../desktop/src/electron/ipc/contract.js';
import { check, invoke } from './bridge.js';
import { formatBytes, formatDateTime, t } from './i18n.js';
import { announce, busy, el, errorText, field, form, input, modal, submit } from './ui.js';

type Version = Response<'versions:list'>['versions'][number];

export function openVersions(folderId: string, path: string): Promise<void> {
  return modal('versions', t('versions.title'), (body) => {
    const file = field('versions-path', 'versions.path', input('text', { spellcheck: 'false' }));
    file.input.value = path;
    const list = el('ul', { class: 'list', id: 'versions-list' });
    const problem = el('p', { class: 'problem', id: 'versions-problem', role: 'alert' });
    const go = submit('versions.show', 'versions-submit', 'secondary');
    const load = async (): Promise<void> => {
      file.problem(null);
      problem.textContent = '';
      const request = { folderId, path: file.input.value.trim() };
      const ok = check('versions:list', request);
      if (!ok.ok) return void (file.problem(t('err.field', { message: ok.message })), file.input.focus());
      const r = await busy(go, () => invoke('versions:list', request));
      if (!r.ok) {
        list.replaceChildren();
        problem.textContent = errorText(r.error);
        return;
      }
      show(r.value.versions, request.path);
    };
    const show = (versions: Version[], rel: string): void => {
      if (versions.length === 0) return void list.replaceChildren(el('li', { class: 'empty' }, t('versions.none')));
      list.replaceChildren(...versions.map((v, i) => {
        const li = el('li', { class: 'item', id: `version-${i}` });
        const text = el('div');
        text.append(el('strong', {}, formatDateTime(v.at)), el('span', { class: 'meta' }, t('versions.by', { size: formatBytes(v.size), author: v.author })));
        li.append(text);
        if (v.current) li.append(el('span', { class: 'badge' }, t('versions.current')));
        else if (v.deleted) li.append(el('span', { class: 'badge muted' }, t('versions.deleted')));
        else {
          const b = el('button', { type: 'button', class: 'small', id: `version-${i}-restore` }, t('versions.restore')) as HTMLButtonElement;
          b.addEventListener('click', async () => {
            const r = await busy(b, () => invoke('versions:restore', { folderId, path: rel, versionId: v.versionId }));
            if (!r.ok) return void (problem.textContent = r.error.code === 'conflict' ? t('versions.conflict') : errorText(r.error));
            announce(t('versions.restored'));
            problem.textContent = '';
            list.before(el('p', { class: 'ok', id: 'versions-done', role: 'status' }, t('versions.restored')));
            await load();
          });
          li.append(b);
        }
        return li;
      }));
    };
    const f = form('versions-form', load);
    f.append(file.wrap, go);
    body.append(f, problem, list);
    if (path) void load();
  });
}
