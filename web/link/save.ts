// Where a decrypted file goes, with memory that does not grow with the file (issue 17 item 4), best first:
//  1. the File System Access API (showSaveFilePicker: Chromium browsers on a computer): written straight to disk
//     through a swap file; abort() discards it, so a tampered file never appears under its name;
//  2. a service-worker stream (Firefox, Safari, Chromium on Android): the worker answers a download navigation
//     with a ReadableStream the page feeds one chunk at a time (sw.ts); abort() errors the stream, which the
//     browser shows as a failed download and deletes;
//  3. a Blob in memory, only up to BLOB_LIMIT (200 MiB): enough for most office documents and scans, and below what
//     a phone's browser keeps per tab without killing it (Safari on iOS starts reclaiming around 300–400 MiB).
export const BLOB_LIMIT = 200 * 1024 * 1024;

export interface Sink {
  readonly kind: 'fs-access' | 'service-worker' | 'blob';
  /** Takes the bytes over: the caller does not read or change them afterwards (they may be transferred). */
  write(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
  /** Drops what was written, as far as the API allows. */
  abort(): Promise<void>;
}

/** The visitor closed the save dialog. */
export class SaveCancelled extends Error {}
/** No streaming way to save and the file is above BLOB_LIMIT. */
export class TooLargeForBrowser extends Error {}

interface PickerWindow {
  showSaveFilePicker?: (o: { suggestedName: string }) => Promise<FileSystemFileHandle & { remove?: () => Promise<void> }>;
}

/** Must be called straight from the click handler: the picker needs the visitor's gesture. */
export async function openSink(name: string, size: number): Promise<Sink> {
  const picker = (window as PickerWindow).showSaveFilePicker;
  if (typeof picker === 'function') return fsAccessSink(picker, name);
  const sw = await serviceWorkerSink(name, size).catch(() => null);
  if (sw) return sw;
  if (size > BLOB_LIMIT) throw new TooLargeForBrowser();
  return blobSink(name);
}

async function fsAccessSink(picker: NonNullable<PickerWindow['showSaveFilePicker']>, name: string): Promise<Sink> {
  let handle: Awaited<ReturnType<typeof picker>>;
  try {
    handle = await picker.call(window, { suggestedName: name });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw new SaveCancelled();
    throw err;
  }
  const writable = await handle.createWritable();
  return {
    kind: 'fs-access',
    write: (bytes) => writable.write(bytes as Uint8Array<ArrayBuffer>),
    close: () => writable.close(),
    async abort() {
      await writable.abort().catch(() => undefined);
      // The picker may have created an empty file under the chosen name; remove() (Chromium) deletes it.
      await handle.remove?.().catch(() => undefined);
    },
  };
}

const SW_URL = '/s/assets/sw.js';
const SW_SCOPE = '/s/assets/dl/';

async function serviceWorkerSink(name: string, size: number): Promise<Sink | null> {
  if (!('serviceWorker' in navigator) || !navigator.serviceWorker) return null;
  const reg = await navigator.serviceWorker.register(SW_URL, { scope: SW_SCOPE });
  const worker = reg.active ?? (await activated(reg));
  const id = randomId();
  const channel = new MessageChannel();
  let wanted: (() => void) | null = null;
  let pulls = 0;
  let cancelled = false;
  const ready = new Promise<void>((resolve) => {
    channel.port1.onmessage = (m: MessageEvent<{ type: string }>) => {
      if (m.data.type === 'ready') resolve();
      if (m.data.type === 'pull') {
        pulls++;
        wanted?.();
      }
      if (m.data.type === 'cancel') {
        cancelled = true;
        wanted?.();
      }
    };
  });
  worker.postMessage({ type: 'kluis-stream', id, name, size }, [channel.port2]);
  await ready;
  // The download itself: a same-origin navigation that the worker answers with the stream (attachment).
  const a = document.createElement('a');
  a.href = SW_SCOPE + id;
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
  return {
    kind: 'service-worker',
    async write(bytes) {
      // Back-pressure: send a chunk only when the stream asked for one, so at most one chunk waits in the worker.
      while (pulls === 0 && !cancelled) await new Promise<void>((resolve) => (wanted = resolve));
      wanted = null;
      if (cancelled) throw new SaveCancelled();
      pulls--;
      // The bytes are the sink's from here (Sink.write): a buffer of their own moves to the worker without a copy.
      const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
      channel.port1.postMessage({ type: 'chunk', bytes: own }, [own.buffer]);
    },
    async close() {
      channel.port1.postMessage({ type: 'close' });
    },
    async abort() {
      channel.port1.postMessage({ type: 'abort' });
    },
  };
}

function activated(reg: ServiceWorkerRegistration): Promise<ServiceWorker> {
  return new Promise((resolve, reject) => {
    const w = reg.installing ?? reg.waiting;
    if (!w) return reject(new Error('no service worker'));
    const timer = setTimeout(() => reject(new Error('service worker did not start')), 10_000);
    w.addEventListener('statechange', () => {
      if (w.state === 'activated') {
        clearTimeout(timer);
        resolve(w);
      }
      if (w.state === 'redundant') reject(new Error('service worker failed'));
    });
  });
}

function blobSink(name: string): Sink {
  let parts: Uint8Array[] = [];
  return {
    kind: 'blob',
    async write(bytes) {
      parts.push(bytes);
    },
    async close() {
      const url = URL.createObjectURL(new Blob(parts as Uint8Array<ArrayBuffer>[], { type: 'application/octet-stream' }));
      parts = [];
      const a = document.createElement('a');
      a.href = url;
      a.download = name;
      document.body.append(a);
      a.click();
      a.remove();
      // Long enough for the browser to start copying the blob to disk, then let it go.
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    },
    async abort() {
      parts = [];
    },
  };
}

function randomId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
