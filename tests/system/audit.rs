use crate::add;
use sqlx::{AssertSqlSafe, Executor};
use tapkiosk_core::Email;
use tapkiosk_core::directory::{DirectoryError, IssueRequest};
use tapkiosk_core::user::NewUser;
use tapkiosk_tests::{Backend, TestDirectory, on_both_backends};

on_both_backends!(
    an_untouched_log_verifies,
    a_changed_event_breaks_the_chain,
    a_deleted_event_breaks_the_chain,
    deleting_the_newest_events_is_noticed,
    rolling_the_head_back_is_noticed,
    the_log_refuses_updates_and_filters_by_user_and_time,
    a_log_rolled_back_behind_a_checkpoint_is_caught,
    the_log_is_read_a_page_at_a_time,
);

/// 250 people added, then Ada twice: the pages hold the whole log, newest
/// first, 100 at a time, and a filter pages within what it lets through.
async fn the_log_is_read_a_page_at_a_time(t: TestDirectory) {
    use tapkiosk_core::audit::Filter;
    let people: Vec<_> = (0..250)
        .map(|i| {
            let email = Email::parse(&format!("person{i}@example.com")).unwrap();
            (i + 2, NewUser::new(email, None, &[]).unwrap())
        })
        .collect();
    t.directory.import_users(&people).await.unwrap();
    let ada = add(&t, "ada@example.com").await;
    t.directory
        .issue_pass(&IssueRequest::new(ada.clone()))
        .await
        .unwrap();
    let everything = Filter::default();
    let mut all = t.directory.audit_log(&everything).await.unwrap();
    all.reverse();
    let mut paged = Vec::new();
    let mut before = None;
    let mut sizes = Vec::new();
    loop {
        let page = t
            .directory
            .audit_page(&everything, before, 100)
            .await
            .unwrap();
        sizes.push(page.records.len());
        paged.extend(page.records);
        match page.older {
            Some(seq) => before = Some(seq),
            None => break,
        }
    }
    assert_eq!(paged, all);
    let total = all.len();
    assert!(total > 250, "{total}");
    assert_eq!(sizes, [100, 100, total - 200]);
    let adas = Filter {
        user: Some(ada),
        since: None,
    };
    let first = t.directory.audit_page(&adas, None, 1).await.unwrap();
    assert_eq!(first.records[0].kind, "pass_issued");
    let second = t.directory.audit_page(&adas, first.older, 1).await.unwrap();
    assert_eq!(second.records[0].kind, "user_added");
    assert_eq!(second.older, None);
}

/// A whole older copy of the log put back: every event and the head are
/// genuine, only old. The chain cannot tell; a checkpoint kept outside can.
async fn a_log_rolled_back_behind_a_checkpoint_is_caught(t: TestDirectory) {
    use sqlx::Row;
    use tapkiosk_core::checkpoint::Checkpoint;
    some_history(&t).await;
    let mut conn = t.raw().await;
    let old_head = sqlx::query(
        "SELECT audit_head_seq, audit_head_mac, audit_head_tag FROM directory_meta WHERE id = 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let old_seq: i64 = old_head.try_get("audit_head_seq").unwrap();
    let early = t.directory.audit_checkpoint().await.unwrap();
    add(&t, "carol@example.com").await;
    let late = t.directory.audit_checkpoint().await.unwrap();
    // Both still match the log, and read back from their lines.
    for checkpoint in [&early, &late] {
        let line = Checkpoint::parse(&checkpoint.to_string()).unwrap();
        assert_eq!(
            t.directory.check_audit_checkpoint(&line).await.unwrap(),
            None
        );
    }
    // A forged or edited checkpoint is no checkpoint.
    let edited = Checkpoint {
        events: late.events - 1,
        ..late.clone()
    };
    let said = t.directory.check_audit_checkpoint(&edited).await.unwrap();
    assert!(said.unwrap().contains("not made with this directory's key"));

    // Back to the copy taken before carol was added.
    drop_append_only_triggers(&t, &mut conn).await;
    sqlx::query("DELETE FROM audit_events WHERE seq > $1")
        .bind(old_seq)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE directory_meta SET audit_head_seq = $1, audit_head_mac = $2, audit_head_tag = $3 WHERE id = 1",
    )
    .bind(old_seq)
    .bind(old_head.try_get::<Vec<u8>, _>("audit_head_mac").unwrap())
    .bind(old_head.try_get::<Vec<u8>, _>("audit_head_tag").unwrap())
    .execute(&mut conn)
    .await
    .unwrap();
    let verification = t.directory.verify_audit().await.unwrap();
    assert_eq!(verification.broken, None, "the chain alone cannot tell");
    assert_eq!(
        t.directory.check_audit_checkpoint(&early).await.unwrap(),
        None
    );
    let said = t.directory.check_audit_checkpoint(&late).await.unwrap();
    assert!(said.unwrap().contains("rolled back"));
}

async fn some_history(t: &TestDirectory) {
    let ada = add(t, "ada@example.com").await;
    add(t, "bob@example.com").await;
    let issued = t
        .directory
        .issue_pass(&IssueRequest::new(ada))
        .await
        .unwrap();
    t.directory
        .redeem("ada@example.com", "WRONG-PASS-0000")
        .await
        .unwrap_err();
    t.directory
        .redeem("ada@example.com", issued.code.expose())
        .await
        .unwrap();
}

