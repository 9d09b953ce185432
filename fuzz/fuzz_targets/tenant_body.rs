//! Fuzzes the tenant's request bodies, decoded exactly as its handlers decode them: the same
//! extractors (`ApiJson`, `SecretJson`, axum's `Form`) on an axum request carrying the bytes, for
//! every body type a route of `routes::ROUTES` takes, then the pure checks the handlers run next
//! (throttle settings' ranges, domain names, versions, password lengths). A rejection must be a
//! 4xx `ApiError` whose OData body serializes; nothing may panic.
//!
//! Input: byte 0 picks the body type (modulo the number of types), the rest is the body.
#![no_main]

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use cloudsync_api::agent::{
    AgentDomains, HeartbeatRequest, RegistrationRequest, valid_domain_name,
};
use cloudsync_api::auth::TokenRequest;
use cloudsync_api::config::{ConfigurationSpec, RestartRequest};
use cloudsync_api::ops::OperationBatch;
use cloudsync_api::release::{PublishRequest, parse_version};
use cloudsync_api::writeback::{WritebackAnswer, WritebackKey, WritebackSwitches};
use cloudsync_tenant::error::{ApiError, ApiJson};
use cloudsync_tenant::graph_batch::BatchRequest;
use cloudsync_tenant::portal_auth::{SignInForm, SignOutForm};
use cloudsync_tenant::signin::SignInRequest;
use cloudsync_tenant::sspr::{CodeRequest, SsprRequest};
use cloudsync_tenant::throttle::ThrottleSettings;
use cloudsync_tenant::writeback_graph::{PatchBody, ResetBody};
use cloudsync_tenant::writeback_submit::SecretJson;
use libfuzzer_sys::fuzz_target;

/// Runs an extractor's future. The body is in memory, so it completes without waiting; a future
/// still pending after many polls would be a bug in this harness, not a finding.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("an extractor over an in-memory body did not complete");
}

fn request(content_type: &str, body: &[u8]) -> Request {
    Request::builder()
        .method("POST")
        .uri("/fuzz")
        .header(CONTENT_TYPE, content_type)
        .body(Body::from(body.to_vec()))
        .expect("a valid request")
}

fn check_rejection(e: &ApiError) {
    assert!(
        e.status().is_client_error(),
        "{} for a bad body",
        e.status()
    );
    serde_json::to_vec(&e.body()).expect("an OData error serializes");
}

fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    match block_on(ApiJson::<T>::from_request(
        request("application/json", body),
        &(),
    )) {
        Ok(ApiJson(v)) => Some(v),
        Err(e) => {
            check_rejection(&e);
            None
        }
    }
}

fn secret_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    match block_on(SecretJson::<T>::from_request(
        request("application/json", body),
        &(),
    )) {
        Ok(SecretJson(v)) => Some(v),
        Err(e) => {
            check_rejection(&e);
            None
        }
    }
}

fn form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    let req = request("application/x-www-form-urlencoded", body);
    block_on(axum::Form::<T>::from_request(req, &()))
        .ok()
        .map(|axum::Form(v)| v)
}

const KINDS: u8 = 19;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    match kind % KINDS {
        0 => {
            if let Some(b) = json::<OperationBatch>(body) {
                let _ = format!("{b:?}");
            }
        }
        1 => {
            if let Some(r) = json::<RegistrationRequest>(body) {
                r.domains.iter().for_each(|d| {
                    std::hint::black_box(valid_domain_name(d));
                });
            }
        }
        2 => {
            let _ = json::<HeartbeatRequest>(body);
        }
        3 => {
            if let Some(d) = json::<AgentDomains>(body) {
                d.domains.iter().for_each(|d| {
                    std::hint::black_box(valid_domain_name(d));
                });
            }
        }
        4 => {
            let _ = json::<ConfigurationSpec>(body);
        }
        5 => {
            let _ = json::<RestartRequest>(body);
        }
        6 => {
            if let Some(p) = json::<PublishRequest>(body) {
                let _ = parse_version(&p.version);
            }
        }
        7 => {
            if let Some(s) = json::<ThrottleSettings>(body) {
                let _ = s.validate();
            }
        }
        8 => {
            let _ = json::<BatchRequest>(body);
        }
        9 => {
            let _ = json::<SignInRequest>(body);
        }
        10 => {
            let _ = json::<CodeRequest>(body);
        }
        11 => {
            let _ = secret_json::<SsprRequest>(body);
        }
        12 => {
            let _ = secret_json::<ResetBody>(body);
        }
        13 => {
            let _ = secret_json::<PatchBody>(body);
        }
        14 => {
            let _ = json::<WritebackKey>(body);
        }
        15 => {
            let _ = json::<WritebackAnswer>(body);
        }
        16 => {
            let _ = json::<WritebackSwitches>(body);
        }
        17 => {
            let _ = form::<TokenRequest>(body);
        }
        _ => {
            let _ = form::<SignInForm>(body);
            let _ = form::<SignOutForm>(body);
            let _ = form::<HashMap<String, String>>(body);
        }
    }
});
