//! Issue 18 item 2 against the real tenant binary: two agents, each registered for its own domain
//! and configuration. Every kind of operation the second agent sends about the first
//! configuration's objects is refused with its per-item code, and the victim is unchanged (read back
//! through Graph; its synced password still signs in and the attacker's does not). Reserved
//! attribute names and out-of-range versions are refused too, and agents read only their own
//! configurations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/tenant.rs"]
mod tenant_fixture;

use cloudsync_agent::nt_hash::NtHash;
use cloudsync_agent::phs::OrgIdHash;
use serde_json::{Value, json};
use tenant_fixture::*;

/// DSInternals' published OrgId hash of `Pa$$w0rd` (the victim's synced password).
const VICTIM_PPH1: &str = "v1;PPH1_MD4,317ee9d1dec6508fa510,1000,7eaea8e1628dffee62cf319f4e1fc05254da30a1d42ff755ff352f5b13497531;";
const VICTIM_PASSWORD: &str = "Pa$$w0rd";
const ATTACKER_PASSWORD: &str = "Attacker-Passw0rd!";
const VICTIM_UPN: &str = "victim@corp.example.com";

/// The victim configuration's objects as Graph shows them: the victim, the other user, the group
/// and its members.
async fn snapshot(t: &TenantFixture, admin: &str) -> Value {
    let users = t.get_json(admin, "/v1.0/users").await;
    let groups = t.get_json(admin, "/v1.0/groups").await;
    let staff = groups["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["onPremisesImmutableId"] == "staff")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let members = t
        .get_json(admin, format!("/v1.0/groups/{staff}/members"))
        .await;
    json!({"users": users["value"], "groups": groups["value"], "members": members["value"]})
}

/// A tenant with two agents, each serving its own domain with one configuration (password hash
/// sync on): A (`corp.example.com`) is the victim, B (`fabrikam.example.com`) the other agent.
struct Two {
    t: TenantFixture,
    admin: String,
    a: Agent,
    b: Agent,
    config_a: String,
    config_b: String,
}

impl Two {
    async fn start() -> Two {
        let t = TenantFixture::start();
        let admin = t.user_token(HIA).await;
        let a = t
            .register_agent(&admin, "dc1.corp.example.com", &["corp.example.com"])
            .await;
        let b = t
            .register_agent(
                &admin,
                "dc1.fabrikam.example.com",
                &["fabrikam.example.com"],
            )
            .await;
        let config = |domain: &str| json!({"domain": domain, "passwordHashSync": true});
        let config_a = t.create_config(&admin, config("corp.example.com")).await;
        let config_b = t
            .create_config(&admin, config("fabrikam.example.com"))
            .await;
        Two {
            t,
            admin,
            a,
            b,
            config_a,
            config_b,
        }
    }
}

/// Posts one batch of `ops` as `agent` to `config` and returns the per-item statuses.
async fn results(t: &TenantFixture, (agent, config): (&str, &str), ops: Vec<Value>) -> Vec<String> {
    let (status, body) = t.post_batch(agent, config, &batch(ops)).await;
    assert_eq!(status, 200, "{body}");
    statuses(&body)
}

fn with_attribute(mut op: Value, name: &str, value: Value) -> Value {
    op["attributes"][name] = value;
    op
}

#[tokio::test]
async fn a_second_agent_cannot_act_on_another_configurations_objects() {
    let Two {
        t,
        admin,
        a,
        b,
        config_a,
        config_b,
    } = Two::start().await;
    let as_b = (&b.token[..], &config_b[..]);

    // The victim configuration: two users, a group with one member, a synced password hash.
    let (status, body) = t
        .post_batch(&a.token, &config_a, &batch(vec![
            user_upsert("victim", 10, VICTIM_UPN, "Vic Tim"),
            user_upsert("member", 11, "member@corp.example.com", "Mem Ber"),
            group_upsert("staff", 12, "Staff"),
            json!({"op": "addMember", "groupAnchor": "staff", "memberAnchor": "victim"}),
            json!({"op": "setPasswordHash", "sourceAnchor": "victim", "version": 13, "credential": VICTIM_PPH1}),
        ]))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(statuses(&body), ["success"; 5]);
    // The attacker's own objects, to mix into membership operations.
    assert_eq!(
        results(
            &t,
            as_b,
            vec![
                user_upsert("b-user", 5, "b-user@fabrikam.example.com", "B User"),
                group_upsert("b-group", 6, "B Group"),
            ]
        )
        .await,
        ["success"; 2]
    );
    let before = snapshot(&t, &admin).await;
    let victim_id = before["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["userPrincipalName"] == VICTIM_UPN)
        .unwrap()["id"]
        .clone();
    assert_eq!(signin(&t, VICTIM_UPN, VICTIM_PASSWORD).await, 200);

    let attacker_hash =
        OrgIdHash::compute_new(&NtHash::from_password(ATTACKER_PASSWORD)).to_string();
    let owned = "error:OwnedByAnotherConfiguration";
    let invalid = "error:InvalidAttribute";
    let out_of_range = "error:VersionOutOfRange";
    // (case, the attacker's operation on its own configuration, the per-item answer)
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "update (rename) the victim",
            user_upsert("victim", 20, VICTIM_UPN, "Renamed"),
            owned,
        ),
        (
            "update the victim as another kind",
            group_upsert("victim", 20, "Renamed"),
            owned,
        ),
        (
            "create with the victim's UPN",
            user_upsert("b-new", 21, VICTIM_UPN, "Copy"),
            owned,
        ),
        (
            "create with the victim's UPN in other case",
            user_upsert("b-new", 21, "VICTIM@Corp.Example.com", "Copy"),
            owned,
        ),
        (
            "move the victim's UPN onto an own user",
            user_upsert("b-user", 22, VICTIM_UPN, "B User"),
            owned,
        ),
        (
            "delete the victim",
            json!({"op": "delete", "kind": "user", "sourceAnchor": "victim", "version": 23}),
            owned,
        ),
        (
            "delete the victim's group",
            json!({"op": "delete", "kind": "group", "sourceAnchor": "staff", "version": 23}),
            owned,
        ),
        (
            "set the victim's password hash",
            json!({"op": "setPasswordHash", "sourceAnchor": "victim", "version": 24, "credential": attacker_hash}),
            owned,
        ),
        (
            "add an own user to the victim's group",
            json!({"op": "addMember", "groupAnchor": "staff", "memberAnchor": "b-user"}),
            owned,
        ),
        (
            "add the victim to an own group",
            json!({"op": "addMember", "groupAnchor": "b-group", "memberAnchor": "victim"}),
            owned,
        ),
        (
            "remove the victim from its group",
            json!({"op": "removeMember", "groupAnchor": "staff", "memberAnchor": "victim"}),
            owned,
        ),
        (
            "huge version on the victim",
            user_upsert("victim", 1_000_000_000_000, VICTIM_UPN, "Renamed"),
            out_of_range,
        ),
        (
            "huge version on an own object",
            user_upsert(
                "b-user",
                1_000_000_000_000,
                "b-user@fabrikam.example.com",
                "B User",
            ),
            out_of_range,
        ),
        (
            "version past 2^53",
            json!({"op": "delete", "kind": "group", "sourceAnchor": "b-group", "version": 1u64 << 60}),
            out_of_range,
        ),
        (
            "attribute id (the victim's id)",
            with_attribute(
                user_upsert("b-user", 25, "b-user@fabrikam.example.com", "B User"),
                "id",
                victim_id.clone(),
            ),
            invalid,
        ),
        (
            "attribute Id (a derived name in another case)",
            with_attribute(
                user_upsert("b-user", 25, "b-user@fabrikam.example.com", "B User"),
                "Id",
                victim_id.clone(),
            ),
            invalid,
        ),
        (
            "attribute onPremisesImmutableId",
            with_attribute(
                user_upsert("b-user", 25, "b-user@fabrikam.example.com", "B User"),
                "onPremisesImmutableId",
                json!("victim"),
            ),
            invalid,
        ),
        (
            "attribute onPremisesSyncEnabled",
            with_attribute(
                group_upsert("b-group", 25, "B Group"),
                "onPremisesSyncEnabled",
                json!(false),
            ),
            invalid,
        ),
        (
            "attribute @odata.type",
            with_attribute(
                group_upsert("b-group", 25, "B Group"),
                "@odata.type",
                json!("#microsoft.graph.user"),
            ),
            invalid,
        ),
    ];
    // One batch, so the refusals do not quarantine the attacker's configuration (three failed
    // batches in a row would); each result is per item, in order.
    let (status, body) = t
        .post_batch(
            &b.token,
            &config_b,
            &batch(cases.iter().map(|(_, op, _)| op.clone()).collect()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let got = statuses(&body);
    for (i, (name, _, want)) in cases.iter().enumerate() {
        assert_eq!(got[i], *want, "{name}: {}", body["results"][i]);
        let result = &body["results"][i];
        assert_eq!(result["error"]["retriable"], false, "{name}: {result}");
        if *want == owned {
            // The refusal names neither the other configuration nor the victim's object id.
            let message = result["error"]["message"].as_str().unwrap();
            assert!(!message.contains(&config_a), "{name}: {message}");
            assert!(result.get("objectId").is_none(), "{name}: {result}");
        }
    }

    // Agents read only their own configurations.
    let listed = t.get_json(&b.token, "/api/v1/configurations").await;
    let ids: Vec<&str> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [config_b.as_str()], "{listed}");
    t.check([case(
        "an agent reads another domain's configuration",
        Req::get(format!("/api/v1/configurations/{config_a}")).auth(&b.token),
        404,
    )])
    .await;
    // Through Graph too: the other configuration's objects are 404 to the agent and left out of
    // its lists, in `$batch` as well; its own objects read as before.
    t.check([
        case(
            "an agent reads another configuration's user by UPN",
            Req::get(format!("/v1.0/users/{VICTIM_UPN}")).auth(&b.token),
            404,
        ),
        case(
            "an agent reads another configuration's user by id",
            Req::get(format!("/v1.0/users/{}", victim_id.as_str().unwrap())).auth(&b.token),
            404,
        ),
    ])
    .await;
    let users = t.get_json(&b.token, "/v1.0/users").await;
    let upns: Vec<&str> = users["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userPrincipalName"].as_str().unwrap())
        .collect();
    assert_eq!(upns, ["b-user@fabrikam.example.com"], "{users}");
    let batch_read: Value = t
        .client
        .post(t.at("/v1.0/$batch"))
        .bearer_auth(&b.token)
        .json(&json!({"requests": [
            {"id": "1", "method": "GET", "url": format!("/users/{VICTIM_UPN}")},
            {"id": "2", "method": "GET", "url": "/groups"},
        ]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(batch_read["responses"][0]["status"], 404, "{batch_read}");
    assert_eq!(
        batch_read["responses"][1]["body"]["value"][0]["displayName"], "B Group",
        "{batch_read}"
    );
    assert_eq!(
        batch_read["responses"][1]["body"]["value"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let own = t
        .get_json(&a.token, format!("/v1.0/users/{VICTIM_UPN}"))
        .await;
    assert_eq!(own["id"], victim_id);
    assert_eq!(
        t.get_json(&admin, "/api/v1/configurations").await["value"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "admins see every configuration"
    );

    // The victim is unchanged; its password still signs in and the attacker's does not.
    let after = snapshot(&t, &admin).await;
    let victims = |s: &Value| {
        json!({
            "users": s["users"].as_array().unwrap().iter().filter(|u| u["onPremisesDomainName"] != "fabrikam.example.com" && !u["userPrincipalName"].as_str().unwrap().starts_with("b-")).cloned().collect::<Vec<_>>(),
            "groups": s["groups"].as_array().unwrap().iter().filter(|g| g["onPremisesImmutableId"] == "staff").cloned().collect::<Vec<_>>(),
            "members": s["members"],
        })
    };
    assert_eq!(victims(&after), victims(&before));
    assert_eq!(
        after["users"].as_array().unwrap().len(),
        3,
        "no user was created from a refused create: {after}"
    );
    assert_eq!(signin(&t, VICTIM_UPN, VICTIM_PASSWORD).await, 200);
    assert_eq!(signin(&t, VICTIM_UPN, ATTACKER_PASSWORD).await, 401);

    // The legitimate agent is unaffected: its own huge version is refused too, and its next
    // ordinary write applies (nothing made it stale).
    let (_, body) = t
        .post_batch(
            &a.token,
            &config_a,
            &batch(vec![
                user_upsert("victim", 1_000_000_000_000, VICTIM_UPN, "Too Far"),
                user_upsert("victim", 30, VICTIM_UPN, "Vic Timothy"),
                json!({"op": "removeMember", "groupAnchor": "staff", "memberAnchor": "victim"}),
            ]),
        )
        .await;
    assert_eq!(
        statuses(&body),
        [out_of_range, "success", "success"],
        "{body}"
    );
    let victim = t
        .get_json(&admin, format!("/v1.0/users/{VICTIM_UPN}"))
        .await;
    assert_eq!(victim["displayName"], "Vic Timothy");
    assert_eq!(victim["id"], victim_id);
}

/// The same anchor in two configurations is one object, owned by whichever created it first; the
/// second configuration's create is refused (not merged), and once the owner deletes it, the
/// other may create its own.
#[tokio::test]
async fn an_anchor_is_owned_by_the_configuration_that_created_it() {
    let Two {
        t,
        admin,
        a,
        b,
        config_a,
        config_b,
    } = Two::start().await;
    let (as_a, as_b) = ((&a.token[..], &config_a[..]), (&b.token[..], &config_b[..]));
    assert_eq!(
        results(&t, as_a, vec![group_upsert("shared", 1, "A's")]).await,
        ["success"]
    );
    assert_eq!(
        results(&t, as_b, vec![group_upsert("shared", 2, "B's")]).await,
        ["error:OwnedByAnotherConfiguration"]
    );
    // A deletes its group (and a replayed older upsert of A's stays stale for A).
    assert_eq!(
        results(
            &t,
            as_a,
            vec![
                json!({"op": "delete", "kind": "group", "sourceAnchor": "shared", "version": 3}),
                group_upsert("shared", 1, "A's"),
            ]
        )
        .await,
        ["success", "skipped"]
    );
    // A's deleted object keeps its anchor (as Entra's soft-deleted objects do): B still may not
    // take it, so A's object can come back (e.g. into scope again) under its own anchor.
    assert_eq!(
        results(&t, as_b, vec![group_upsert("shared", 2, "B's")]).await,
        ["error:OwnedByAnotherConfiguration"]
    );
    assert_eq!(
        results(&t, as_a, vec![group_upsert("shared", 4, "A's again")]).await,
        ["success"]
    );
    let groups = t.get_json(&admin, "/v1.0/groups").await;
    let names: Vec<&str> = groups["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A's again"], "{groups}");
}

/// A batch id is answered from stored results only within the configuration that sent it: an agent
/// reusing another configuration's batch id gets its own batch applied, not the other's results
/// (object ids, UPNs in messages).
#[tokio::test]
async fn a_batch_id_replays_only_within_its_own_configuration() {
    let Two {
        t,
        a,
        b,
        config_a,
        config_b,
        ..
    } = Two::start().await;
    let batch_id = uuid::Uuid::new_v4();
    let with_id = |ops: Vec<Value>| json!({"batchId": batch_id, "operations": ops});
    let (status, first) = t
        .post_batch(
            &a.token,
            &config_a,
            &with_id(vec![user_upsert("victim", 10, VICTIM_UPN, "Vic Tim")]),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(statuses(&first), ["success"], "{first}");
    let victim_id = first["results"][0]["objectId"].clone();
    assert!(victim_id.is_string(), "{first}");

    // B sends A's batch id to its own configuration: applied as B's own batch.
    let (status, body) = t
        .post_batch(
            &b.token,
            &config_b,
            &with_id(vec![user_upsert(
                "b-user",
                5,
                "b-user@fabrikam.example.com",
                "B User",
            )]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replayed"], false, "{body}");
    assert_eq!(statuses(&body), ["success"], "{body}");
    assert_ne!(body["results"][0]["objectId"], victim_id, "{body}");

    // A's own replay still answers from A's stored results.
    let (_, again) = t
        .post_batch(
            &a.token,
            &config_a,
            &with_id(vec![user_upsert("victim", 10, VICTIM_UPN, "Vic Tim")]),
        )
        .await;
    assert_eq!(again["replayed"], true, "{again}");
    assert_eq!(again["results"][0]["objectId"], victim_id, "{again}");
}
