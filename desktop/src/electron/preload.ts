// The preload script of the app window. It runs sandboxed, so scripts/build-desktop-app.mjs bundles it into one
// CommonJS file (desktop/dist/app/preload.cjs) with `electron` left to Electron's own require.
import { contextBridge, ipcRenderer } from 'electron';
import { exposeBridge } from './preload-api.js';

exposeBridge(contextBridge, ipcRenderer);
