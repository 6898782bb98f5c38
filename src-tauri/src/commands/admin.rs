//! The admin window's commands. All but the PIN ones need an unlocked admin
//! session, which times out after a few idle minutes.

use crate::{AppState, UiError};
use serde::{Deserialize, Serialize};
use tapkiosk_core::admin_session::Use;
use tapkiosk_core::audit::{Filter, Page};
use tapkiosk_core::clock::parse_time;
use tapkiosk_core::directory::admins::AdminSummary;
use tapkiosk_core::directory::{AdminName, IssueRequest};
use tapkiosk_core::pass::GraphPass;
use tapkiosk_core::policy::{Lifetime, Policy, PolicyForm};
use tapkiosk_core::user::{MethodSummary, NewUser, UserSummary};
use tapkiosk_core::{Directory, Email, import};
use tauri::{Runtime, State, WebviewWindow};
use zeroize::Zeroizing;

type Answer<T> = Result<T, UiError>;

/// Checks and extends the admin session; the directory it gives writes
/// the signed-in admin's name into the audit log.
pub(crate) fn unlocked(state: &AppState) -> Answer<Directory> {
    check_session(state, Use::Extend)
}

/// Checks the admin session without extending it: for what the pane asks
/// by itself (polls), which must not keep it open when nobody is there.
pub(crate) fn still_unlocked(state: &AppState) -> Answer<Directory> {
    check_session(state, Use::Peek)
}

fn check_session(state: &AppState, used: Use) -> Answer<Directory> {
    let mut session = state
        .admin_session
        .lock()
        .map_err(|_| UiError::new("admin_locked"))?;
    Ok(session.check(state.now(), used)?)
}

pub(crate) fn unlock(state: &AppState, name: &AdminName) {
    if let Ok(mut session) = state.admin_session.lock() {
        let acting = state.admin_directory.acting_as(format!("admin:{name}"));
        session.unlock(name.clone(), acting, state.now());
    }
}

/// The admin whose session is open.
pub(crate) fn signed_in_admin(state: &AppState) -> Answer<AdminName> {
    let session = state
        .admin_session
        .lock()
        .map_err(|_| UiError::new("admin_locked"))?;
    session
        .admin(state.now())
        .cloned()
        .ok_or_else(|| UiError::new("admin_locked"))
}

pub(crate) fn admin_name(text: &str) -> Answer<AdminName> {
    AdminName::parse(text).map_err(UiError::from)
}

pub(crate) fn email(text: &str) -> Answer<Email> {
    Email::parse(text).map_err(|_| UiError::new("invalid_email"))
}

#[derive(Debug, Serialize)]
pub struct AdminStatus {
    /// The admin signed in, while the pane is unlocked.
    admin: Option<AdminName>,
    organisation: String,
    /// The pane speaks the kiosk's first configured language.
    language: String,
    /// Whether key models can be proven (`webauthn.attestation_roots`);
    /// without, a key allow-list trusts the model each key reports.
    attestation_roots: bool,
    /// Whether security keys are on: admins may sign in with theirs.
    keys: bool,
    /// Whether the kiosk works on an Entra tenant (the pane's Entra tab).
    entra: bool,
}

#[tauri::command]
pub async fn admin_status(state: State<'_, AppState>) -> Answer<AdminStatus> {
    // One look at the session: who is signed in, if it has not lapsed.
    let now = state.now();
    let admin = state
        .admin_session
        .lock()
        .ok()
        .and_then(|session| session.admin(now).cloned());
    Ok(AdminStatus {
        admin,
        organisation: state.config.organisation.clone(),
        language: state.config.languages.first().cloned().unwrap_or_default(),
        attestation_roots: state.config.webauthn.attestation_roots.is_some(),
        keys: state.relying_party.is_some(),
        entra: state.tenant.is_some(),
    })
}

/// Signs an admin in with their name and PIN.
#[tauri::command]
pub async fn admin_unlock(
    state: State<'_, AppState>,
    name: String,
    pin: Zeroizing<String>,
) -> Answer<()> {
    let name = admin_name(&name)?;
    state.admin_directory.sign_in_admin(&name, &pin).await?;
    unlock(&state, &name);
    Ok(())
}

/// An admin added with `tapctl admin add` chooses their PIN with the
/// enrolment code it printed, and is signed in.
#[tauri::command]
pub async fn admin_enrol(
    state: State<'_, AppState>,
    name: String,
    code: Zeroizing<String>,
    pin: Zeroizing<String>,
    again: Zeroizing<String>,
) -> Answer<()> {
    let name = admin_name(&name)?;
    tapkiosk_core::directory::admins::check_new_pin(&pin, &again)?;
    state
        .admin_directory
        .enrol_admin(&name, &code, &pin)
        .await?;
    unlock(&state, &name);
    Ok(())
}

