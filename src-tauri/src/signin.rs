//! The tenant's pages in the kiosk window: its sign-in page, and its own
//! Security info page once the person has signed in. The window goes to a
//! page and comes back to the app when the page sends it to the redirect
//! URI (caught, never loaded), when the person presses Cancel or Back on
//! the bar laid over the page, or when the kiosk resets meanwhile. While a
//! page is shown the window may show only the tenant's hosts (and, on the
//! Security info page, that page's host). The browser's session at the
//! tenant is forgotten when the kiosk is back on Welcome.

use crate::AppState;
use std::sync::atomic::Ordering;
use tapkiosk_core::fido::Url;
use tapkiosk_core::kiosk::{BACK_QUERY, CANCEL_QUERY, Kiosk, Screen, StepView};
use tapkiosk_core::tenant::Tenant;
use tauri::{AppHandle, Manager, Runtime, WebviewWindow};

/// How often the kiosk is ticked while its own page is away.
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// Which of the tenant's pages the kiosk window is away on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Away {
    /// None: the app's own pages.
    Home = 0,
    /// The sign-in page.
    SignIn = 1,
    /// The tenant's Security info page.
    SecurityInfo = 2,
}

impl Away {
    fn of(state: &AppState) -> Self {
        match state.away.load(Ordering::SeqCst) {
            1 => Self::SignIn,
            2 => Self::SecurityInfo,
            _ => Self::Home,
        }
    }

    /// The page the kiosk's step asks the window to show, if any.
    fn asked(kiosk: &Kiosk) -> Option<(Self, Url)> {
        if let Some(page) = kiosk.sign_in_page() {
            return Some((Self::SignIn, page.clone()));
        }
        kiosk
            .security_info_page()
            .map(|page| (Self::SecurityInfo, page))
    }
}

/// The bar laid over the tenant's pages: the only way out of them but the
/// sign-in itself. Cancel on the sign-in page, Back on the Security info
/// page; the app's own pages are left alone.
pub fn cancel_bar(tenant: &dyn Tenant) -> String {
    let caught = |query: &str| {
        let mut url = tenant.redirect_uri().clone();
        url.set_query(Some(query));
        serde_json::to_string(url.as_str()).unwrap_or_default()
    };
    let page = serde_json::to_string(tenant.security_info_page().as_str()).unwrap_or_default();
    include_str!("cancel_bar.js")
        .replace("CANCEL_URL", &caught(CANCEL_QUERY))
        .replace("BACK_URL", &caught(BACK_QUERY))
        .replace("SECURITY_INFO_PAGE", &page)
}

