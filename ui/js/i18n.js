// Every string a person reads comes from ui/i18n/<language>.json.
const catalogues = {};
let current = 'en';

export async function load(language) {
  if (!catalogues[language]) {
    const response = await fetch(`i18n/${language}.json`);
    catalogues[language] = await response.json();
  }
}

export async function use(language) {
  await load(language);
  current = language;
  document.documentElement.lang = language;
}

export function language() {
  return current;
}

// t('notice.locked_out', { until }) — {name} placeholders; dates formatted
// for the current language.
export function t(key, params = {}) {
  return tIn(current, key, params);
}

// A text in a language other than the current one (loaded beforehand).
export function tIn(language, key, params = {}) {
  const text = key.split('.').reduce((node, part) => (node ? node[part] : undefined), catalogues[language]);
  if (typeof text !== 'string') {
    console.warn(`missing text ${language}:${key}`);
    return key;
  }
  return text.replace(/\{(\w+)\}/g, (_, name) => format(params[name]));
}

export function format(value) {
  if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(value)) {
    return new Intl.DateTimeFormat(current, { dateStyle: 'full', timeStyle: 'short' }).format(new Date(value));
  }
  return value === undefined || value === null ? '' : String(value);
}
