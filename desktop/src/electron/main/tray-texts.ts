// The tray's texts in the three languages of the app (the renderer has its own; these are the few main shows).
import type { Settings } from '../ipc/contract.js';
import type { TrayTexts } from './app.js';

export const TRAY_TEXTS: Record<Settings['language'], TrayTexts> = {
  nl: {
    upToDate: 'Bijgewerkt', syncing: (n) => `Synchroniseren: ${n} bestand(en)`, paused: 'Gepauzeerd', error: 'Fout', offline: 'Offline',
    openFolder: 'Map openen', pause: 'Pauzeren', resume: 'Hervatten', openApp: 'Kluis openen', quit: 'Afsluiten',
  },
  fr: {
    upToDate: 'À jour', syncing: (n) => `Synchronisation : ${n} fichier(s)`, paused: 'En pause', error: 'Erreur', offline: 'Hors ligne',
    openFolder: 'Ouvrir le dossier', pause: 'Mettre en pause', resume: 'Reprendre', openApp: 'Ouvrir Kluis', quit: 'Quitter',
  },
  en: {
    upToDate: 'Up to date', syncing: (n) => `Syncing ${n} file(s)`, paused: 'Paused', error: 'Error', offline: 'Offline',
    openFolder: 'Open folder', pause: 'Pause', resume: 'Resume', openApp: 'Open Kluis', quit: 'Quit',
  },
};
