//! IT staging security keys into an Entra tenant (the fake, to Microsoft's
//! contract) from a queue: the kiosk's real CTAP2 client against software
//! keys of CTAP 2.1 (which take a PIN policy) and 2.0 (which cannot).

use std::sync::Arc;
use tapkiosk_core::fido::ceremony::{KeySource, Phase};
use tapkiosk_core::fido::soft::SoftCtapToken;
use tapkiosk_core::staging::{
    PinChange, QueueView, RowState, StagingError, StagingNotice, StagingQueue, StagingTerms,
};
use tapkiosk_core::tenant::Tenant;
use tapkiosk_core::{Clock as _, SystemClock};
use tapkiosk_entra::{EntraTenant, Graph};
use tapkiosk_fake_entra::FakeEntra;
use tapkiosk_tests::TestDirectory;
use zeroize::Zeroizing;

const ADA: &str = "ada@contoso.onmicrosoft.com";
const GRACE: &str = "grace@contoso.onmicrosoft.com";

/// The fake tenant, the directory's clock on the wall clock the fake reads.
fn tenant(t: &TestDirectory) -> (FakeEntra, Arc<Graph>, EntraTenant) {
    t.clock.set(SystemClock.now());
    let (fake, graph) = crate::fake_tenant_at(Arc::new(t.clock.clone()));
    let graph = Arc::new(graph);
    let tenant = EntraTenant::new(graph.clone());
    (fake, graph, tenant)
}

fn soft(key: &SoftCtapToken) -> KeySource {
    KeySource::Soft(Arc::new(key.same_key()))
}

/// Ticks the queue until `wanted` holds of its view.
#[allow(clippy::disallowed_methods)] // waiting for the key's worker thread
async fn tick_until(
    queue: &mut StagingQueue,
    tenant: &dyn Tenant,
    keys: &KeySource,
    t: &TestDirectory,
    wanted: impl Fn(&QueueView<'_>) -> bool,
) {
    for _ in 0..500 {
        queue.tick(tenant, keys, &t.directory).await.unwrap();
        if wanted(&queue.view()) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the staging never got there: {:?}", queue.rows());
}

fn key_phase(view: &QueueView<'_>) -> Option<Phase> {
    view.current.as_ref().and_then(|c| c.key.clone())
}

fn lettered(view: &QueueView<'_>) -> bool {
    view.current.as_ref().is_some_and(|c| c.letter.is_some())
}

/// The PIN on the letter shown now.
fn letter_pin(queue: &StagingQueue) -> String {
    let letter = serde_json::to_value(queue.view().current.unwrap().letter.unwrap()).unwrap();
    letter["pin"].as_str().unwrap().to_string()
}

async fn it_stages_keys_for_a_queue_and_says_what_became_of_each(t: TestDirectory) {
    let (fake, graph, tenant) = tenant(&t);
    let file = format!("email,label\n{ADA},YK-0001\nnobody@contoso.onmicrosoft.com,X\n{GRACE},\n");
    let mut queue = StagingQueue::new(&file, StagingTerms::new(None, Some(8)).unwrap()).unwrap();

    // Ada's key speaks CTAP 2.1: a random PIN, then a PIN change required.
    let (new_key, _) = SoftCtapToken::generate_ctap21().unwrap();
    let keys = soft(&new_key);
    queue.next(&tenant, &keys).await.unwrap();
    assert_eq!(queue.rows()[0].state, RowState::Staging);
    tick_until(&mut queue, &tenant, &keys, &t, lettered).await;
    let pin = letter_pin(&queue);
    assert_eq!(pin.len(), 8, "{pin}");
    assert!(pin.chars().all(|c| c.is_ascii_digit()), "{pin}");
    let shown = format!("{:?}", queue.view().current.unwrap().letter.unwrap());
    assert!(!shown.contains(&pin), "{shown}");
    assert_eq!(
        queue.rows()[0].state,
        RowState::Staged {
            key_name: "Software key (test) · YK-0001".into(),
            model: Some("Software key (test)".into()),
            pin_change: PinChange::Required { min_pin_length: 8 },
        }
    );
    assert_eq!(new_key.min_pin_length(), 8);
    assert!(new_key.must_change_pin());
    let in_tenant = tapkiosk_entra::methods::list(&graph, ADA).await.unwrap();
    assert!(
        in_tenant.iter().any(|m| m.kind == "security_key"
            && m.name.as_deref() == Some("Software key (test) · YK-0001")),
        "{in_tenant:?}"
    );

    // Nobody has that address: said, and Grace is next. Her key is CTAP
    // 2.0: registered, and the letter says its PIN stays.
    let (old_key, _) = SoftCtapToken::generate().unwrap();
    let keys = soft(&old_key);
    queue.next(&tenant, &keys).await.unwrap();
    assert_eq!(
        queue.rows()[1].state,
        RowState::Failed {
            reason: "no account in the tenant has this email".into()
        }
    );
    assert_eq!(queue.view().current.unwrap().email.as_str(), GRACE);
    tick_until(&mut queue, &tenant, &keys, &t, lettered).await;
    assert!(matches!(
        &queue.rows()[2].state,
        RowState::Staged { key_name, pin_change: PinChange::NotSupported, .. } if key_name == "Software key (test)"
    ));

    // The letter goes with the next person; nobody is left.
    queue.next(&tenant, &keys).await.unwrap();
    let view = queue.view();
    assert!(view.current.is_none() && !view.more);
    let log = t.directory.audit_log(&Default::default()).await.unwrap();
    let staged: Vec<_> = log
        .iter()
        .filter(|r| r.kind == "entra_key_staged")
        .collect();
    assert_eq!(staged.len(), 2);
    assert_eq!(staged[0].detail["entra_user"], ADA);
    assert!(staged[0].detail["request_id"].is_string());
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains(&pin), "a PIN reached the audit log");

    // What the kiosk posted verifies with python-fido2 against the
    // challenge and relying party the tenant handed out.
    let posted = fake.key_registrations();
    assert_eq!(posted.len(), 2);
    for registration in posted {
        assert_eq!(
            registration.body["displayName"]
                .as_str()
                .map(|n| n.starts_with("Software key (test)")),
            Some(true)
        );
    }
    crate::crosscheck_registrations(&fake);
}

async fn a_key_with_a_pin_takes_its_pin_and_a_registered_key_is_said(t: TestDirectory) {
    let (_fake, _graph, tenant) = tenant(&t);
    let terms = StagingTerms::new(Some(Zeroizing::new("739164".into())), None).unwrap();
    let mut first = StagingQueue::new(ADA, terms).unwrap();
    let (key, _) = SoftCtapToken::generate().unwrap();
    let keys = soft(&key);
    first.next(&tenant, &keys).await.unwrap();
    tick_until(&mut first, &tenant, &keys, &t, lettered).await;
    assert_eq!(letter_pin(&first), "739164");

    // The same key again, for Grace: IT types its PIN, wrong then right;
    // the letter carries the PIN the key has.
    let random = StagingTerms::new(None, None).unwrap();
    let mut queue = StagingQueue::new(&format!("{GRACE}\n{ADA}\n"), random).unwrap();
    queue.next(&tenant, &keys).await.unwrap();
    let asks = |v: &QueueView<'_>| matches!(key_phase(v), Some(Phase::EnterPin { .. }));
    tick_until(&mut queue, &tenant, &keys, &t, asks).await;
    queue.give_pin(Zeroizing::new("000000".into())).unwrap();
    let wrong = |v: &QueueView<'_>| {
        key_phase(v)
            == Some(Phase::EnterPin {
                wrong: true,
                tries_left: Some(7),
            })
    };
    tick_until(&mut queue, &tenant, &keys, &t, wrong).await;
    queue.give_pin(Zeroizing::new("739164".into())).unwrap();
    tick_until(&mut queue, &tenant, &keys, &t, lettered).await;
    assert_eq!(letter_pin(&queue), "739164");

    // Ada's key is hers already: the tenant's options exclude it.
    queue.next(&tenant, &keys).await.unwrap();
    tick_until(&mut queue, &tenant, &keys, &t, asks).await;
    queue.give_pin(Zeroizing::new("739164".into())).unwrap();
    let excluded = |v: &QueueView<'_>| key_phase(v) == Some(Phase::AlreadyRegistered);
    tick_until(&mut queue, &tenant, &keys, &t, excluded).await;
    assert!(matches!(
        queue.next(&tenant, &keys).await,
        Err(StagingError::NotNow)
    ));
    queue.skip().unwrap();
    assert_eq!(
        queue.rows()[1].state,
        RowState::Failed {
            reason: "the key is registered to this person already".into()
        }
    );
}

