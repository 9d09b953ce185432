//! The differential test's oracle: reads AD over LDAP (ldapsearch as Administrator), works out what the
//! cloud must hold under Microsoft's default attribute mappings — written here from the published
//! defaults, independently of `src/projection` — and compares it in full with the tenant's Graph view:
//! the objects in scope (none outside), every property of each, every member of each group.
//!
//! Absent, `null` and `[]` are the same thing on both sides (Graph shows an unset property as null, an
//! empty collection as []); multi-valued properties compare as sets.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use serde_json::{Value, json};

use crate::agent_run::{Entry, ad_search, graph_all};
use crate::common::lab::LabDc;
use crate::tenant_fixture::{GA, TenantFixture};

/// Properties the tenant adds itself, not mapped from AD.
const TENANT_OWNED: &[&str] = &["id", "onPremisesSyncEnabled", "onPremisesLastSyncDateTime"];

const SYNCED: &str =
    "(|(&(objectCategory=person)(objectClass=user))(objectClass=contact)(objectClass=group))";

/// The synced kind of an AD entry.
fn kind_of(e: &Entry) -> &'static str {
    let classes: Vec<String> = e
        .get("objectclass")
        .into_iter()
        .flatten()
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if classes.iter().any(|c| c == "group") {
        "groups"
    } else if classes.iter().any(|c| c == "contact") {
        "contacts"
    } else {
        "users"
    }
}

fn first<'a>(e: &'a Entry, name: &str) -> Option<&'a str> {
    e.get(&name.to_ascii_lowercase())
        .and_then(|v| v.first())
        .map(String::as_str)
}

fn s(e: &Entry, name: &str) -> Value {
    first(e, name).map_or(Value::Null, |v| json!(v))
}

fn first_of(e: &Entry, names: &[&str]) -> Value {
    names
        .iter()
        .find_map(|n| first(e, n))
        .map_or(Value::Null, |v| json!(v))
}

