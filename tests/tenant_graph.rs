//! The Graph-shaped reads against the real tenant binary: paging, $select, $filter, members, $batch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/tenant.rs"]
mod tenant_fixture;

use serde_json::{Value, json};
use tenant_fixture::*;

async fn populated() -> (TenantFixture, String, Vec<String>) {
    let t = TenantFixture::start();
    let admin = t.user_token(GA).await;
    let agent = t.register_agent(&admin, "dc1", &["corp.example.com"]).await;
    let config = t
        .create_config(&admin, json!({"domain": "corp.example.com"}))
        .await;
    let mut ops: Vec<Value> = (0..25)
        .map(|i| {
            user_upsert(
                &format!("anchor-{i:02}"),
                1,
                &format!("user{i:02}@contoso.onmicrosoft.com"),
                &format!("User {i:02}"),
            )
        })
        .collect();
    ops.push(user_upsert(
        "anchor-ann",
        1,
        "ann.o'neil@contoso.onmicrosoft.com",
        "Ann O'Neil",
    ));
    ops.push(group_upsert("anchor-g", 1, "Engineering"));
    ops.push(json!({"op": "upsert", "kind": "contact", "sourceAnchor": "anchor-c", "version": 1, "attributes": {"displayName": "Vendor", "mail": "v@vendor.example"}}));
    for i in 0..3 {
        ops.push(json!({"op": "addMember", "groupAnchor": "anchor-g", "memberAnchor": format!("anchor-{i:02}")}));
    }
    ops.push(json!({"op": "addMember", "groupAnchor": "anchor-g", "memberAnchor": "anchor-c"}));
    let (status, r) = t.post_batch(&agent.token, &config, &batch(ops)).await;
    assert_eq!(status, 200);
    let ids = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["objectId"].as_str().unwrap_or_default().to_owned())
        .collect();
    (t, admin, ids)
}

