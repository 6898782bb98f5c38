//! The tenant's sign-in page in the kiosk window. The window goes to the
//! page and comes back to the app when the page sends it to the redirect
//! URI (caught, never loaded), when the person presses Cancel on the bar
//! laid over the page, or when the kiosk resets while the page is shown.
//! Meanwhile the window may show only the tenant's hosts.

use crate::AppState;
use std::sync::atomic::Ordering;
use tapkiosk_core::fido::Url;
use tapkiosk_core::kiosk::CANCEL_QUERY;
use tapkiosk_core::tenant::Tenant;
use tauri::{AppHandle, Manager, Runtime, WebviewWindow};

/// How often the kiosk is ticked while its own page is away.
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// The bar laid over the tenant's pages: the only way out of them but the
/// sign-in itself. The app's own pages are left alone.
pub fn cancel_bar(tenant: &dyn Tenant) -> String {
    let mut cancel = tenant.redirect_uri().clone();
    cancel.set_query(Some(CANCEL_QUERY));
    let cancel = serde_json::to_string(cancel.as_str()).unwrap_or_default();
    include_str!("cancel_bar.js").replace("CANCEL_URL", &cancel)
}

/// Whether the window may go to `url`: the redirect URI is caught and
/// handed to the kiosk; the tenant's hosts only while its page is shown.
pub fn allow<R: Runtime>(app: &AppHandle<R>, url: &Url) -> Option<bool> {
    let state = app.try_state::<AppState>()?;
    let tenant = state.tenant.clone()?;
    let on_page = state.on_tenant_page.load(Ordering::SeqCst);
    match decide(&*tenant, on_page, url) {
        Way::Catch => {
            let (app, url) = (app.clone(), url.clone());
            tauri::async_runtime::spawn(async move { come_back(&app, Some(&url)).await });
            Some(false)
        }
        Way::Show => Some(true),
        Way::Refuse => Some(false),
    }
}

/// What the kiosk window does with an address, on a tenant.
#[derive(Debug, PartialEq, Eq)]
enum Way {
    /// The redirect URI: handed to the kiosk, never loaded.
    Catch,
    /// One of the tenant's pages, while the sign-in page is shown.
    Show,
    /// Anything else (the app's own pages are the caller's to allow).
    Refuse,
}

fn decide(tenant: &dyn Tenant, on_page: bool, url: &Url) -> Way {
    if same_place(tenant.redirect_uri(), url) {
        return Way::Catch;
    }
    let host = url.host_str().unwrap_or_default();
    let secure = url.scheme() == "https" || (url.scheme() == "http" && loopback(url));
    if on_page && secure && tenant.allows_host(host) {
        Way::Show
    } else {
        Way::Refuse
    }
}

fn same_place(expected: &Url, url: &Url) -> bool {
    expected.scheme() == url.scheme()
        && expected.host() == url.host()
        && expected.port_or_known_default() == url.port_or_known_default()
        && expected.path() == url.path()
}

fn loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

/// Sends the kiosk window to the tenant's page, if the kiosk is on it,
/// and keeps the kiosk ticking meanwhile.
pub async fn open_page_if_asked<R: Runtime>(window: &WebviewWindow<R>, state: &AppState) {
    let Some(page) = state.kiosk.lock().await.sign_in_page().cloned() else {
        return;
    };
    if let Ok(app_page) = window.url() {
        *state.app_page.lock().await = Some(app_page);
    }
    state.on_tenant_page.store(true, Ordering::SeqCst);
    if let Err(e) = window.navigate(page) {
        tracing::error!(%e, "cannot open the sign-in page");
        come_back(window.app_handle(), None).await;
        return;
    }
    tauri::async_runtime::spawn(tick_while_away(window.app_handle().clone()));
}