fn all(e: &Entry, name: &str) -> Value {
    json!(
        e.get(&name.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    )
}

fn int(e: &Entry, name: &str) -> Option<i64> {
    first(e, name).and_then(|v| v.parse().ok())
}

/// `S-1-5-21-…` from the raw objectSid (MS-DTYP 2.4.2.2), or Null.
fn sid_text(e: &Entry) -> Value {
    let Some(raw) = first(e, "objectSid") else {
        return Value::Null;
    };
    let b = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .unwrap();
    let authority = b[2..8].iter().fold(0u64, |a, x| a << 8 | u64::from(*x));
    let mut text = format!("S-{}-{authority}", b[0]);
    for sub in b[8..].chunks_exact(4) {
        text.push_str(&format!(
            "-{}",
            u32::from_le_bytes([sub[0], sub[1], sub[2], sub[3]])
        ));
    }
    json!(text)
}

/// What the cloud must show for one AD entry: Microsoft cloud sync's default mappings plus the
/// on-premises identity.
fn expected(dn: &str, e: &Entry, kind: &str, domain: &str) -> BTreeMap<String, Value> {
    let display = first_of(e, &["displayName", "cn", "name"]);
    let mut m: BTreeMap<String, Value> = match kind {
        "users" => {
            let uac = int(e, "userAccountControl");
            [
                ("accountEnabled", json!(uac.is_none_or(|u| u & 2 == 0))),
                ("businessPhones", all(e, "telephoneNumber")),
                ("city", s(e, "l")),
                ("companyName", s(e, "company")),
                ("country", s(e, "co")),
                ("department", s(e, "department")),
                ("displayName", display),
                ("employeeId", s(e, "employeeID")),
                ("faxNumber", s(e, "facsimileTelephoneNumber")),
                ("givenName", s(e, "givenName")),
                ("jobTitle", s(e, "title")),
                ("mail", s(e, "mail")),
                (
                    "mailNickname",
                    first_of(e, &["mailNickname", "sAMAccountName"]),
                ),
                ("mobilePhone", s(e, "mobile")),
                ("officeLocation", s(e, "physicalDeliveryOfficeName")),
                ("onPremisesUserPrincipalName", s(e, "userPrincipalName")),
                ("postalCode", s(e, "postalCode")),
                ("proxyAddresses", all(e, "proxyAddresses")),
                ("state", s(e, "st")),
                ("streetAddress", s(e, "streetAddress")),
                ("surname", s(e, "sn")),
                ("usageLocation", s(e, "c")),
                ("userPrincipalName", s(e, "userPrincipalName")),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
        }
        "groups" => {
            let group_type = int(e, "groupType");
            [
                ("description", s(e, "description")),
                ("displayName", display),
                ("mail", s(e, "mail")),
                ("mailEnabled", json!(first(e, "mail").is_some())),
                (
                    "mailNickname",
                    first_of(e, &["mailNickname", "sAMAccountName"]),
                ),
                ("proxyAddresses", all(e, "proxyAddresses")),
                (
                    "securityEnabled",
                    json!(group_type.is_some_and(|g| g & 0x8000_0000 != 0)),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
        }
        _ => [
            ("companyName", s(e, "company")),
            ("department", s(e, "department")),
            ("displayName", display),
            ("givenName", s(e, "givenName")),
            ("jobTitle", s(e, "title")),
            ("mail", s(e, "mail")),
            ("mailNickname", first_of(e, &["mailNickname", "cn"])),
            ("proxyAddresses", all(e, "proxyAddresses")),
            ("surname", s(e, "sn")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    };
    m.insert("onPremisesImmutableId".into(), s(e, "objectGUID"));
    m.insert("onPremisesSamAccountName".into(), s(e, "sAMAccountName"));
    m.insert("onPremisesDistinguishedName".into(), json!(dn));
    m.insert("onPremisesSecurityIdentifier".into(), sid_text(e));
    m.insert("onPremisesDomainName".into(), json!(domain));
    m
}

/// Absent, null and [] are one value; arrays compare as sorted sets.
fn norm(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Array(a)) if a.is_empty() => Value::Null,
        Some(Value::Array(a)) => {
            let mut items: Vec<String> = a.iter().map(|x| x.to_string()).collect();
            items.sort();
            json!(items)
        }
        Some(other) => other.clone(),
    }
}

/// One synced AD object: its kind, DN, entry and the DNS name of its domain.
type AdObject = (&'static str, String, Entry, String);

/// AD's synced objects in `ous`: anchor → object.
fn ad_objects(dc: &LabDc, ous: &[String]) -> BTreeMap<String, AdObject> {
    let mut out = BTreeMap::new();
    for ou in ous {
        for (dn, e) in ad_search(dc, ou, SYNCED, &["*", "objectGUID", "objectSid"]) {
            let anchor = first(&e, "objectGUID").unwrap().to_owned();
            out.insert(anchor, (kind_of(&e), dn, e, dc.dns_domain.clone()));
        }
    }
    out
}

/// Lower-cased UPNs of the enabled users in `ous`, read from AD.
pub fn enabled_users(dc: &LabDc, ous: &[String]) -> BTreeSet<String> {
    ad_objects(dc, ous)
        .into_values()
        .filter(|(k, _, e, _)| {
            *k == "users" && int(e, "userAccountControl").is_none_or(|u| u & 2 == 0)
        })
        .filter_map(|(_, _, e, _)| first(&e, "userPrincipalName").map(str::to_ascii_lowercase))
        .collect()
}

/// Of `users` ((userPrincipalName, current password)), those AD has enabled under `ous` that cannot
/// sign in at the tenant with their password, one line each.
pub async fn signin_failures(
    dc: &LabDc,
    t: &TenantFixture,
    ous: &[String],
    users: &[(String, String)],
) -> Vec<String> {
    let enabled = enabled_users(dc, ous);
    let mut out = Vec::new();
    for (upn, password) in users {
        if enabled.contains(&upn.to_ascii_lowercase()) {
            let status = crate::tenant_fixture::signin(t, upn, password).await;
            if status != 200 {
                out.push(format!(
                    "{upn} (in scope, enabled) cannot sign in with its AD password: {status}"
                ));
            }
        }
    }
    out
}

/// The Graph status of `GET /v1.0/users/{upn}` (404 when the cloud has no such user).
pub async fn user_status(t: &TenantFixture, upn: &str) -> u16 {
    let token = t.user_token(GA).await;
    t.client
        .get(t.at(&format!("/v1.0/users/{upn}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Every difference between the tenant's Graph view and AD's objects in `ous`, one line each.
pub async fn compare(dc: &LabDc, t: &TenantFixture, ous: &[String]) -> Vec<String> {
    compare_domains(&[(dc, ous)], t).await
}

/// [`compare`] for a tenant that several domains sync to: the cloud must hold exactly the union of
/// every domain's objects in its `ous`, each as its own domain's mappings give it.
pub async fn compare_domains(domains: &[(&LabDc, &[String])], t: &TenantFixture) -> Vec<String> {
    let mut ad = BTreeMap::new();
    for (dc, ous) in domains {
        ad.extend(ad_objects(dc, ous));
    }
    let anchor_by_dn: BTreeMap<String, String> = ad
        .iter()
        .map(|(a, (_, dn, _, _))| (dn.to_ascii_lowercase(), a.clone()))
        .collect();
    let token = t.user_token(GA).await;
    let mut diffs = Vec::new();
    let mut clouds: Vec<(&str, BTreeMap<String, Value>)> = Vec::new();
    for kind in ["users", "groups", "contacts"] {
        let objects = graph_all(t, &token, &format!("/v1.0/{kind}?$top=999")).await;
        let by_anchor = objects
            .into_iter()
            .map(|o| {
                (
                    o["onPremisesImmutableId"].as_str().unwrap_or("").to_owned(),
                    o,
                )
            })
            .collect();
        clouds.push((kind, by_anchor));
    }
    // For the report: an anchor as the DN the cloud holds for it.
    let name_of = |anchor: &String| -> String {
        clouds
            .iter()
            .find_map(|(_, c)| c.get(anchor))
            .and_then(|o| o["onPremisesDistinguishedName"].as_str())
            .map_or_else(|| anchor.clone(), str::to_owned)
    };
    for (kind, cloud) in &clouds {
        let kind = *kind;
        let want: BTreeMap<&String, &AdObject> =
            ad.iter().filter(|(_, (k, _, _, _))| *k == kind).collect();
        for (anchor, (_, dn, _, _)) in &want {
            if !cloud.contains_key(*anchor) {
                diffs.push(format!(
                    "{kind}: {dn} ({anchor}) is in scope but not in the cloud"
                ));
            }
        }
        for (anchor, o) in cloud {
            let Some((_, dn, e, domain)) = want.get(anchor) else {
                diffs.push(format!(
                    "{kind}: the cloud has {} ({anchor}), which is not in scope in AD",
                    o["onPremisesDistinguishedName"]
                ));
                continue;
            };
            let exp = expected(dn, e, kind, domain);
            let props = o.as_object().unwrap();
            let names: BTreeSet<&str> = exp
                .keys()
                .map(String::as_str)
                .chain(props.keys().map(String::as_str))
                .filter(|k| !TENANT_OWNED.contains(k) && !k.starts_with("@odata"))
                .collect();
            for name in names {
                let (w, c) = (norm(exp.get(name)), norm(props.get(name)));
                if w != c {
                    diffs.push(format!(
                        "{kind} {dn}: {name} is {c} in the cloud, {w} in AD"
                    ));
                }
            }
            if kind == "groups" {
                let members: BTreeSet<String> = graph_all(
                    t,
                    &token,
                    &format!(
                        "/v1.0/groups/{}/members?$top=999",
                        o["id"].as_str().unwrap()
                    ),
                )
                .await
                .iter()
                .map(|m| m["onPremisesImmutableId"].as_str().unwrap_or("").to_owned())
                .collect();
                let ad_members: BTreeSet<String> = e
                    .get("member")
                    .into_iter()
                    .flatten()
                    .filter_map(|m| anchor_by_dn.get(&m.to_ascii_lowercase()).cloned())
                    .collect();
                for extra in members.difference(&ad_members) {
                    diffs.push(format!(
                        "groups {dn}: the cloud has member {}, which AD does not (in scope)",
                        name_of(extra)
                    ));
                }
                for missing in ad_members.difference(&members) {
                    diffs.push(format!(
                        "groups {dn}: AD has member {} ({missing}), the cloud does not",
                        name_of(missing)
                    ));
                }
            }
        }
    }
    diffs
}