/// Whether the window may go to `url`: the redirect URI is caught and
/// handed to the kiosk; the tenant's hosts only while its page is shown.
pub fn allow<R: Runtime>(app: &AppHandle<R>, url: &Url) -> Option<bool> {
    let state = app.try_state::<AppState>()?;
    let tenant = state.tenant.clone()?;
    match decide(&*tenant, Away::of(&state), url) {
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
    /// One of the tenant's pages, while one is shown.
    Show,
    /// Anything else (the app's own pages are the caller's to allow).
    Refuse,
}

fn decide(tenant: &dyn Tenant, away: Away, url: &Url) -> Way {
    if same_place(tenant.redirect_uri(), url) {
        return Way::Catch;
    }
    let host = url.host_str().unwrap_or_default();
    let secure = url.scheme() == "https" || (url.scheme() == "http" && loopback(url));
    let security_info = tenant.security_info_page();
    let allowed = match away {
        Away::Home => false,
        Away::SignIn => tenant.allows_host(host),
        Away::SecurityInfo => {
            tenant.allows_host(host)
                || (url.scheme() == security_info.scheme()
                    && security_info
                        .host_str()
                        .is_some_and(|own| own.eq_ignore_ascii_case(host))
                    && url.port_or_known_default() == security_info.port_or_known_default())
        }
    };
    if secure && allowed {
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

/// Sends the kiosk window to the tenant's page its step asks for, if any,
/// and keeps the kiosk ticking meanwhile.
pub async fn open_page_if_asked<R: Runtime>(window: &WebviewWindow<R>, state: &AppState) {
    let Some((away, page)) = Away::asked(&*state.kiosk.lock().await) else {
        return;
    };
    if let Ok(app_page) = window.url() {
        *state.app_page.lock().await = Some(app_page);
    }
    state.away.store(away as u8, Ordering::SeqCst);
    state.tenant_session.store(true, Ordering::SeqCst);
    if let Err(e) = window.navigate(page) {
        tracing::error!(%e, "cannot open the tenant's page");
        come_back(window.app_handle(), None).await;
        return;
    }
    tauri::async_runtime::spawn(tick_while_away(window.app_handle().clone()));
}

/// Once the kiosk is back on Welcome (reset, Done, idle), the browser
/// forgets the tenant's cookies, so that the next person's Security info
/// page cannot open as the last person.
pub fn forget_tenant_session<R: Runtime>(app: &AppHandle<R>, state: &AppState, screen: &Screen) {
    if !matches!(screen.step, StepView::Welcome { .. })
        || !state.tenant_session.swap(false, Ordering::SeqCst)
    {
        return;
    }
    let cleared = app
        .get_webview_window("kiosk")
        .map(|window| window.clear_all_browsing_data());
    match cleared {
        Some(Ok(())) => tracing::info!("forgot the tenant's session in the kiosk window"),
        Some(Err(e)) => tracing::error!(%e, "cannot forget the tenant's session"),
        None => {}
    }
}

/// The app's page ticks the kiosk every second; while the tenant's page is
/// shown this does, so that idle and session ends still reset the kiosk,
/// and brings the app back when the kiosk has left the page's step.
#[allow(
    clippy::disallowed_methods,
    reason = "the pace of polling, not a rule of time: the kiosk's clock decides when it resets"
)]
async fn tick_while_away<R: Runtime>(app: AppHandle<R>) {
    let state = app.state::<AppState>();
    while Away::of(&state) != Away::Home {
        tokio::time::sleep(TICK).await;
        let mut kiosk = state.kiosk.lock().await;
        if let Err(e) = kiosk.tick().await {
            tracing::error!(%e, "the kiosk cannot tick");
        }
        let left = Away::asked(&kiosk).is_none();
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
        let mut kiosk = state.kiosk.lock().await;
        // From Security info any caught address is the way back; from the
        // sign-in page it is the answer (or Cancel).
        let finished = match Away::asked(&kiosk) {
            Some((Away::SecurityInfo, _)) => kiosk.finish_security_info_page().await,
            _ => kiosk.finish_sign_in(redirect).await,
        };
        if let Err(e) = finished {
            tracing::error!(%e, "cannot finish on the tenant's page");
        }
    }
    if state.away.swap(Away::Home as u8, Ordering::SeqCst) == Away::Home as u8 {
        return;
    }
    let page = state.app_page.lock().await.take();
    let window = app.get_webview_window("kiosk");
    if let (Some(window), Some(page)) = (window, page)
        && let Err(e) = window.navigate(page)
    {
        tracing::error!(%e, "cannot bring the kiosk back from the tenant's page");
    }
    let screen = state.kiosk.lock().await.screen();
    forget_tenant_session(app, &state, &screen);
}

#[cfg(test)]
mod tests {
    use super::{Away, Way, decide};
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
            security_info: url("https://mysignins.microsoft.com/security-info"),
        };
        let credential = Credential::Secret("s".to_string().into());
        let clock = Arc::new(tapkiosk_core::SystemClock);
        EntraTenant::new(Arc::new(Graph::new(settings, credential, clock).unwrap()))
    }

    #[test]
    fn the_window_goes_only_to_the_tenants_hosts_and_only_while_signing_in() {
        let tenant = tenant();
        let way = |on_page: bool, text: &str| {
            let away = if on_page { Away::SignIn } else { Away::Home };
            decide(&tenant, away, &Url::parse(text).unwrap())
        };
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
            "https://mysignins.microsoft.com/security-info",
        ] {
            assert_eq!(way(true, refused), Way::Refuse, "{refused}");
        }
        assert_eq!(
            way(false, "https://login.microsoftonline.com/contoso/oauth2"),
            Way::Refuse,
            "not while the kiosk is on its own pages"
        );
    }

    #[test]
    fn the_security_info_page_adds_its_own_host_and_only_there() {
        let tenant = tenant();
        let way = |away, text: &str| decide(&tenant, away, &Url::parse(text).unwrap());
        let page = "https://mysignins.microsoft.com/security-info";
        assert_eq!(way(Away::SecurityInfo, page), Way::Show);
        assert_eq!(
            way(Away::SecurityInfo, "https://MYSIGNINS.microsoft.com/"),
            Way::Show
        );
        // Its single sign-on goes through the authority.
        assert_eq!(
            way(
                Away::SecurityInfo,
                "https://login.microsoftonline.com/common/oauth2"
            ),
            Way::Show
        );
        assert_eq!(
            way(
                Away::SecurityInfo,
                "http://localhost/tapkiosk/signed-in?kiosk=back"
            ),
            Way::Catch
        );
        for refused in [
            "http://mysignins.microsoft.com/security-info",
            "https://mysignins.microsoft.com:8443/security-info",
            "https://mysignins.microsoft.com.evil.example/security-info",
            "https://account.microsoft.com/",
            "https://example.org/",
        ] {
            assert_eq!(way(Away::SecurityInfo, refused), Way::Refuse, "{refused}");
        }
        assert_eq!(way(Away::SignIn, page), Way::Refuse, "not while signing in");
        assert_eq!(way(Away::Home, page), Way::Refuse, "not from the app");
    }
}
