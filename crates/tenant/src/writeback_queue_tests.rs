//! The writeback queue on a paused clock: hand-out, re-hand-out after the in-flight time, expiry,
//! first answer wins, isolation by eligible agent, the long poll's wake-up and bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use cloudsync_api::writeback::{PASSWORD_POLICY, SUCCESS, WritebackKind};

fn entry(agents: &[Uuid], expires: Instant) -> NewEntry {
    NewEntry {
        request: WritebackRequest {
            id: Uuid::new_v4(),
            configuration_id: Uuid::nil(),
            kind: WritebackKind::Reset,
            source_anchor: "anchor".into(),
            user_principal_name: "u@x".into(),
            sealed_password: None,
            force_change_at_next_sign_in: false,
            expires_at: String::new(),
            requested_by: "admin:a@x".into(),
        },
        sealed: agents
            .iter()
            .map(|a| (*a, Some(format!("sealed-for-{a}"))))
            .collect(),
        user_id: Uuid::new_v4(),
        expires,
        created_at: String::new(),
    }
}

fn answer(code: u32) -> WritebackAnswer {
    WritebackAnswer {
        code,
        message: String::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn handed_out_once_then_again_after_the_in_flight_time() {
    let q = WritebackQueue::default();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let now = Instant::now();
    let e = entry(&[a], now + Duration::from_secs(300));
    let id = e.request.id;
    let _rx = q.enqueue(e, now).unwrap();

    let (got, _) = q.take(b, &[Uuid::nil()], now);
    assert!(got.is_empty(), "another agent sees nothing");
    let (got, _) = q.take(a, &[Uuid::new_v4()], now);
    assert!(
        got.is_empty(),
        "not paired with the request's configuration (any more)"
    );
    let (got, _) = q.take(a, &[Uuid::nil()], now);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, id);
    assert_eq!(
        got[0].sealed_password.as_deref(),
        Some(format!("sealed-for-{a}").as_str())
    );
    assert_eq!(q.view(id, now).unwrap().status, "running");

    let (got, next) = q.take(a, &[Uuid::nil()], now + Duration::from_secs(29));
    assert!(got.is_empty(), "in flight");
    assert_eq!(next, Some(now + IN_FLIGHT));
    let (got, _) = q.take(a, &[Uuid::nil()], now + IN_FLIGHT);
    assert_eq!(got.len(), 1, "handed out again after {IN_FLIGHT:?}");
    assert_eq!(got[0].id, id, "with the same id");
}

#[tokio::test(start_paused = true)]
async fn first_answer_wins_and_reaches_the_caller() {
    let q = WritebackQueue::default();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let now = Instant::now();
    let e = entry(&[a], now + Duration::from_secs(30));
    let id = e.request.id;
    let mut rx = q.enqueue(e, now).unwrap();
    assert!(q.answer(b, id, answer(SUCCESS), now).is_err(), "not b's");
    assert!(q.answer(a, Uuid::new_v4(), answer(SUCCESS), now).is_err());
    assert!(q.answer(a, id, answer(PASSWORD_POLICY), now).unwrap());
    assert!(!q.answer(a, id, answer(SUCCESS), now).unwrap(), "ignored");
    let got = rx.wait_for(Option::is_some).await.unwrap().clone();
    assert_eq!(got.unwrap().code, PASSWORD_POLICY);
    assert_eq!(q.view(id, now).unwrap().status, "failed");
    let (got, _) = q.take(a, &[Uuid::nil()], now + IN_FLIGHT);
    assert!(got.is_empty(), "an answered request is not handed out");
}

#[tokio::test(start_paused = true)]
async fn expired_requests_are_never_handed_out_and_are_pruned_later() {
    let q = WritebackQueue::default();
    let a = Uuid::new_v4();
    let now = Instant::now();
    let e = entry(&[a], now + Duration::from_secs(5));
    let id = e.request.id;
    let _rx = q.enqueue(e, now).unwrap();
    let (got, _) = q.take(a, &[Uuid::nil()], now + Duration::from_secs(5));
    assert!(got.is_empty());
    assert_eq!(
        q.view(id, now + Duration::from_secs(5)).unwrap().status,
        "failed"
    );
    assert!(
        !q.answer(a, id, answer(SUCCESS), now + Duration::from_secs(6))
            .unwrap()
    );

    let e = entry(&[a], now + Duration::from_secs(60));
    let other = e.request.id;
    let _rx2 = q.enqueue(e, now).unwrap();
    assert!(q.expire(other, now), "the caller stopped waiting");
    let (got, _) = q.take(a, &[Uuid::nil()], now);
    assert!(got.is_empty());
    assert!(
        q.view(id, now + Duration::from_secs(5) + RETAIN).is_none(),
        "pruned"
    );
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_wakes_on_a_new_request_and_ends_at_its_deadline() {
    let q = std::sync::Arc::new(WritebackQueue::default());
    let a = Uuid::new_v4();
    let start = Instant::now();
    assert!(
        q.poll(a, &[Uuid::nil()], start + Duration::from_secs(25))
            .await
            .is_empty()
    );
    assert_eq!(Instant::now(), start + Duration::from_secs(25));

    let poller = {
        let q = q.clone();
        tokio::spawn(async move {
            q.poll(a, &[Uuid::nil()], Instant::now() + Duration::from_secs(25))
                .await
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = Instant::now();
    let _rx = q
        .enqueue(entry(&[a], now + Duration::from_secs(60)), now)
        .unwrap();
    let got = poller.await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(Instant::now(), now, "returned at once");

    // In flight: the next poll waits until the re-hand-out time, not the full deadline.
    let got = q
        .poll(a, &[Uuid::nil()], Instant::now() + Duration::from_secs(60))
        .await;
    assert_eq!(got.len(), 1);
    assert_eq!(Instant::now(), now + IN_FLIGHT);
}

#[test]
fn the_queue_is_bounded() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let q = WritebackQueue::default();
        let now = Instant::now();
        let a = Uuid::new_v4();
        let mut held = Vec::new();
        for _ in 0..MAX_ENTRIES {
            held.push(
                q.enqueue(entry(&[a], now + Duration::from_secs(60)), now)
                    .unwrap(),
            );
        }
        assert!(
            q.enqueue(entry(&[a], now + Duration::from_secs(60)), now)
                .is_err()
        );
        assert_eq!(q.len(), MAX_ENTRIES);
    });
}

/// Only the agent a request was handed to remembers that it began applying it (and answers
/// "interrupted" instead of applying it again), so an unanswered request goes out again to that
/// agent alone: another agent would write the password a second time. Reachable when the caller's
/// wait (`--writeback-wait-secs`, up to 60) outlasts [`IN_FLIGHT`]; found while building the crash
/// campaign's writeback check (`tests/crash_campaign.rs`).
#[tokio::test(start_paused = true)]
async fn an_unanswered_request_goes_out_again_only_to_the_agent_that_had_it() {
    let q = WritebackQueue::default();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let now = Instant::now();
    let e = entry(&[a, b], now + Duration::from_secs(60));
    let id = e.request.id;
    let _rx = q.enqueue(e, now).unwrap();
    let (got, _) = q.take(a, &[Uuid::nil()], now);
    assert_eq!(got.len(), 1, "either agent may take it first");
    let (got, next) = q.take(b, &[Uuid::nil()], now + IN_FLIGHT);
    assert!(
        got.is_empty(),
        "b never had it, so it would apply it a second time"
    );
    assert_eq!(next, None, "nothing for b to wait for");
    let (got, _) = q.take(a, &[Uuid::nil()], now + IN_FLIGHT);
    assert_eq!(got.len(), 1, "a gets it again (and answers it)");
    assert_eq!(got[0].id, id);
    // If a never answers, the caller gets the failure once the wait is over.
    let end = now + Duration::from_secs(60);
    assert_eq!(q.view(id, end).unwrap().status, "failed");
}
