// The one way the UI talks to the backend. Errors come back as
// { code, params }; messages are looked up by code in the i18n files.
export function invoke(command, args = {}) {
  return window.__TAURI__.core.invoke(command, args);
}