/// The app's page ticks the kiosk every second; while the tenant's page is
/// shown this does, so that idle and session ends still reset the kiosk,
/// and brings the app back when the kiosk has left the sign-in step.
#[allow(
    clippy::disallowed_methods,
    reason = "the pace of polling, not a rule of time: the kiosk's clock decides when it resets"
)]
async fn tick_while_away<R: Runtime>(app: AppHandle<R>) {
    let state = app.state::<AppState>();
    while state.on_tenant_page.load(Ordering::SeqCst) {
        tokio::time::sleep(TICK).await;
        let mut kiosk = state.kiosk.lock().await;
        if let Err(e) = kiosk.tick().await {
            tracing::error!(%e, "the kiosk cannot tick");
        }
        let left = kiosk.sign_in_page().is_none();
        drop(kiosk);
        if left {
            come_back(&app, None).await;
        }
    }
}

/// Brings the kiosk window back to the app, first giving the kiosk the
/// address the tenant's page sent it to.
async fn come_back<R: Runtime>(app: &AppHandle<R>, redirect: Option<&Url>) {
    let state = app.state::<AppState>();
    if let Some(redirect) = redirect {
        let finished = state.kiosk.lock().await.finish_sign_in(redirect).await;
        if let Err(e) = finished {
            tracing::error!(%e, "cannot finish the sign-in");
        }
    }
    if !state.on_tenant_page.swap(false, Ordering::SeqCst) {
        return;
    }
    let page = state.app_page.lock().await.take();
    let window = app.get_webview_window("kiosk");
    if let (Some(window), Some(page)) = (window, page)
        && let Err(e) = window.navigate(page)
    {
        tracing::error!(%e, "cannot bring the kiosk back from the sign-in page");
    }
}

#[cfg(test)]
mod tests {
    use super::{Way, decide};
    use std::sync::Arc;
    use tapkiosk_core::config::{EntraCredential, EntraSettings};
    use tapkiosk_core::fido::Url;
    use tapkiosk_entra::{Credential, EntraTenant, Graph};

    fn tenant() -> EntraTenant {
        let url = |text: &str| Url::parse(text).unwrap();
        let settings = EntraSettings {
            tenant: "contoso.onmicrosoft.com".into(),
            client_id: "11111111-2222-3333-4444-555555555555".into(),
            authority: url("https://login.microsoftonline.com"),
            graph: url("https://graph.microsoft.com"),
            credential: EntraCredential::SecretInOsStore,
            redirect_uri: url("http://localhost/tapkiosk/signed-in"),
            sign_in_hosts: vec!["adfs.contoso.com".into()],
        };
        let credential = Credential::Secret("s".to_string().into());
        let clock = Arc::new(tapkiosk_core::SystemClock);
        EntraTenant::new(Arc::new(Graph::new(settings, credential, clock).unwrap()))
    }

    #[test]
    fn the_window_goes_only_to_the_tenants_hosts_and_only_while_signing_in() {
        let tenant = tenant();
        let way = |on_page, text: &str| decide(&tenant, on_page, &Url::parse(text).unwrap());
        assert_eq!(
            way(true, "http://localhost/tapkiosk/signed-in?code=x&state=y"),
            Way::Catch
        );
        assert_eq!(
            way(false, "http://localhost/tapkiosk/signed-in?kiosk=cancel"),
            Way::Catch
        );
        assert_eq!(
            way(true, "https://login.microsoftonline.com/contoso/oauth2"),
            Way::Show
        );
        assert_eq!(way(true, "https://LOGIN.microsoftonline.com/x"), Way::Show);
        assert_eq!(way(true, "https://adfs.contoso.com/adfs/ls"), Way::Show);
        for refused in [
            "http://login.microsoftonline.com/contoso",
            "https://login.microsoftonline.com.evil.example/",
            "https://example.org/",
            "http://localhost/tapkiosk/other",
            "http://localhost:8080/tapkiosk/signed-in",
            "https://localhost/tapkiosk/signed-in",
        ] {
            assert_eq!(way(true, refused), Way::Refuse, "{refused}");
        }
        assert_eq!(
            way(false, "https://login.microsoftonline.com/contoso/oauth2"),
            Way::Refuse,
            "not while the kiosk is on its own pages"
        );
    }
}
