//! Entra pass batches (core's `entra_batch`) against the fake tenant, with
//! each row's result in the directory: interrupted and run again, nobody
//! is issued a pass twice, and the letters' passes stay sealed until IT
//! says they are printed.

use sqlx::Row as _;
use std::sync::Arc;
use tapkiosk_core::entra_batch::{BatchError, BatchReport, RowReport, RowState, issue_passes};
use tapkiosk_core::tenant::{PassTerms, Tenant, TenantError};
use tapkiosk_core::{Clock as _, Email, SystemClock};
use tapkiosk_entra::EntraTenant;
use tapkiosk_fake_entra::FakeEntra;
use tapkiosk_tests::TestDirectory;

fn tenant(t: &TestDirectory, people: usize) -> (FakeEntra, EntraTenant) {
    t.clock.set(SystemClock.now());
    let (fake, graph) = crate::fake_tenant_at(Arc::new(t.clock.clone()));
    fake.change(|tenant| tenant.add_people(people));
    (fake, EntraTenant::new(Arc::new(graph)))
}

fn person(n: usize) -> String {
    format!("person{n}@contoso.onmicrosoft.com")
}

/// An HR file as Excel writes it (CRLF) for `people`, and an unknown one.
fn hr_file(people: usize) -> String {
    let mut file = String::from("email,start,lifetime,one_time\r\n");
    for n in 0..people {
        file.push_str(&format!("{},,2h,yes\r\n", person(n)));
    }
    file.push_str("nobody@contoso.onmicrosoft.com,,,\r\n");
    file
}

fn values(report: &BatchReport) -> Vec<(String, Option<String>)> {
    report
        .rows
        .iter()
        .filter_map(|row| match &row.state {
            RowState::Issued { pass, .. } => Some((
                row.email.to_string(),
                pass.value.as_ref().map(|v| v.to_string()),
            )),
            _ => None,
        })
        .collect()
}

