// Every string of the link page, in Dutch, French and English (issue 17 item 4). The language comes from the
// browser (navigator.languages) unless the visitor picks one with the switch; the choice is kept in localStorage.
// Placeholders are {name}; plurals are chosen by the caller (one/other keys), which is enough for these three.

export type Lang = 'nl' | 'fr' | 'en';
export const LANGS: readonly Lang[] = ['nl', 'fr', 'en'];

const en = {
  'lang.name': 'English',
  'lang.switch': 'Language',
  'brand.tagline': 'End-to-end encrypted file sharing',
  'loading': 'Opening the link…',
  'shared.title': 'A file was shared with you',
  'expires': 'Available until {date}',
  'downloads.one': '1 download left',
  'downloads.other': '{n} downloads left',
  'downloads.unlimited': 'No download limit',
  'password.intro': 'This link is protected with a password. The sender gives it to you separately.',
  'password.label': 'Password',
  'password.show': 'Show password',
  'password.submit': 'Open',
  'password.empty': 'Type the password first.',
  'password.checking': 'Checking the password… This can take a few seconds on a phone.',
  'password.wrong': 'That password is not right. Check it and try again.',
  'open.submit': 'Show the file',
  'open.checking': 'Opening the file…',
  'file.size': 'Size',
  'file.name': 'Name',
  'download.button': 'Download',
  'download.again': 'Download again',
  'download.progress': 'Downloading and decrypting… {pct}% ({done} of {total})',
  'download.verifying': 'Checking the whole file…',
  'download.done': 'Saved: {name}. The file was decrypted on this device and checked against what the sender shared.',
  'download.cancelled': 'Saving was cancelled. Nothing was downloaded.',
  'download.blobOnly': 'Your browser can only save files up to {limit} from a web page, and this file is {size}. Open the link in a recent Chrome, Edge or Firefox on a computer.',
  'privacy': 'The file is decrypted in your browser. The server never sees its content, its name or the key in the link.',
  'err.missing.title': 'This link is incomplete',
  'err.missing.text': 'The part of the link after the # is missing or damaged. Copy the whole link from the message you received and open it again.',
  'err.unknown.title': 'This link does not exist',
  'err.unknown.text': 'Check that you copied the whole link. If it is right, the link may have been deleted.',
  'err.expired.title': 'This link has expired',
  'err.expired.text': 'The sender made it available for a limited time. Ask them for a new link.',
  'err.revoked.title': 'This link was withdrawn',
  'err.revoked.text': 'The sender withdrew this link. Ask them if you still need the file.',
  'err.exhausted.title': 'This link has been used up',
  'err.exhausted.text': 'It could be downloaded a limited number of times, and that number has been reached. Ask the sender for a new link.',
  'err.throttled.title': 'Too many wrong attempts',
  'err.throttled.text': 'To protect the file, this link is locked for a while. Try again in {minutes}.',
  'err.tampered.title': 'The file was tampered with',
  'err.tampered.text': 'What the server sent does not match what the sender shared, so the download was stopped and nothing was kept. Tell the sender.',
  'err.damaged.title': 'This link is damaged',
  'err.damaged.text': 'The key in the link does not open the file. Copy the whole link again from the message you received.',
  'err.network.title': 'The connection was lost',
  'err.network.text': 'Check your internet connection, then try again. A download continues where it stopped.',
  'err.session.title': 'This download session has ended',
  'err.session.text': 'Open the link again to start a new download.',
  'err.server.title': 'Something went wrong',
  'err.server.text': 'The server could not answer. Try again in a moment.',
  'err.browser.title': 'This browser cannot open the link',
  'err.browser.text': 'Use a recent version of Firefox, Chrome, Edge or Safari.',
  'retry': 'Try again',
  'reload': 'Open the link again',
  'folder.shared': 'A folder was shared with you',
  'folder.privacy': 'The files are decrypted in your browser. The server never sees their content, their names or the key in the link.',
  'folder.open': 'Show the files',
  'folder.files.one': '1 file',
  'folder.files.other': '{n} files',
  'folder.total': 'Total size',
  'folder.contents': 'Files in this folder',
  'folder.all': 'Download all (ZIP)',
  'folder.one': 'Download {name}',
  'folder.allNote': 'The ZIP is put together on this device as the files are decrypted; nothing is compressed.',
  'folder.doneAll': 'Saved: {name}. Every file was decrypted on this device and checked against what the sender shared.',
  'minutes.one': '1 minute',
  'minutes.other': '{n} minutes',
};

