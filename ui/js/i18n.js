// Every string a person reads comes from ui/i18n/<language>.json.
const catalogues = {};
let current = 'en';

export async function use(language) {
  if (!catalogues[language]) {
    const response = await fetch(`i18n/${language}.json`);
    catalogues[language] = await response.json();
  }
  current = language;
  document.documentElement.lang = language;
}

export function language() {
  return current;
}

// t('notice.locked_out', { until }) — {name} placeholders; dates formatted
// for the current language.
export function t(key, params = {}) {
  const text = key.split('.').reduce((node, part) => (node ? node[part] : undefined), catalogues[current]);
  if (typeof text !== 'string') {
    console.warn(`missing text ${current}:${key}`);
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
