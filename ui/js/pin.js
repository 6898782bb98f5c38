// What to say above a PIN prompt: whether the last PIN was wrong, and how
// many wrong PINs the key still takes (as the key reports it) when that is
// worth a warning. Null when there is nothing to say. `words` is where the
// catalogue keeps them: 'key' speaks to the key's owner at the kiosk,
// 'admin.stage' to IT staging a key for someone.
import { t } from './i18n.js';

const WARN_FROM = 3;

export function pinWarning(key, words = 'key') {
  const left = key.tries_left;
  if (left === 1) return key.wrong ? t(`${words}.wrong_pin_last`) : t(`${words}.last_try`);
  if (key.wrong) return typeof left === 'number' ? t(`${words}.wrong_pin_left`, { n: left }) : t(`${words}.wrong_pin`);
  if (typeof left === 'number' && left <= WARN_FROM) return t(`${words}.few_tries_left`, { n: left });
  return null;
}