/// What an intruder with database access would run first.
async fn drop_append_only_triggers(t: &TestDirectory, conn: &mut sqlx::AnyConnection) {
    let statements: &[&str] = match t.backend {
        Backend::Sqlite => &[
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER audit_events_no_delete",
        ],
        Backend::Postgres => &["DROP TRIGGER audit_events_no_change ON audit_events"],
    };
    for statement in statements {
        conn.execute(*statement).await.unwrap();
    }
}

async fn an_untouched_log_verifies(t: TestDirectory) {
    some_history(&t).await;
    let verification = t.directory.verify_audit().await.unwrap();
    // Created, the test policy, and some_history's five.
    assert_eq!(verification.events, 7);
    assert_eq!(verification.broken, None);
}

async fn a_changed_event_breaks_the_chain(t: TestDirectory) {
    some_history(&t).await;
    let mut conn = t.raw().await;
    drop_append_only_triggers(&t, &mut conn).await;
    conn.execute(
        "UPDATE audit_events SET detail = '{\"reason\":\"nothing to see\"}' WHERE seq = 5",
    )
    .await
    .unwrap();
    let broken = t.directory.verify_audit().await.unwrap().broken.unwrap();
    assert_eq!(broken.seq, 5);
    assert!(broken.reason.contains("changed"), "{}", broken.reason);
}

async fn a_deleted_event_breaks_the_chain(t: TestDirectory) {
    some_history(&t).await;
    let mut conn = t.raw().await;
    drop_append_only_triggers(&t, &mut conn).await;
    conn.execute("DELETE FROM audit_events WHERE seq = 3")
        .await
        .unwrap();
    assert_eq!(
        t.directory
            .verify_audit()
            .await
            .unwrap()
            .broken
            .unwrap()
            .seq,
        3
    );
}

async fn deleting_the_newest_events_is_noticed(t: TestDirectory) {
    some_history(&t).await;
    let mut conn = t.raw().await;
    drop_append_only_triggers(&t, &mut conn).await;
    conn.execute("DELETE FROM audit_events WHERE seq >= 6")
        .await
        .unwrap();
    let broken = t.directory.verify_audit().await.unwrap().broken.unwrap();
    assert_eq!(broken.seq, 6);
    assert!(broken.reason.contains("deleted"), "{}", broken.reason);
}

async fn rolling_the_head_back_is_noticed(t: TestDirectory) {
    some_history(&t).await;
    let mut conn = t.raw().await;
    drop_append_only_triggers(&t, &mut conn).await;
    conn.execute("DELETE FROM audit_events WHERE seq >= 5")
        .await
        .unwrap();
    conn.execute(
        "UPDATE directory_meta SET audit_head_seq = 4, \
         audit_head_mac = (SELECT mac FROM audit_events WHERE seq = 4) WHERE id = 1",
    )
    .await
    .unwrap();
    // Nothing is chained onto the rolled-back head, which would give it a
    // good tag again: SQLite refuses the write; on PostgreSQL it commits
    // and its event waits, unchained.
    let late = NewUser::new(Email::parse("late@example.com").unwrap(), None, &[]).unwrap();
    let written = t.directory.add_user(&late).await;
    match t.backend {
        Backend::Sqlite => assert!(
            matches!(written, Err(DirectoryError::Tampered(_))),
            "{written:?}"
        ),
        Backend::Postgres => written.unwrap(),
    }
    let broken = t.directory.verify_audit().await.unwrap().broken.unwrap();
    assert!(
        broken.reason.contains("newest event was changed"),
        "{}",
        broken.reason
    );
}

async fn the_log_refuses_updates_and_filters_by_user_and_time(t: TestDirectory) {
    some_history(&t).await;
    let mut conn = t.raw().await;
    assert!(
        conn.execute("UPDATE audit_events SET actor = 'someone else'")
            .await
            .is_err()
    );
    assert!(conn.execute("DELETE FROM audit_events").await.is_err());
    if t.backend == Backend::Postgres {
        assert!(conn.execute("TRUNCATE audit_events").await.is_err());
    }
    let count: i64 = sqlx::query_scalar(AssertSqlSafe("SELECT COUNT(*) FROM audit_events"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 7);

    let ada = tapkiosk_core::Email::parse("ada@example.com").unwrap();
    let filter = tapkiosk_core::audit::Filter {
        user: Some(ada),
        since: None,
    };
    let kinds: Vec<String> = t
        .directory
        .audit_log(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "user_added",
            "pass_issued",
            "sign_in_failed",
            "pass_redeemed"
        ]
    );
    t.clock.advance(chrono::TimeDelta::hours(1));
    add(&t, "carol@example.com").await;
    let since = tapkiosk_core::audit::Filter {
        user: None,
        since: Some(t.clock.now_plus(chrono::TimeDelta::minutes(-1))),
    };
    assert_eq!(t.directory.audit_log(&since).await.unwrap().len(), 1);
    let record = &t.directory.audit_log(&since).await.unwrap()[0];
    assert_eq!(
        (record.actor.as_str(), record.kiosk.as_str()),
        ("test", "test-kiosk")
    );
}
