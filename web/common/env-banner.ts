// The environment banner of every page a non-production server serves (issue 18 item 4): the server marks the page
// (`<html data-kluis-env="acceptance">`, server/src/routes/web.ts) and this module shows a calm strip above it naming
// the environment, in the page's language. Production pages carry no mark and get no banner. Pages call
// renderEnvBanner(lang) at start and again whenever their language changes; style: env-banner.css.

export type BannerLang = 'nl' | 'fr' | 'en';
type Env = 'development' | 'test' | 'acceptance';

const TEXT: Record<BannerLang, Record<Env, string> & { note: string }> = {
  nl: { development: 'Ontwikkelomgeving', test: 'Testomgeving', acceptance: 'Acceptatieomgeving', note: 'Niet de echte dienst: alleen om te testen.' },
  fr: { development: 'Environnement de développement', test: 'Environnement de test', acceptance: "Environnement d'acceptation", note: 'Pas le service réel : uniquement pour des essais.' },
  en: { development: 'Development environment', test: 'Test environment', acceptance: 'Acceptance environment', note: 'Not the live service: for testing only.' },
};

function pageEnv(): Env | null {
  const env = document.documentElement.dataset.kluisEnv;
  return env === 'development' || env === 'test' || env === 'acceptance' ? env : null;
}

/** Shows (or updates, in `lang`) the banner when the server marked the page with a non-production environment. */
export function renderEnvBanner(lang: BannerLang): void {
  const env = pageEnv();
  if (!env) return;
  let banner = document.getElementById('env-banner');
  if (!banner) {
    banner = document.createElement('div');
    banner.id = 'env-banner';
    banner.className = 'env-banner';
    banner.dataset.env = env;
    // A note, not an alert: it is always there and nothing went wrong.
    banner.setAttribute('role', 'note');
    document.body.prepend(banner);
  }
  const name = document.createElement('strong');
  name.textContent = TEXT[lang][env];
  banner.lang = lang;
  banner.replaceChildren(name, document.createTextNode(` · ${TEXT[lang].note}`));
}
