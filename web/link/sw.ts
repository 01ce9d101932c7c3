// Service worker of the link page, registered only for the scope /s/assets/dl/ (save.ts): it answers a download
// navigation with a stream the page feeds chunk by chunk, so browsers without showSaveFilePicker still save a file of
// any size without holding it in memory. It sees only decrypted bytes the page already has; it fetches nothing.
const sw = globalThis as unknown as ServiceWorkerGlobalScope;

interface Pending {
  stream: ReadableStream<Uint8Array>;
  name: string;
  size: number;
}
const pending = new Map<string, Pending>();

sw.addEventListener('install', () => void sw.skipWaiting());
sw.addEventListener('activate', (e) => e.waitUntil(sw.clients.claim()));

sw.addEventListener('message', (e: ExtendableMessageEvent) => {
  const d = e.data as { type?: string; id?: string; name?: string; size?: number };
  const port = e.ports[0];
  if (d?.type !== 'kluis-stream' || !port || typeof d.id !== 'string' || !/^[0-9a-f]{32}$/.test(d.id)) return;
  let ctrl!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>(
    {
      start: (c) => void (ctrl = c),
      pull: () => port.postMessage({ type: 'pull' }),
      cancel: () => port.postMessage({ type: 'cancel' }),
    },
    { highWaterMark: 1 },
  );
  port.onmessage = (m: MessageEvent<{ type: string; bytes?: Uint8Array }>) => {
    if (m.data.type === 'chunk' && m.data.bytes) ctrl.enqueue(m.data.bytes);
    else if (m.data.type === 'close') ctrl.close();
    else if (m.data.type === 'abort') ctrl.error(new Error('download aborted: the file did not verify'));
  };
  pending.set(d.id, { stream, name: String(d.name ?? 'download'), size: Number(d.size ?? 0) });
  // Keeps the worker alive while the page prepares the navigation.
  e.waitUntil(new Promise((resolve) => setTimeout(resolve, 30_000)));
  port.postMessage({ type: 'ready' });
});

sw.addEventListener('fetch', (e: FetchEvent) => {
  const m = /^\/s\/assets\/dl\/([0-9a-f]{32})$/.exec(new URL(e.request.url).pathname);
  if (!m) return;
  const entry = pending.get(m[1]!);
  pending.delete(m[1]!);
  if (!entry) {
    e.respondWith(new Response('', { status: 404 }));
    return;
  }
  const ascii = entry.name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  e.respondWith(
    new Response(entry.stream, {
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(entry.size),
        'content-disposition': `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(entry.name)}`,
        'x-content-type-options': 'nosniff',
      },
    }),
  );
});