export type Key = keyof typeof en;

const nl: Record<Key, string> = {
  'lang.name': 'Nederlands',
  'lang.switch': 'Taal',
  'brand.tagline': 'Bestanden delen, end-to-end versleuteld',
  'loading': 'De link wordt geopend…',
  'shared.title': 'Er werd een bestand met u gedeeld',
  'expires': 'Beschikbaar tot {date}',
  'downloads.one': 'Nog 1 download',
  'downloads.other': 'Nog {n} downloads',
  'downloads.unlimited': 'Geen limiet op het aantal downloads',
  'password.intro': 'Deze link is beveiligd met een wachtwoord. De afzender bezorgt het u apart.',
  'password.label': 'Wachtwoord',
  'password.show': 'Wachtwoord tonen',
  'password.submit': 'Openen',
  'password.empty': 'Vul eerst het wachtwoord in.',
  'password.checking': 'Het wachtwoord wordt gecontroleerd… Op een telefoon kan dat enkele seconden duren.',
  'password.wrong': 'Dat wachtwoord klopt niet. Controleer het en probeer opnieuw.',
  'open.submit': 'Bestand tonen',
  'open.checking': 'Het bestand wordt geopend…',
  'file.size': 'Grootte',
  'file.name': 'Naam',
  'download.button': 'Downloaden',
  'download.again': 'Opnieuw downloaden',
  'download.progress': 'Downloaden en ontsleutelen… {pct}% ({done} van {total})',
  'download.verifying': 'Het volledige bestand wordt gecontroleerd…',
  'download.done': 'Bewaard: {name}. Het bestand werd op dit toestel ontsleuteld en gecontroleerd tegen wat de afzender deelde.',
  'download.cancelled': 'Het bewaren werd geannuleerd. Er werd niets gedownload.',
  'download.blobOnly': 'Uw browser kan vanaf een webpagina alleen bestanden tot {limit} bewaren, en dit bestand is {size}. Open de link in een recente Chrome, Edge of Firefox op een computer.',
  'privacy': 'Het bestand wordt in uw browser ontsleuteld. De server ziet nooit de inhoud, de naam of de sleutel in de link.',
  'err.missing.title': 'Deze link is onvolledig',
  'err.missing.text': 'Het deel van de link na het #-teken ontbreekt of is beschadigd. Kopieer de volledige link uit het bericht dat u kreeg en open hem opnieuw.',
  'err.unknown.title': 'Deze link bestaat niet',
  'err.unknown.text': 'Controleer of u de volledige link kopieerde. Als hij juist is, werd de link misschien verwijderd.',
  'err.expired.title': 'Deze link is verlopen',
  'err.expired.text': 'De afzender stelde het bestand een beperkte tijd beschikbaar. Vraag een nieuwe link.',
  'err.revoked.title': 'Deze link werd ingetrokken',
  'err.revoked.text': 'De afzender heeft deze link ingetrokken. Neem contact met hem of haar op als u het bestand nog nodig hebt.',
  'err.exhausted.title': 'Deze link is opgebruikt',
  'err.exhausted.text': 'Het bestand kon een beperkt aantal keren gedownload worden, en dat aantal is bereikt. Vraag de afzender een nieuwe link.',
  'err.throttled.title': 'Te veel foute pogingen',
  'err.throttled.text': 'Om het bestand te beschermen is deze link een tijdje vergrendeld. Probeer opnieuw over {minutes}.',
  'err.tampered.title': 'Er werd met het bestand geknoeid',
  'err.tampered.text': 'Wat de server stuurde, komt niet overeen met wat de afzender deelde. Daarom werd de download gestopt en niets bewaard. Verwittig de afzender.',
  'err.damaged.title': 'Deze link is beschadigd',
  'err.damaged.text': 'De sleutel in de link opent het bestand niet. Kopieer de volledige link opnieuw uit het bericht dat u kreeg.',
  'err.network.title': 'De verbinding is verbroken',
  'err.network.text': 'Controleer uw internetverbinding en probeer opnieuw. Een download gaat verder waar hij stopte.',
  'err.session.title': 'Deze downloadsessie is afgelopen',
  'err.session.text': 'Open de link opnieuw om een nieuwe download te starten.',
  'err.server.title': 'Er ging iets mis',
  'err.server.text': 'De server kon niet antwoorden. Probeer het zo meteen opnieuw.',
  'err.browser.title': 'Deze browser kan de link niet openen',
  'err.browser.text': 'Gebruik een recente versie van Firefox, Chrome, Edge of Safari.',
  'retry': 'Opnieuw proberen',
  'reload': 'Link opnieuw openen',
  'folder.shared': 'Er werd een map met u gedeeld',
  'folder.privacy': 'De bestanden worden in uw browser ontsleuteld. De server ziet nooit hun inhoud, hun namen of de sleutel in de link.',
  'folder.open': 'Bestanden tonen',
  'folder.files.one': '1 bestand',
  'folder.files.other': '{n} bestanden',
  'folder.total': 'Totale grootte',
  'folder.contents': 'Bestanden in deze map',
  'folder.all': 'Alles downloaden (ZIP)',
  'folder.one': '{name} downloaden',
  'folder.allNote': 'Het ZIP-bestand wordt op dit toestel samengesteld terwijl de bestanden ontsleuteld worden; er wordt niets gecomprimeerd.',
  'folder.doneAll': 'Bewaard: {name}. Elk bestand werd op dit toestel ontsleuteld en gecontroleerd tegen wat de afzender deelde.',
  'minutes.one': '1 minuut',
  'minutes.other': '{n} minuten',
};

