// Laid over the tenant's pages in the kiosk window: Cancel on the sign-in
// pages (back to the start), Back on its Security info page (back to the
// kiosk's list). The app's own pages have their own buttons.
(() => {
  if (location.protocol === 'tauri:' || location.hostname === 'tauri.localhost') return;
  const add = () => {
    if (document.getElementById('tapkiosk-cancel')) return;
    const bar = document.createElement('div');
    bar.id = 'tapkiosk-cancel';
    bar.setAttribute('role', 'navigation');
    Object.assign(bar.style, {
      position: 'fixed', left: '0', right: '0', bottom: '0', zIndex: '2147483647',
      display: 'flex', justifyContent: 'center', padding: '12px',
      background: '#1b1b1b', font: '18px system-ui, sans-serif',
    });
    const page = new URL(SECURITY_INFO_PAGE);
    const onSecurityInfo = location.origin === page.origin && location.pathname.startsWith(page.pathname);
    const cancel = document.createElement('a');
    if (onSecurityInfo) cancel.id = 'tapkiosk-back';
    cancel.href = onSecurityInfo ? BACK_URL : CANCEL_URL;
    cancel.textContent = onSecurityInfo ? 'Back to the kiosk · Retour au kiosque' : 'Cancel · Annuler';
    Object.assign(cancel.style, {
      color: '#fff', padding: '12px 32px', minHeight: '44px', boxSizing: 'border-box',
      border: '2px solid #fff', borderRadius: '8px', textDecoration: 'none',
    });
    bar.append(cancel);
    document.body.append(bar);
  };
  if (document.body) add();
  else addEventListener('DOMContentLoaded', add);
})();