async fn get(t: &TenantFixture, token: &str, path: &str) -> (u16, Value) {
    let r = t
        .client
        .get(if path.starts_with("http") {
            path.to_owned()
        } else {
            t.at(path)
        })
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn users_list_select_filter_and_paging() {
    let (t, admin, ids) = populated().await;

    // Paging with $top walks every user exactly once via @odata.nextLink.
    let mut seen = Vec::new();
    let mut next =
        Some(t.at("/v1.0/users?$top=10&$select=userPrincipalName,onPremisesImmutableId"));
    let mut pages = 0;
    while let Some(url) = next {
        let (status, page) = get(&t, &admin, &url).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for u in page["value"].as_array().unwrap() {
            assert!(
                u.get("displayName").is_none(),
                "$select must drop displayName: {u}"
            );
            seen.push(u["onPremisesImmutableId"].as_str().unwrap().to_owned());
        }
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
        assert!(
            next.as_deref().is_none_or(|n| n.starts_with(&t.url)),
            "nextLink must point at this tenant: {next:?}"
        );
    }
    assert_eq!(pages, 3);
    seen.sort();
    let mut want: Vec<String> = (0..25).map(|i| format!("anchor-{i:02}")).collect();
    want.push("anchor-ann".into());
    want.sort();
    assert_eq!(seen, want);

    // $filter: eq (case-insensitive, quote escaping), startswith, and.
    let (_, r) = get(
        &t,
        &admin,
        "/v1.0/users?$filter=userPrincipalName%20eq%20'ANN.O''NEIL@contoso.onmicrosoft.com'",
    )
    .await;
    assert_eq!(r["value"].as_array().unwrap().len(), 1, "{r}");
    let ann = &r["value"][0];
    assert_eq!(ann["displayName"], "Ann O'Neil");
    assert_eq!(ann["onPremisesSyncEnabled"], true);
    assert_eq!(ann["onPremisesDomainName"], "corp.example.com");
    assert_eq!(ann["onPremisesSamAccountName"], "ann.o'neil");
    assert_eq!(ann["onPremisesSecurityIdentifier"], "S-1-5-21-1-2-3-1105");
    assert!(
        ann["onPremisesDistinguishedName"]
            .as_str()
            .unwrap()
            .starts_with("CN=Ann O'Neil,")
    );
    assert!(
        ann["onPremisesLastSyncDateTime"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let (_, r) = get(
        &t,
        &admin,
        "/v1.0/users?$filter=startswith(displayName,'user 1')",
    )
    .await;
    assert_eq!(r["value"].as_array().unwrap().len(), 10);
    let (_, r) = get(&t, &admin, "/v1.0/users?$filter=startswith(displayName,'User 1')%20and%20onPremisesImmutableId%20eq%20'anchor-12'").await;
    assert_eq!(r["value"].as_array().unwrap().len(), 1);
    assert_eq!(
        r["value"][0]["userPrincipalName"],
        "user12@contoso.onmicrosoft.com"
    );

    // By id and by UPN; unknown → 404 OData.
    let (status, by_id) = get(&t, &admin, &format!("/v1.0/users/{}", ids[25])).await;
    assert_eq!(status, 200);
    assert_eq!(by_id["onPremisesImmutableId"], "anchor-ann");
    let (_, by_upn) = get(
        &t,
        &admin,
        "/v1.0/users/user03%40contoso.onmicrosoft.com?$select=id",
    )
    .await;
    assert_eq!(by_upn["id"], json!(ids[3]));
    assert!(by_upn.get("userPrincipalName").is_none());
    let mut cases = vec![case(
        "unknown user",
        Req::get("/v1.0/users/nobody@contoso.onmicrosoft.com").auth(&admin),
        404,
    )];

    // Malformed options → 400 OData.
    for bad in [
        "/v1.0/users?$filter=mail%20eq%20'x'",
        "/v1.0/users?$filter=displayName%20eq%20",
        "/v1.0/users?$top=0",
        "/v1.0/users?$top=abc",
        "/v1.0/users?$skiptoken=zz",
        "/v1.0/users?$orderby=displayName",
    ] {
        cases.push(case("malformed options", Req::get(bad).auth(&admin), 400));
    }
    t.check(cases).await;
}

#[tokio::test]
async fn groups_members_contacts_and_auth() {
    let (t, admin, ids) = populated().await;
    let (_, groups) = get(&t, &admin, "/v1.0/groups").await;
    assert_eq!(groups["value"].as_array().unwrap().len(), 1);
    let gid = groups["value"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(groups["value"][0]["displayName"], "Engineering");
    let (_, members) = get(&t, &admin, &format!("/v1.0/groups/{gid}/members?$top=2")).await;
    assert_eq!(members["value"].as_array().unwrap().len(), 2);
    let next = members["@odata.nextLink"].as_str().unwrap().to_owned();
    let (_, rest) = get(&t, &admin, &next).await;
    assert_eq!(rest["value"].as_array().unwrap().len(), 2);
    assert!(rest.get("@odata.nextLink").is_none());
    let mut member_ids: Vec<String> = members["value"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["value"].as_array().unwrap())
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    member_ids.sort();
    let mut want = vec![
        ids[0].clone(),
        ids[1].clone(),
        ids[2].clone(),
        ids[27].clone(),
    ];
    want.sort();
    assert_eq!(member_ids, want);
    let types: Vec<&str> = members["value"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["value"].as_array().unwrap())
        .map(|m| m["@odata.type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"#microsoft.graph.orgContact") && types.contains(&"#microsoft.graph.user"),
        "{types:?}"
    );
    let (_, contacts) = get(&t, &admin, "/v1.0/contacts").await;
    assert_eq!(contacts["value"][0]["mail"], "v@vendor.example");
    let mut cases = vec![
        case(
            "members of an unknown group",
            Req::get("/v1.0/groups/00000000-0000-0000-0000-000000000000/members").auth(&admin),
            404,
        ),
        case(
            "unknown collection",
            Req::get("/v1.0/applications").auth(&admin),
            404,
        ),
    ];

    // Wrong token, wrong role (a plain user), expired-looking garbage.
    let user = t.user_token(USER).await;
    for path in [
        "/v1.0/users",
        "/v1.0/groups",
        &format!("/v1.0/groups/{gid}/members"),
        "/v1.0/contacts",
        &format!("/v1.0/users/{}", ids[0]),
    ] {
        cases.push(case("no token", Req::get(path), 401));
        cases.push(case(
            "garbage token",
            Req::get(path).auth("eyJ.eyJ.sig"),
            401,
        ));
        cases.push(case("plain user", Req::get(path).auth(&user), 403));
    }
    // A token of another tenant instance (different signing key) is refused.
    let other = TenantFixture::start();
    let foreign = other.user_token(GA).await;
    cases.push(case(
        "token of another tenant",
        Req::get("/v1.0/users").auth(&foreign),
        401,
    ));
    t.check(cases).await;
}

#[tokio::test]
async fn json_batch_answers_each_request_and_limits_to_twenty() {
    let (t, admin, ids) = populated().await;
    let url = t.at("/v1.0/$batch");
    let body = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/users?$top=1&$select=id"},
        {"id": "2", "method": "GET", "url": format!("/users/{}", ids[4])},
        {"id": "3", "method": "GET", "url": "/users/missing@contoso.onmicrosoft.com"},
        {"id": "4", "method": "PATCH", "url": "/users/x", "body": {}},
        {"id": "5", "method": "GET", "url": "users?$filter=bogus%20eq%20'1'"},
    ]});
    let r = t.send(&Req::post(&url).auth(&admin).json(&body)).await;
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.unwrap();
    let by_id = |id: &str| {
        out["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("1")["status"], 200);
    assert_eq!(by_id("1")["body"]["value"].as_array().unwrap().len(), 1);
    assert_eq!(by_id("2")["body"]["onPremisesImmutableId"], "anchor-04");
    assert_eq!(by_id("3")["status"], 404);
    assert_eq!(
        by_id("3")["body"]["error"]["code"],
        "Request_ResourceNotFound"
    );
    assert_eq!(by_id("4")["status"], 405);
    assert_eq!(by_id("5")["status"], 400);

    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    t.check([case(
        "21 requests",
        Req::post(&url)
            .auth(&admin)
            .json(&json!({"requests": too_many})),
        400,
    )])
    .await;
    let twenty: Vec<Value> = (0..20)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/groups"}))
        .collect();
    let ok: Value = t
        .send(
            &Req::post(&url)
                .auth(&admin)
                .json(&json!({"requests": twenty})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ok["responses"].as_array().unwrap().len(), 20);
    let dup = json!({"requests": [{"id": "a", "method": "GET", "url": "/users"}, {"id": "a", "method": "GET", "url": "/users"}]});
    let user = t.user_token(USER).await;
    t.check([
        case(
            "duplicate ids",
            Req::post(&url).auth(&admin).json(&dup),
            400,
        ),
        case(
            "malformed JSON",
            Req::post(&url).auth(&admin).raw_json("{\"requests\":["),
            400,
        ),
        case(
            "oversized body",
            Req::post(&url).auth(&admin).raw_json(oversized_json()),
            413,
        ),
        case("no token", Req::post(&url).json(&body), 401),
        case("plain user", Req::post(&url).auth(&user).json(&body), 403),
    ])
    .await;
}
