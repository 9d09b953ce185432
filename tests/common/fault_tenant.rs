//! The fault campaign's tenant faults (`tests/fault_campaign.rs`): a 429 storm, 5xx + latency +
//! dropped connections, a crash and restart while the agent pushes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::json;

use crate::fault_report::{
    BatchOutcome, FaultReport, TenantLine, outcome_counts, set_faults, tenant_lines, tenant_offset,
};
use crate::tenant_fixture::TenantFixture;
use crate::{Campaign, SHOW_WITHIN};

/// (1) A 429 storm: a write budget of 4 operations refilled at 0.25/s (so `Retry-After` and the
/// per-item `retryAfterSeconds` run to 4-16 s) while AD changes, lifted once the tenant has refused
/// or cut at least three batches. The agent must not send a batch inside a `Retry-After` it was given.
pub async fn storm_429(c: &mut Campaign) -> Vec<FaultReport> {
    let mut r = FaultReport::new(
        "tenant-429-storm",
        "write budget capacity 4, refill 0.25/s (429 + Retry-After, per-item Throttled), lifted after 3 throttled answers",
    );
    let from = tenant_offset(&c.t);
    set_faults(
        &c.t,
        &json!({"writes": {"capacity": 4, "refillPerSecond": 0.25}}),
    )
    .await;
    let storm = Instant::now();
    let mut changes = c.changes(6).len();
    let throttled = |t: &TenantFixture| {
        tenant_lines(t, from)
            .iter()
            .filter(|l| {
                matches!(
                    l.batch_outcome(),
                    Some(BatchOutcome::Refused429 | BatchOutcome::Partial)
                )
            })
            .count()
    };
    // Waves of changes keep operations coming until the tenant has throttled three answers.
    let mut next_wave = Instant::now() + Duration::from_secs(3);
    while throttled(&c.t) < 3 && storm.elapsed() < SHOW_WITHIN {
        if Instant::now() >= next_wave {
            changes += c.changes(3).len();
            next_wave = Instant::now() + Duration::from_secs(3);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    set_faults(&c.t, &json!({})).await;
    r.changes = changes;
    let storm_secs = storm.elapsed().as_secs_f64();
    let lines = tenant_lines(&c.t, from);
    // Every batch request the tenant saw inside a Retry-After it had answered (1 s after the
    // answer, for requests already in flight, to 0.5 s before its end).
    let requests: Vec<&TenantLine> = lines
        .iter()
        .filter(|l| l.batch_outcome().is_some())
        .collect();
    let mut early = Vec::new();
    let mut max_retry_after = 0;
    for answer in requests.iter().filter(|l| {
        matches!(
            l.batch_outcome(),
            Some(BatchOutcome::Refused429 | BatchOutcome::Partial)
        )
    }) {
        let Some(ra) = answer.retry_after() else {
            continue;
        };
        max_retry_after = max_retry_after.max(ra);
        let (lo, hi) = (answer.at + 1.0, answer.at + ra as f64 - 0.5);
        early.extend(requests.iter().filter(|l| l.at > lo && l.at < hi).map(|l| {
            format!(
                "{:?} {:.1}s into a Retry-After of {ra}s",
                l.batch_outcome(),
                l.at - answer.at
            )
        }));
    }
    let counts = outcome_counts(&lines);
    r.detail("stormSeconds", (storm_secs * 10.0).round() / 10.0);
    r.detail(
        "batchRequestsDuringStorm",
        requests
            .iter()
            .filter(|l| l.at - lines.first().map_or(0.0, |f| f.at) <= storm_secs)
            .count(),
    );
    r.detail("tenantAnswers", json!(counts));
    r.detail("maxRetryAfterSeconds", max_retry_after);
    r.check(
        "the storm was injected",
        if throttled(&c.t) >= 1 {
            Ok(())
        } else {
            Err("the tenant throttled no batch".into())
        },
    );
    r.check(
        "no batch inside a Retry-After",
        if early.is_empty() {
            Ok(())
        } else {
            Err(early.join("; "))
        },
    );
    c.converge(&mut r).await;
    c.after(&mut r);
    vec![r]
}

/// (2) Half the API calls answered 503, 300 ms of latency on each, a fifth of the answers cut
/// mid-response (the batch applied, the acknowledgement lost); cleared once each kind was seen.
pub async fn errors_5xx(c: &mut Campaign) -> Vec<FaultReport> {
    let mut r = FaultReport::new(
        "tenant-5xx-latency-drops",
        "errorRate 0.5 (503 + Retry-After 1), latencyMs 300, dropRate 0.2 on /api and /v1.0; cleared after 3 503s and 1 drop",
    );
    let from = tenant_offset(&c.t);
    set_faults(
        &c.t,
        &json!({"errorRate": 0.5, "latencyMs": 300, "dropRate": 0.2}),
    )
    .await;
    let start = Instant::now();
    let mut changes = c.changes(4).len();
    let seen = |t: &TenantFixture| {
        let m = outcome_counts(&tenant_lines(t, from));
        (
            m.get("injected503").copied().unwrap_or(0),
            m.get("dropped").copied().unwrap_or(0),
        )
    };
    // At least 10 s of faults, and until each kind was seen; waves of changes keep batches coming.
    let mut next_wave = Instant::now() + Duration::from_secs(3);
    loop {
        let (e, d) = seen(&c.t);
        let long_enough = start.elapsed() >= Duration::from_secs(10);
        if (long_enough && e >= 3 && d >= 1) || start.elapsed() > SHOW_WITHIN {
            break;
        }
        if Instant::now() >= next_wave {
            changes += c.changes(2).len();
            next_wave = Instant::now() + Duration::from_secs(3);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    set_faults(&c.t, &json!({})).await;
    r.changes = changes;
    let (e, d) = seen(&c.t);
    r.check(
        "the faults were injected",
        if e >= 1 && d >= 1 {
            Ok(())
        } else {
            Err(format!(
                "{e} injected 503s and {d} drops in {SHOW_WITHIN:?}"
            ))
        },
    );
    r.detail(
        "faultSeconds",
        (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    );
    c.converge(&mut r).await;
    r.detail(
        "tenantAnswers",
        json!(outcome_counts(&tenant_lines(&c.t, from))),
    );
    c.after(&mut r);
    vec![r]
}

/// (3) The tenant killed (SIGKILL) and restarted on the same address while the agent pushes a
/// change of ~240 operations (120 contacts and a group holding them, batches of 50, 400 ms of
/// latency on each call so batches are in flight), right after the first batch of it is applied.
pub async fn tenant_restart(c: &mut Campaign) -> Vec<FaultReport> {
    let mut r = FaultReport::new(
        "tenant-restart-mid-batch",
        "tenant SIGKILLed and restarted on its address after the first applied batch of a 241-operation change (latency 400 ms per call)",
    );
    set_faults(&c.t, &json!({"latencyMs": 400})).await;
    let n = c.w.next();
    let base = c.w.ous[0].clone();
    let mut ldif = String::new();
    let mut members = String::new();
    for i in 0..120 {
        let cn = format!("fbulk{n}x{i:03}");
        ldif.push_str(&format!(
            "dn: CN={cn},{base}\nchangetype: add\nobjectClass: contact\ngivenName: {cn}\nsn: Bulk\nmail: {cn}@bulk.example\n\n"
        ));
        members.push_str(&format!("member: CN={cn},{base}\n"));
    }
    ldif.push_str(&format!(
        "dn: CN=fbulkgroup{n},{}\nchangetype: add\nobjectClass: group\nsAMAccountName: fbulkgroup{n}\ngroupType: -2147483646\n{members}\n",
        c.w.ous[1]
    ));
    let from = tenant_offset(&c.t);
    let mut changes = c.changes(2);
    c.dc.ldif_admin(&ldif);
    changes.push("120 contacts and a group of them".into());
    r.changes = changes.len() + 120;
    let start = Instant::now();
    let first_applied = loop {
        let applied = tenant_lines(&c.t, from)
            .iter()
            .filter(|l| l.batch_outcome() == Some(BatchOutcome::Applied))
            .filter(|l| l.fields["operations"].as_u64().unwrap_or(0) >= 20)
            .count();
        if applied >= 1 || start.elapsed() > SHOW_WITHIN {
            break applied;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    c.t.crash_and_restart_in_place();
    let restarted = tenant_offset(&c.t);
    r.check(
        "the restart came while the change was pushed",
        if first_applied >= 1 {
            Ok(())
        } else {
            Err(format!("no batch of it was applied within {SHOW_WITHIN:?}"))
        },
    );
    r.detail(
        "restartAfterSeconds",
        (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    );
    c.converge(&mut r).await;
    let after = outcome_counts(&tenant_lines(&c.t, restarted));
    let all = outcome_counts(&tenant_lines(&c.t, from));
    r.check(
        "batches went on after the restart",
        if after.get("applied").copied().unwrap_or(0) >= 1 {
            Ok(())
        } else {
            Err("no batch was applied after the restart: the restart was not mid-push".into())
        },
    );
    r.detail("tenantAnswersAfterRestart", json!(after));
    r.detail("tenantAnswersAll", json!(all));
    c.after(&mut r);
    vec![r]
}
