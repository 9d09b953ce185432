//! Throttling and fault injection, set at start (flags) and at run time (`PUT /admin/faults`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/tenant.rs"]
mod tenant_fixture;

use serde_json::{Value, json};
use tenant_fixture::*;

async fn put_faults(t: &TenantFixture, token: &str, settings: &Value) -> reqwest::Response {
    t.send(&Req::put("/admin/faults").auth(token).json(settings))
        .await
}

#[tokio::test]
async fn write_budget_from_flags_answers_429_with_retry_after_and_applies_nothing() {
    // 10 writes of burst, refilled at 0.1/s. Once they are spent, a batch of which not one
    // operation fits is refused whole (a batch that fits in part: tests/tenant_batches.rs).
    let t =
        TenantFixture::start_with(&["--write-capacity", "10", "--write-refill-per-second", "0.1"]);
    let admin = t.user_token(GA).await;
    let agent = t.register_agent(&admin, "dc1", &["corp.example.com"]).await;
    let config = t
        .create_config(&admin, json!({"domain": "corp.example.com"}))
        .await;
    let ops = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| {
                user_upsert(
                    &format!("a{i}"),
                    1,
                    &format!("u{i}@contoso.onmicrosoft.com"),
                    "U",
                )
            })
            .collect::<Vec<_>>()
    };
    let (status, _) = t
        .post_batch(&agent.token, &config, &batch(ops(0, 10)))
        .await;
    assert_eq!(status, 200);
    let batches = Req::post(format!("/api/v1/configurations/{config}/batches")).auth(&agent.token);
    let r = t.send(&batches.json(&batch(ops(8, 5)))).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // 5 tokens missing at 0.1/s → 50 s.
    assert_eq!(retry, 50);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");
    let users: Value = t.get_json(&admin, "/v1.0/users").await;
    assert_eq!(
        users["value"].as_array().unwrap().len(),
        10,
        "the throttled batch must not be applied"
    );
}

#[tokio::test]
async fn run_time_faults_inject_errors_drops_and_throttled_batch_items() {
    let t = TenantFixture::start();
    let ga = t.user_token(GA).await;
    let hia = t.user_token(HIA).await;
    let agent = t.register_agent(&ga, "dc1", &["corp.example.com"]).await;
    let config = t
        .create_config(&ga, json!({"domain": "corp.example.com"}))
        .await;

    // The admin route: GA only; validation lists every problem; malformed and oversized bodies.
    let faults = Req::put("/admin/faults");
    t.check([
        case("no token", Req::get("/admin/faults"), 401),
        case("HIA", faults.clone().auth(&hia).json(&json!({})), 403),
        case(
            "two invalid rates",
            faults
                .clone()
                .auth(&ga)
                .json(&json!({"errorRate": 3, "dropRate": -1})),
            400,
        )
        .message_has("errorRate")
        .message_has("dropRate"),
        case(
            "a latency of 10^15 ms and a refill that saturates Retry-After",
            faults.clone().auth(&ga).json(&json!({
                "latencyMs": 1_000_000_000_000_000_u64,
                "writes": {"capacity": 1, "refillPerSecond": 1e-300}
            })),
            400,
        )
        .message_has("latencyMs must be at most 60000")
        .message_has("writes.refillPerSecond must be between 0.001"),
        case(
            "unknown field",
            faults.clone().auth(&ga).json(&json!({"bogus": 1})),
            400,
        ),
        case(
            "oversized body",
            faults.auth(&ga).raw_json(oversized_json()),
            413,
        ),
    ])
    .await;
    let current: Value = t.get_json(&ga, "/admin/faults").await;
    assert_eq!(current["errorRate"], 0.0);

    // errorRate 1: every API call is a 503 with Retry-After, and nothing is applied.
    assert_eq!(
        put_faults(&t, &ga, &json!({"errorRate": 1.0}))
            .await
            .status(),
        200
    );
    let b = batch(vec![user_upsert("a", 1, "a@contoso.onmicrosoft.com", "A")]);
    let batches = Req::post(format!("/api/v1/configurations/{config}/batches")).auth(&agent.token);
    let r = t.send(&batches.clone().json(&b)).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    // The admin route itself is not subject to faults, so they can always be switched off.
    assert_eq!(
        put_faults(&t, &ga, &json!({"dropRate": 1.0}))
            .await
            .status(),
        200
    );

    // dropRate 1: the batch is applied but the response is cut; the replay returns the stored results.
    let r = t.build(&t.client, &batches.json(&b)).send().await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.json::<Value>().await.is_err(),
    };
    assert!(failed, "the response should have been cut");
    assert_eq!(put_faults(&t, &ga, &json!({})).await.status(), 200);
    let (status, replay) = t.post_batch(&agent.token, &config, &b).await;
    assert_eq!(status, 200);
    assert_eq!(
        replay["replayed"], true,
        "the dropped batch must have been applied once"
    );

    // A read budget of 3: the 4th and 5th $batch items get their own 429 with Retry-After.
    assert_eq!(
        put_faults(
            &t,
            &ga,
            &json!({"reads": {"capacity": 3, "refillPerSecond": 0.01}})
        )
        .await
        .status(),
        200
    );
    let reqs: Vec<Value> = (0..5)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    let out: Value = t
        .send(
            &Req::post("/v1.0/$batch")
                .auth(&ga)
                .json(&json!({"requests": reqs})),
        )
        .await
        .json()
        .await
        .unwrap();
    let statuses: Vec<u64> = out["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(out["responses"][3]["headers"]["Retry-After"], "100");
    let r = t.send(&Req::get("/v1.0/users").auth(&ga)).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));

    // The realistic profile: 7,000 writes per 5 minutes.
    let realistic: Value = json!({"writes": {"capacity": 7000, "refillPerSecond": 7000.0 / 300.0}});
    let set: Value = put_faults(&t, &ga, &realistic).await.json().await.unwrap();
    assert_eq!(set["writes"]["capacity"], 7000.0);
}

#[tokio::test]
async fn realistic_profile_from_the_command_line() {
    let t = TenantFixture::start_with(&["--throttle", "realistic", "--latency-ms", "1"]);
    let ga = t.user_token(GA).await;
    let s: Value = t.get_json(&ga, "/admin/faults").await;
    assert_eq!(s["writes"]["capacity"], 7000.0);
    assert!((s["writes"]["refillPerSecond"].as_f64().unwrap() - 7000.0 / 300.0).abs() < 1e-9);
    assert_eq!(s["latencyMs"], 1);
}