/// Lifts the sign-in lockout of a person's email; whether it was locked.
#[tauri::command]
pub async fn admin_lift_lockout(state: State<'_, AppState>, email: String) -> Answer<bool> {
    let directory = unlocked(&state)?;
    Ok(directory.lift_lockout(&self::email(&email)?).await?)
}

#[tauri::command]
pub async fn admin_admins(state: State<'_, AppState>) -> Answer<Vec<AdminSummary>> {
    let directory = unlocked(&state)?;
    Ok(directory.admins().await?)
}

/// An enrolment code for a new admin or one being reset, shown once.
#[derive(Debug, Serialize)]
pub struct Enrolment {
    name: AdminName,
    code: String,
}

#[tauri::command]
pub async fn admin_add_admin(state: State<'_, AppState>, name: String) -> Answer<Enrolment> {
    let directory = unlocked(&state)?;
    let name = admin_name(&name)?;
    let code = directory.add_admin(&name).await?.code.grouped();
    Ok(Enrolment { name, code })
}

#[tauri::command]
pub async fn admin_reset_admin(state: State<'_, AppState>, name: String) -> Answer<Enrolment> {
    let directory = unlocked(&state)?;
    let name = admin_name(&name)?;
    let code = directory.reset_admin(&name).await?.code.grouped();
    Ok(Enrolment { name, code })
}

#[tauri::command]
pub async fn admin_remove_admin(state: State<'_, AppState>, name: String) -> Answer<()> {
    let directory = unlocked(&state)?;
    Ok(directory.remove_admin(&admin_name(&name)?).await?)
}

/// Quits the kiosk app: the only way a real kiosk's window closes. Audited
/// under the admin's name.
#[tauri::command]
pub async fn admin_quit<R: Runtime>(
    app: tauri::AppHandle<R>,
    state: State<'_, AppState>,
) -> Answer<()> {
    let directory = unlocked(&state)?;
    directory.record_kiosk_quit().await?;
    lock(&state).await;
    state
        .quitting
        .store(true, std::sync::atomic::Ordering::SeqCst);
    app.exit(0);
    Ok(())
}

#[tauri::command]
pub async fn admin_lock(state: State<'_, AppState>) -> Answer<()> {
    lock(&state).await;
    Ok(())
}

/// Locks the pane and closes its window, so that IT leaves the kiosk as
/// they found it.
#[tauri::command]
pub async fn admin_close<R: Runtime>(
    window: WebviewWindow<R>,
    state: State<'_, AppState>,
) -> Answer<()> {
    lock(&state).await;
    window.destroy().map_err(|e| {
        tracing::error!(%e, "cannot close the admin window");
        UiError::new("admin_close")
    })
}

/// Ends the admin session. A key being staged goes with it (see
/// `unlocked_staging`).
pub async fn lock(state: &AppState) {
    if let Ok(mut session) = state.admin_session.lock() {
        session.lock();
    }
    *state.staging.lock().await = None;
    *state.entra_staging.lock().await = None;
    *state.key_sign_in.lock().await = None;
}

#[tauri::command]
pub async fn admin_users(state: State<'_, AppState>) -> Answer<Vec<UserSummary>> {
    let directory = unlocked(&state)?;
    Ok(directory.list_users().await?)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    summary: UserSummary,
    passes: Vec<GraphPass>,
    methods: Vec<MethodSummary>,
}

#[tauri::command]
pub async fn admin_user(state: State<'_, AppState>, email: String) -> Answer<UserView> {
    let directory = unlocked(&state)?;
    let detail = directory.show_user(&self::email(&email)?).await?;
    let passes = detail
        .passes
        .iter()
        .map(|(pass, status)| pass.to_graph(*status, None))
        .collect();
    Ok(UserView {
        summary: detail.summary,
        passes,
        methods: detail.methods,
    })
}

#[tauri::command]
pub async fn admin_add_user(
    state: State<'_, AppState>,
    email: String,
    name: Option<String>,
    groups: Vec<String>,
) -> Answer<()> {
    let directory = unlocked(&state)?;
    let user = NewUser::new(self::email(&email)?, name.as_deref(), &groups)?;
    Ok(directory.add_user(&user).await?)
}

#[tauri::command]
pub async fn admin_import_users(state: State<'_, AppState>, csv: String) -> Answer<usize> {
    let directory = unlocked(&state)?;
    let users = import::parse_users(&csv).map_err(|rows| {
        UiError::with("rows", serde_json::json!({ "message": rows.to_string() }))
    })?;
    Ok(directory.import_users(&users).await?)
}