async fn late_answers_are_asked_again_and_refusals_are_listed(t: TestDirectory) {
    let (fake, _graph, tenant) = tenant(&t);
    let terms = StagingTerms::new(None, None).unwrap();
    let mut queue = StagingQueue::new(&format!("{ADA}\n{GRACE}\n"), terms).unwrap();
    let (key, _) = SoftCtapToken::generate_ctap21().unwrap();
    let keys = soft(&key);
    queue.next(&tenant, &keys).await.unwrap();
    // The key answers only after Entra's 5 minutes.
    t.clock.advance(chrono::TimeDelta::minutes(6));
    fake.change(|tenant| tenant.clock_ahead = 6 * 60);
    let again = |v: &QueueView<'_>| v.notice == Some(StagingNotice::KeyTooLate);
    tick_until(&mut queue, &tenant, &keys, &t, again).await;
    tick_until(&mut queue, &tenant, &keys, &t, lettered).await;
    assert!(matches!(queue.rows()[0].state, RowState::Staged { .. }));

    // FIDO2 self-service off: the tenant's refusal is listed for Grace.
    fake.change(|tenant| tenant.fido2_policy["isSelfServiceRegistrationAllowed"] = false.into());
    queue.next(&tenant, &keys).await.unwrap();
    let RowState::Failed { reason } = &queue.rows()[1].state else {
        panic!("{:?}", queue.rows());
    };
    assert!(reason.contains("refused"), "{reason}");
    assert!(queue.view().current.is_none());
}

tapkiosk_tests::on_both_backends!(
    it_stages_keys_for_a_queue_and_says_what_became_of_each,
    a_key_with_a_pin_takes_its_pin_and_a_registered_key_is_said,
    late_answers_are_asked_again_and_refusals_are_listed,
);
