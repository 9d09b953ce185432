//! Fuzzes the tenant's query strings as a request meets them: the route guard's strict check
//! (`route_guard::check_query`, for an OData row and a row with named parameters), then the Graph
//! reads' OData options (`graph::options`: `$filter`, `$select`, `$top`, `$skiptoken`), and axum's
//! `Query` extractor for the typed queries (`LogQuery`, the name/value maps). Nothing may panic; a
//! rejection is a 400.
//!
//! Property: a query the guard and the options parser accept yields a `@odata.nextLink` whose query
//! the guard and the parser accept again — the tenant must follow its own links.
#![no_main]

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::Uri;
use cloudsync_api::logs::LogQuery;
use cloudsync_tenant::graph::{next_link, options};
use cloudsync_tenant::graph_query::Filter;
use cloudsync_tenant::route_guard::check_query;
use cloudsync_tenant::routes::QueryRule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let _ = check_query(
        QueryRule::Params(&["userPrincipalName", "waitSeconds"]),
        Some(query),
    );
    let _ = check_query(QueryRule::None, Some(query));
    let _ = Filter::parse(query, "User");
    if let Ok(uri) = format!("/api/v1/provisioningLogs?{query}").parse::<Uri>() {
        let _ = Query::<LogQuery>::try_from_uri(&uri);
        let _ = Query::<HashMap<String, String>>::try_from_uri(&uri);
    }
    if let Err(e) = check_query(QueryRule::OData, Some(query)) {
        assert_eq!(e.status(), 400, "{e}");
        return;
    }
    let o = match options(query, "User") {
        Ok(o) => o,
        Err(e) => {
            assert_eq!(e.status(), 400, "{e}");
            return;
        }
    };
    let last = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    let link = next_link("https://tenant.test", "users", &o, last);
    let (_, again) = link.split_once('?').expect("a next link has a query");
    if let Err(e) = check_query(QueryRule::OData, Some(again)) {
        panic!("the guard refuses the tenant's own next link {link:?} (from {query:?}): {e}");
    }
    if let Err(e) = options(again, "User") {
        panic!(
            "the options parser refuses the tenant's own next link {link:?} (from {query:?}): {e}"
        );
    }
});