/// What the admin asks for.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PassRequest {
    email: String,
    start: Option<String>,
    lifetime: Option<String>,
    one_time: Option<bool>,
    replace: bool,
}

/// A new pass with what the welcome letter prints. The value is in no
/// other answer.
/// No `Debug`: it carries the pass in clear.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Letter {
    pub(crate) organisation: String,
    pub(crate) email: String,
    pub(crate) name: Option<String>,
    pub(crate) pass: String,
    pub(crate) starts: chrono::DateTime<chrono::Utc>,
    pub(crate) ends: chrono::DateTime<chrono::Utc>,
    pub(crate) one_time: bool,
    /// Whether it is the tenant's pass, typed on Microsoft's page.
    pub(crate) entra: bool,
}

/// The start and lifetime typed in an issue form (empty: the defaults).
pub(crate) fn terms(
    start: Option<&str>,
    lifetime: Option<&str>,
) -> Answer<(Option<chrono::DateTime<chrono::Utc>>, Option<Lifetime>)> {
    let start = match start.filter(|s| !s.is_empty()) {
        Some(text) => Some(parse_time(text).map_err(|_| UiError::new("invalid_start"))?),
        None => None,
    };
    let lifetime = match lifetime.filter(|s| !s.is_empty()) {
        Some(text) => Some(Lifetime::parse(text).map_err(|_| UiError::new("invalid_lifetime"))?),
        None => None,
    };
    Ok((start, lifetime))
}

#[tauri::command]
pub async fn admin_issue_pass(state: State<'_, AppState>, request: PassRequest) -> Answer<Letter> {
    let directory = unlocked(&state)?;
    let (start, lifetime) = terms(request.start.as_deref(), request.lifetime.as_deref())?;
    let request = IssueRequest {
        email: email(&request.email)?,
        start,
        lifetime,
        one_time: request.one_time,
        replace: request.replace,
    };
    let issued = directory.issue_pass(&request).await?;
    Ok(Letter {
        organisation: state.config.organisation.clone(),
        email: issued.email.to_string(),
        name: issued.display_name.clone(),
        pass: issued.code.grouped(),
        starts: issued.pass.start_at,
        ends: issued.pass.end_at(),
        one_time: issued.pass.one_time,
        entra: false,
    })
}

#[tauri::command]
pub async fn admin_revoke_pass(state: State<'_, AppState>, email: String) -> Answer<()> {
    let directory = unlocked(&state)?;
    directory.revoke_pass(&self::email(&email)?).await?;
    Ok(())
}

#[tauri::command]
pub async fn admin_remove_method(
    state: State<'_, AppState>,
    email: String,
    method: String,
) -> Answer<()> {
    let directory = unlocked(&state)?;
    Ok(directory
        .remove_method_of(&self::email(&email)?, &method)
        .await?)
}

#[tauri::command]
pub async fn admin_policy(state: State<'_, AppState>) -> Answer<PolicyScreen> {
    let directory = unlocked(&state)?;
    Ok(PolicyScreen::of(directory.policy().await?))
}

/// The policy tab: the policy as stored (handed back on save, to tell a
/// change made elsewhere meanwhile) and the form that shows it.
#[derive(Debug, Serialize)]
pub struct PolicyScreen {
    policy: Policy,
    form: PolicyForm,
}

impl PolicyScreen {
    fn of(policy: Policy) -> Self {
        let form = PolicyForm::of(&policy);
        Self { policy, form }
    }
}

/// Replaces the policy the pane read (`read`) with what `form` says, unless
/// someone changed it meanwhile (another pane, `tapctl policy`): then the
/// pane must show the new one first rather than silently undo it.
#[tauri::command]
pub async fn admin_set_policy(
    state: State<'_, AppState>,
    read: Policy,
    form: PolicyForm,
) -> Answer<PolicyScreen> {
    let directory = unlocked(&state)?;
    let policy = form.read()?;
    directory.replace_policy(&read, &policy).await?;
    Ok(PolicyScreen::of(policy))
}

/// Events the audit view shows at a time; "Older events" shows the next.
const AUDIT_PAGE: u32 = 100;

#[tauri::command]
pub async fn admin_audit(
    state: State<'_, AppState>,
    user: Option<String>,
    since: Option<String>,
    before: Option<i64>,
) -> Answer<Page> {
    let directory = unlocked(&state)?;
    let filter = Filter {
        user: user
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(email)
            .transpose()?,
        since: since
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(parse_time)
            .transpose()
            .map_err(|_| UiError::new("invalid_start"))?,
    };
    Ok(directory.audit_page(&filter, before, AUDIT_PAGE).await?)
}