const fr: Record<Key, string> = {
  'lang.name': 'Français',
  'lang.switch': 'Langue',
  'brand.tagline': 'Partage de fichiers chiffré de bout en bout',
  'loading': 'Ouverture du lien…',
  'shared.title': 'Un fichier a été partagé avec vous',
  'expires': 'Disponible jusqu’au {date}',
  'downloads.one': 'Encore 1 téléchargement',
  'downloads.other': 'Encore {n} téléchargements',
  'downloads.unlimited': 'Pas de limite de téléchargements',
  'password.intro': 'Ce lien est protégé par un mot de passe. L’expéditeur vous le communique séparément.',
  'password.label': 'Mot de passe',
  'password.show': 'Afficher le mot de passe',
  'password.submit': 'Ouvrir',
  'password.empty': 'Saisissez d’abord le mot de passe.',
  'password.checking': 'Vérification du mot de passe… Sur un téléphone, cela peut prendre quelques secondes.',
  'password.wrong': 'Ce mot de passe n’est pas correct. Vérifiez-le et réessayez.',
  'open.submit': 'Afficher le fichier',
  'open.checking': 'Ouverture du fichier…',
  'file.size': 'Taille',
  'file.name': 'Nom',
  'download.button': 'Télécharger',
  'download.again': 'Télécharger à nouveau',
  'download.progress': 'Téléchargement et déchiffrement… {pct} % ({done} sur {total})',
  'download.verifying': 'Vérification du fichier complet…',
  'download.done': 'Enregistré : {name}. Le fichier a été déchiffré sur cet appareil et vérifié par rapport à ce que l’expéditeur a partagé.',
  'download.cancelled': 'L’enregistrement a été annulé. Rien n’a été téléchargé.',
  'download.blobOnly': 'Votre navigateur ne peut enregistrer depuis une page web que des fichiers jusqu’à {limit}, et ce fichier fait {size}. Ouvrez le lien dans un Chrome, Edge ou Firefox récent sur un ordinateur.',
  'privacy': 'Le fichier est déchiffré dans votre navigateur. Le serveur ne voit jamais son contenu, son nom ni la clé du lien.',
  'err.missing.title': 'Ce lien est incomplet',
  'err.missing.text': 'La partie du lien après le # manque ou est endommagée. Copiez le lien complet depuis le message reçu et ouvrez-le à nouveau.',
  'err.unknown.title': 'Ce lien n’existe pas',
  'err.unknown.text': 'Vérifiez que vous avez copié le lien complet. S’il est correct, le lien a peut-être été supprimé.',
  'err.expired.title': 'Ce lien a expiré',
  'err.expired.text': 'L’expéditeur l’a rendu disponible pour une durée limitée. Demandez-lui un nouveau lien.',
  'err.revoked.title': 'Ce lien a été retiré',
  'err.revoked.text': 'L’expéditeur a retiré ce lien. Contactez-le si vous avez encore besoin du fichier.',
  'err.exhausted.title': 'Ce lien a été épuisé',
  'err.exhausted.text': 'Le fichier pouvait être téléchargé un nombre limité de fois, et ce nombre est atteint. Demandez un nouveau lien à l’expéditeur.',
  'err.throttled.title': 'Trop de tentatives erronées',
  'err.throttled.text': 'Pour protéger le fichier, ce lien est verrouillé pour un moment. Réessayez dans {minutes}.',
  'err.tampered.title': 'Le fichier a été altéré',
  'err.tampered.text': 'Ce que le serveur a envoyé ne correspond pas à ce que l’expéditeur a partagé : le téléchargement a été arrêté et rien n’a été conservé. Prévenez l’expéditeur.',
  'err.damaged.title': 'Ce lien est endommagé',
  'err.damaged.text': 'La clé du lien n’ouvre pas le fichier. Copiez à nouveau le lien complet depuis le message reçu.',
  'err.network.title': 'La connexion a été perdue',
  'err.network.text': 'Vérifiez votre connexion internet, puis réessayez. Un téléchargement reprend là où il s’est arrêté.',
  'err.session.title': 'Cette session de téléchargement est terminée',
  'err.session.text': 'Ouvrez le lien à nouveau pour recommencer le téléchargement.',
  'err.server.title': 'Un problème est survenu',
  'err.server.text': 'Le serveur n’a pas pu répondre. Réessayez dans un instant.',
  'err.browser.title': 'Ce navigateur ne peut pas ouvrir le lien',
  'err.browser.text': 'Utilisez une version récente de Firefox, Chrome, Edge ou Safari.',
  'retry': 'Réessayer',
  'reload': 'Rouvrir le lien',
  'folder.shared': 'Un dossier a été partagé avec vous',
  'folder.privacy': 'Les fichiers sont déchiffrés dans votre navigateur. Le serveur ne voit jamais leur contenu, leurs noms ni la clé du lien.',
  'folder.open': 'Afficher les fichiers',
  'folder.files.one': '1 fichier',
  'folder.files.other': '{n} fichiers',
  'folder.total': 'Taille totale',
  'folder.contents': 'Fichiers de ce dossier',
  'folder.all': 'Tout télécharger (ZIP)',
  'folder.one': 'Télécharger {name}',
  'folder.allNote': 'Le ZIP est assemblé sur cet appareil pendant le déchiffrement des fichiers ; rien n’est compressé.',
  'folder.doneAll': 'Enregistré : {name}. Chaque fichier a été déchiffré sur cet appareil et vérifié par rapport à ce que l’expéditeur a partagé.',
  'minutes.one': '1 minute',
  'minutes.other': '{n} minutes',
};