/// How many passes the local log says were issued; each names the
/// person, the pass and Graph's request id.
async fn issued_events(t: &TestDirectory) -> usize {
    let log = t.directory.audit_log(&Default::default()).await.unwrap();
    let issued: Vec<_> = log
        .iter()
        .filter(|r| r.kind == "entra_pass_issued")
        .collect();
    for event in &issued {
        let request_id = event.detail["request_id"].as_str().unwrap_or_default();
        assert!(uuid::Uuid::parse_str(request_id).is_ok(), "{event:?}");
        assert!(
            event.detail["method"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(event.detail["batch"].is_string());
    }
    issued.len()
}

async fn an_interrupted_batch_goes_on_and_issues_nobody_a_second_pass(t: TestDirectory) {
    let (fake, tenant) = tenant(&t, 24);
    let file = hr_file(24);
    // The policy and the first 20 rows' calls go through (two to look the
    // people and their passes up, one to issue); the next fails five
    // times, which the client's retries give up on.
    let down = vec![(503, Some(0)); 5];
    fake.change(|t| t.failures = [vec![(200, None); 4], down].concat().into());
    let first = issue_passes(&t.directory, &tenant, "hr.csv", &file)
        .await
        .unwrap();
    assert!(first.stopped.is_some());
    assert_eq!((first.issued, first.refused, first.earlier), (20, 0, 0));
    let not_sent = first
        .rows
        .iter()
        .filter(|r| matches!(r.state, RowState::NotSent))
        .count();
    assert_eq!(not_sent, 5);
    let letters = values(&first);
    assert!(letters.iter().all(|(_, value)| value.is_some()));
    assert_eq!(issued_events(&t).await, 20);

    // The passes are kept for their letters, sealed: not one in clear.
    let mut raw = t.raw().await;
    let stored = sqlx::query("SELECT pass FROM entra_batch_rows WHERE state = 'issued'")
        .fetch_all(&mut raw)
        .await
        .unwrap();
    assert_eq!(stored.len(), 20);
    for (row, (_, value)) in stored.iter().zip(&letters) {
        let sealed: Vec<u8> = row.try_get("pass").unwrap();
        let value = value.as_ref().unwrap().as_bytes();
        assert!(!sealed.windows(value.len()).any(|w| w == value));
    }

    // Again, throttled: the rest is issued, the unknown person refused, and
    // the earlier run's letters are still there.
    fake.change(|t| {
        t.throttle_every = 3;
        t.throttle_retry_after = 0;
    });
    let second = issue_passes(&t.directory, &tenant, "hr.csv", &file)
        .await
        .unwrap();
    assert!(second.stopped.is_none(), "{:?}", second.stopped);
    assert_eq!((second.issued, second.refused, second.earlier), (4, 1, 20));
    let again = values(&second);
    assert_eq!(again.len(), 24);
    assert_eq!(&again[..20], &letters[..], "the same passes, not new ones");
    let RowState::Refused(reason) = &second.rows[24].state else {
        panic!("{:?}", second.rows[24]);
    };
    assert!(reason.contains("no account"), "{reason}");
    assert_eq!(issued_events(&t).await, 24);
    for n in 0..24 {
        let email = Email::parse(&person(n)).unwrap();
        let pass = tenant.pass_of(&email).await.unwrap().unwrap();
        let issued = pass_id(&second.rows[n]);
        assert_eq!(Some(pass.id.as_str()), issued, "{email}");
    }

    // A third run only asks for the refused row again (its address is no
    // user name, so the tenant is also asked whose mail it is). The app's
    // token runs out after the policy's read: the $batch call is answered
    // 401 and sent again with a new one.
    fake.change(|t| {
        t.expire_tokens_after = Some(1);
        t.throttle_every = 0;
    });
    let tokens = fake.tokens_issued();
    let before = fake.graph_requests();
    let third = issue_passes(&t.directory, &tenant, "hr.csv", &file)
        .await
        .unwrap();
    assert_eq!((third.issued, third.refused, third.earlier), (0, 1, 24));
    assert_eq!(
        fake.graph_requests() - before,
        4,
        "the policy, one $batch call twice, one look-up by mail"
    );
    assert_eq!(fake.tokens_issued(), tokens + 1, "renewed once, mid-batch");

    // Letters printed: the passes are forgotten, the results kept.
    assert_eq!(
        t.directory
            .forget_entra_batch_passes(&third.batch)
            .await
            .unwrap(),
        24
    );
    let fourth = issue_passes(&t.directory, &tenant, "hr.csv", &file)
        .await
        .unwrap();
    assert_eq!(fourth.earlier, 24);
    assert!(values(&fourth).iter().all(|(_, value)| value.is_none()));
    assert!(
        crate::audit_kinds(&t)
            .await
            .contains(&"entra_batch_letters_forgotten".to_string())
    );
    t.directory.verify_audit().await.unwrap();
}

fn pass_id(row: &RowReport) -> Option<&str> {
    match &row.state {
        RowState::Issued { pass, .. } => Some(&pass.id),
        _ => None,
    }
}

async fn a_row_whose_answer_was_lost_is_not_sent_again(t: TestDirectory) {
    let (_fake, tenant) = tenant(&t, 2);
    let file = hr_file(2);
    let first = issue_passes(&t.directory, &tenant, "hr.csv", &file)
        .await
        .unwrap();
    assert_eq!((first.issued, first.refused), (2, 1));
    // As a crash leaves them: both rows sent again, and the tenant answered
    // person0's request (a pass) while the kiosk never stored the answer.
    let rows: Vec<(u64, Email)> = [(2, person(0)), (3, person(1))]
        .into_iter()
        .map(|(line, email)| (line, Email::parse(&email).unwrap()))
        .collect();
    t.directory
        .mark_entra_batch_sent(&first.batch, &rows)
        .await
        .unwrap();
    let revoked = tenant.revoke_pass(&rows[1].1).await.unwrap();
    let kept = tenant.pass_of(&rows[0].1).await.unwrap().unwrap();
    // The crashed run's hold on the batch runs out.
    t.clock.advance(chrono::TimeDelta::minutes(16));

    let second = issue_passes(&t.directory, &tenant, "hr.csv", &file)
        .await
        .unwrap();
    assert!(matches!(second.rows[0].state, RowState::Lost));
    assert_eq!(
        tenant.pass_of(&rows[0].1).await.unwrap().unwrap().id,
        kept.id,
        "person0's pass was not replaced"
    );
    assert_eq!(second.issued, 1, "person1 had none: sent again");
    let new = tenant.pass_of(&rows[1].1).await.unwrap().unwrap();
    assert_ne!(new.id, revoked.id);
    // A lost row stays lost: IT issues that person a pass singly.
    let third = issue_passes(&t.directory, &tenant, "hr.csv", &file)
        .await
        .unwrap();
    assert!(matches!(third.rows[0].state, RowState::Lost));
    assert_eq!(third.issued, 0);
}

async fn a_file_the_policy_would_refuse_sends_nothing(t: TestDirectory) {
    let (fake, tenant) = tenant(&t, 2);
    let file = format!(
        "email,start,lifetime,one_time\n{},,2h,\n{},,30m,\n",
        person(0),
        person(1)
    );
    let before = fake.graph_requests();
    let refused = issue_passes(&t.directory, &tenant, "bad.csv", &file)
        .await
        .unwrap_err();
    let BatchError::Policy(lines) = &refused else {
        panic!("{refused:?}");
    };
    assert_eq!(lines.len(), 1);
    assert!(
        refused
            .to_string()
            .contains("line 3: a lifetime of 30 min is outside the tenant's 60 to 480 min"),
        "{refused}"
    );
    assert_eq!(
        fake.graph_requests() - before,
        1,
        "only the policy was read"
    );
    let unreadable = issue_passes(&t.directory, &tenant, "bad.csv", "email\nnot-an-email\n")
        .await
        .unwrap_err();
    assert!(matches!(unreadable, BatchError::Rows(_)), "{unreadable:?}");
    let mut raw = t.raw().await;
    let batches: i64 = sqlx::query("SELECT COUNT(*) AS n FROM entra_batches")
        .fetch_one(&mut raw)
        .await
        .unwrap()
        .get("n");
    assert_eq!(batches, 0);
    let terms = PassTerms::default();
    assert_eq!(
        tenant.pass_refusals(&[terms]).await.unwrap(),
        vec![None],
        "the policy's defaults pass"
    );
}

async fn people_are_found_by_their_mail_as_well_as_their_user_name(t: TestDirectory) {
    let (fake, tenant) = tenant(&t, 1);
    tapkiosk_tests::entra::add_mary(&fake);
    let (upn, mail) = tapkiosk_tests::entra::MARY;
    let (by_upn, mary) = (Email::parse(upn).unwrap(), Email::parse(mail).unwrap());
    // One at a time, as the admin pane issues them.
    let issued = tenant
        .issue_pass(&mary, &PassTerms::default(), false)
        .await
        .unwrap();
    let shown = tenant.pass_of(&by_upn).await.unwrap().unwrap();
    assert_eq!(shown.id, issued.pass.id);
    assert_eq!(tenant.pass_of(&mary).await.unwrap().unwrap().id, shown.id);
    tenant.revoke_pass(&mary).await.unwrap();
    assert!(tenant.pass_of(&by_upn).await.unwrap().is_none());

    // In a batch: her row by mail is issued beside one by user name.
    let file = format!(
        "email,start,lifetime,one_time\n{},,,\n{mary},,,\n",
        person(0)
    );
    let report = issue_passes(&t.directory, &tenant, "hr.csv", &file)
        .await
        .unwrap();
    assert_eq!((report.issued, report.refused), (2, 0), "{:?}", report.rows);
    assert_eq!(
        tenant.pass_of(&by_upn).await.unwrap().unwrap().id,
        pass_id(&report.rows[1]).unwrap()
    );
}

/// An app without the permissions passes need is told which, in plain
/// words, before and during a batch.
async fn a_missing_permission_is_named(t: TestDirectory) {
    let (fake, tenant) = tenant(&t, 1);
    let ada = Email::parse(&person(0)).unwrap();
    fake.change(|t| t.roles.retain(|r| !r.starts_with("Policy.")));
    let Err(refused) = tenant.issue_pass(&ada, &PassTerms::default(), false).await else {
        panic!("issued without the permission");
    };
    assert!(
        refused
            .to_string()
            .contains("grant it Policy.Read.AuthenticationMethod"),
        "{refused}"
    );
    let batch = issue_passes(&t.directory, &tenant, "hr.csv", &hr_file(1))
        .await
        .unwrap_err();
    assert!(
        batch
            .to_string()
            .contains("Policy.Read.AuthenticationMethod"),
        "{batch}"
    );

    fake.change(|t| {
        t.roles = vec![
            "Policy.Read.AuthenticationMethod".into(),
            "User.Read.All".into(),
        ];
    });
    // Consent changes reach the app with its next token.
    fake.expire_tokens();
    let Err(refused) = tenant.issue_pass(&ada, &PassTerms::default(), false).await else {
        panic!("issued without the permission");
    };
    assert!(
        refused
            .to_string()
            .contains("grant it UserAuthMethod-TAP.ReadWrite.All"),
        "{refused}"
    );
    let report = issue_passes(&t.directory, &tenant, "hr.csv", &hr_file(1))
        .await
        .unwrap();
    let RowState::Refused(reason) = &report.rows[0].state else {
        panic!("{:?}", report.rows[0]);
    };
    assert!(
        reason.contains("UserAuthMethod-TAP.ReadWrite.All"),
        "{reason}"
    );
}

/// Two runs of the same file never send the same rows: a second waits for
/// the first, or for a stopped run's hold to run out.
async fn one_run_of_a_file_at_a_time(t: TestDirectory) {
    let (_fake, tenant) = tenant(&t, 2);
    let file = hr_file(2);
    // A run in progress (or one that crashed) holds the batch.
    t.directory
        .open_entra_batch(&file, "hr.csv", 3)
        .await
        .unwrap();
    let held = issue_passes(&t.directory, &tenant, "hr.csv", &file)
        .await
        .unwrap_err();
    assert!(
        held.to_string().contains("being issued by another run"),
        "{held}"
    );
    t.clock.advance(chrono::TimeDelta::minutes(16));
    let report = issue_passes(&t.directory, &tenant, "hr.csv", &file)
        .await
        .unwrap();
    assert_eq!(report.issued, 2);
    // A run that ended lets go at once.
    let again = issue_passes(&t.directory, &tenant, "hr.csv", &file)
        .await
        .unwrap();
    assert_eq!(again.earlier, 2);
}

/// Graph issues a pass to a guest, or to someone outside the pass
/// policy's targets, that would never sign them in, and its POST replaces
/// a live pass silently: none of these is sent, singly or in a batch, and
/// IT reads why.
async fn passes_that_would_not_sign_anyone_in_are_not_issued(t: TestDirectory) {
    let (fake, tenant) = tenant(&t, 5);
    let id = |n: usize| format!("00000000-0000-4000-8000-{n:012}");
    fake.change(|t| {
        let guest = t.users.iter_mut().find(|u| u.upn == person(0)).unwrap();
        guest.guest = true;
        t.tap_policy["includeTargets"] =
            serde_json::json!([{ "targetType": "group", "id": "new-hires" }]);
        t.tap_policy["excludeTargets"] =
            serde_json::json!([{ "targetType": "group", "id": "contractors" }]);
        t.groups
            .insert("new-hires".into(), (0..4).map(id).collect());
        t.groups.insert("contractors".into(), [id(3)].into());
    });
    let email = |n: usize| Email::parse(&person(n)).unwrap();
    let refusal = |answer: Result<_, TenantError>| match answer {
        Err(TenantError::Refused(reason)) => reason,
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("issued"),
    };
    let terms = PassTerms::default();
    let guest = refusal(tenant.issue_pass(&email(0), &terms, false).await);
    assert!(
        guest.contains("person0@contoso.onmicrosoft.com is a guest account"),
        "{guest}"
    );
    for outside in [3, 4] {
        let reason = refusal(tenant.issue_pass(&email(outside), &terms, false).await);
        assert!(
            reason.contains("is outside the targets of the tenant's Temporary Access Pass policy"),
            "{reason}"
        );
    }
    let live = tenant.issue_pass(&email(2), &terms, false).await.unwrap();
    for nobody in [0, 3, 4] {
        assert!(
            tenant.pass_of(&email(nobody)).await.unwrap().is_none(),
            "person{nobody}"
        );
    }

    let file = format!(
        "email,start,lifetime,one_time\n{}\n{}\n{}\n{}\n",
        person(0),
        person(1),
        person(2),
        person(3)
    );
    let before = fake.graph_requests();
    let report = issue_passes(&t.directory, &tenant, "hr.csv", &file)
        .await
        .unwrap();
    assert_eq!(
        fake.graph_requests() - before,
        4,
        "the policy, the people and their passes, their groups, one issue"
    );
    assert_eq!((report.issued, report.refused), (1, 3), "{:?}", report.rows);
    assert!(pass_id(&report.rows[1]).is_some());
    let reasons: Vec<&str> = [0, 2, 3]
        .map(|n| match &report.rows[n].state {
            RowState::Refused(reason) => reason.as_str(),
            other => panic!("{other:?}"),
        })
        .to_vec();
    assert!(reasons[0].contains("guest account"), "{}", reasons[0]);
    assert!(
        reasons[1].contains("a batch never replaces one"),
        "{}",
        reasons[1]
    );
    assert!(reasons[2].contains("outside the targets"), "{}", reasons[2]);
    let still = tenant.pass_of(&email(2)).await.unwrap().unwrap();
    assert_eq!(still.id, live.pass.id, "the live pass is not replaced");
    assert!(tenant.pass_of(&email(0)).await.unwrap().is_none());
}

tapkiosk_tests::on_both_backends!(
    passes_that_would_not_sign_anyone_in_are_not_issued,
    one_run_of_a_file_at_a_time,
    a_missing_permission_is_named,
    people_are_found_by_their_mail_as_well_as_their_user_name,
    an_interrupted_batch_goes_on_and_issues_nobody_a_second_pass,
    a_row_whose_answer_was_lost_is_not_sent_again,
    a_file_the_policy_would_refuse_sends_nothing,
);