const TABLES: Record<Lang, Record<Key, string>> = { en, nl, fr };
const LOCALES: Record<Lang, string> = { nl: 'nl-BE', fr: 'fr-BE', en: 'en-GB' };
const STORE_KEY = 'kluis.lang';

let current: Lang = 'en';

/** The language to start in: a stored choice, else the first of the browser's languages we speak, else Dutch. */
export function initialLang(): Lang {
  try {
    const stored = localStorage.getItem(STORE_KEY);
    if (stored && (LANGS as string[]).includes(stored)) return stored as Lang;
  } catch {
    // storage blocked (private mode, policies): fall back to the browser's languages
  }
  for (const tag of navigator.languages ?? [navigator.language]) {
    const base = tag.toLowerCase().split('-')[0];
    if (base && (LANGS as string[]).includes(base)) return base as Lang;
  }
  return 'nl';
}

export function setLang(lang: Lang, remember = false): void {
  current = lang;
  document.documentElement.lang = lang;
  if (remember) {
    try {
      localStorage.setItem(STORE_KEY, lang);
    } catch {
      // not remembered; the switch still works for this visit
    }
  }
}

export function lang(): Lang {
  return current;
}

/** The string for `key` in the current language, with {placeholders} filled in. */
export function t(key: Key, vars: Record<string, string | number> = {}): string {
  return TABLES[current][key].replace(/\{(\w+)\}/g, (m, name: string) => (name in vars ? String(vars[name]) : m));
}

/** A count with its noun ("1 download left", "3 downloads left"). */
export function plural(base: 'downloads' | 'minutes' | 'folder.files', n: number): string {
  return t(n === 1 ? `${base}.one` : `${base}.other`, { n: formatNumber(n) });
}

export function formatNumber(n: number): string {
  return new Intl.NumberFormat(LOCALES[current]).format(n);
}

export function formatDate(ms: number): string {
  return new Intl.DateTimeFormat(LOCALES[current], { dateStyle: 'long', timeStyle: 'short' }).format(new Date(ms));
}

/** Bytes in binary units with the locale's decimal separator (1.5 MiB, 1,5 MiB). */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const digits = u === 0 || v >= 100 ? 0 : 1;
  return `${new Intl.NumberFormat(LOCALES[current], { maximumFractionDigits: digits }).format(v)} ${units[u]}`;
}
