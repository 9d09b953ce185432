//! A Graph-shaped read API that Microsoft Graph clients can use unchanged.
//!
//! `GET /v1.0/users`, `/v1.0/users/{id | userPrincipalName}`, `/v1.0/groups`, `/v1.0/groups/{id}`,
//! `/v1.0/groups/{id}/members`, `/v1.0/contacts`, `/v1.0/contacts/{id}`, with `$select`, `$top`
//! (default 100, at most 999), `$filter` (see [`super::graph_query`]) and `@odata.nextLink` paging via
//! `$skiptoken`; and `POST /v1.0/$batch` with at most 20 GET requests, each answered with its own
//! status, headers and body (a throttled item gets 429 with `Retry-After`). Readers need a Global or
//! Hybrid Identity Administrator token or an agent token; plain users get 403. An agent reads only
//! the objects of the configurations of the domains it serves ([`ReadScope`]); others are 404 to it
//! and left out of its lists.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use cloudsync_api::auth::Role;
use cloudsync_api::ops::ObjectKind;

use super::auth::Principal;
use super::error::ApiError;
use super::graph_query::{Filter, parse_query, percent_decode, percent_encode, select};
use super::state::SharedState;
use super::store::{StoredObject, decode, get_json, uuid_value};
use super::throttle::Budget;

/// Roles that may read the directory.
pub const READERS: &[Role] = &[
    Role::GlobalAdministrator,
    Role::HybridIdentityAdministrator,
    Role::Agent,
];

/// Which objects a reader may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadScope {
    /// Admins: every object.
    All,
    /// An agent: the objects owned by these configurations (those of its domains).
    Configurations(Vec<Uuid>),
}

impl ReadScope {
    /// Whether the reader may see `o`.
    pub fn allows(&self, o: &StoredObject) -> bool {
        match self {
            ReadScope::All => true,
            ReadScope::Configurations(ids) => ids.contains(&o.configuration_id),
        }
    }

    /// The scope of an authenticated reader.
    pub fn of(state: &SharedState, principal: &Principal) -> Result<ReadScope, ApiError> {
        let admin = principal
            .claims
            .roles
            .iter()
            .any(|r| super::auth::ADMINS.contains(r));
        if admin {
            return Ok(ReadScope::All);
        }
        let agent: super::store::AgentRecord =
            get_json(&state.store.agents, "agents", principal.id().as_bytes())?.ok_or_else(
                || ApiError::Forbidden("The calling agent is no longer registered.".into()),
            )?;
        let ids = super::agents::all_configs(state)?
            .into_iter()
            .filter(|r| {
                agent
                    .domains
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(&r.config.spec.domain))
            })
            .map(|r| r.config.id)
            .collect();
        Ok(ReadScope::Configurations(ids))
    }
}

/// The tenant's external base URL as the client addressed it (scheme from the server, host from `Host`).
pub fn base_url(state: &SharedState, headers: &HeaderMap, uri: &Uri) -> String {
    // HTTP/1.1 sends `Host`; HTTP/2 puts the authority into the request URI instead.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    format!("{}://{}", state.options.scheme, host)
}

/// The Graph JSON of a stored object.
pub fn to_graph(o: &StoredObject) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in &o.attributes {
        m.insert(k.clone(), v.clone());
    }
    // After the attributes: the derived properties always win (see `apply_guard::DERIVED_PROPERTIES`).
    m.insert("id".into(), json!(o.id));
    let p = &o.on_premises;
    m.insert("onPremisesImmutableId".into(), json!(o.source_anchor));
    m.insert("onPremisesSamAccountName".into(), json!(p.sam_account_name));
    m.insert(
        "onPremisesDistinguishedName".into(),
        json!(p.distinguished_name),
    );
    m.insert(
        "onPremisesSecurityIdentifier".into(),
        json!(p.security_identifier),
    );
    m.insert("onPremisesDomainName".into(), json!(p.domain_name));
    m.insert("onPremisesSyncEnabled".into(), json!(true));
    m.insert("onPremisesLastSyncDateTime".into(), json!(o.last_sync));
    m
}

fn odata_type(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::User => "#microsoft.graph.user",
        ObjectKind::Group => "#microsoft.graph.group",
        ObjectKind::Contact => "#microsoft.graph.orgContact",
    }
}

fn collection(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::User => "users",
        ObjectKind::Group => "groups",
        ObjectKind::Contact => "contacts",
    }
}

/// A list read's parsed OData options. `pub` (hidden) with [`options`] and [`next_link`] only for the
/// fuzz target `tenant_query`.
#[doc(hidden)]
pub struct Options {
    select: Option<Vec<String>>,
    top: usize,
    filter: Option<Filter>,
    skip_after: Option<Uuid>,
    passthrough: Vec<(String, String)>,
}

/// Parses a list read's raw query string (`$select`, `$top`, `$filter`, `$skiptoken`; other names
/// are kept to be passed on in the next link).
#[doc(hidden)]
pub fn options(raw_query: &str, resource: &str) -> Result<Options, ApiError> {
    let mut o = Options {
        select: None,
        top: 100,
        filter: None,
        skip_after: None,
        passthrough: Vec::new(),
    };
    for (k, v) in parse_query(raw_query) {
        match k.as_str() {
            "$select" => o.select = Some(v.split(',').map(|s| s.trim().to_owned()).collect()),
            "$top" => {
                o.top = v
                    .parse::<usize>()
                    .ok()
                    .filter(|t| (1..=999).contains(t))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!("Invalid $top value '{v}': use 1..999."))
                    })?;
            }
            "$filter" => o.filter = Some(Filter::parse(&v, resource)?),
            "$skiptoken" => {
                o.skip_after = Some(
                    Uuid::parse_str(&v)
                        .map_err(|_| ApiError::BadRequest("Invalid $skiptoken.".into()))?,
                );
                continue;
            }
            "$count" | "$orderby" | "$expand" | "$search" => {
                return Err(ApiError::BadRequest(format!(
                    "Query option {k} is not supported by this tenant."
                )));
            }
            _ => {}
        }
        o.passthrough.push((k, v));
    }
    Ok(o)
}

/// The `@odata.nextLink` of a page that ended at `last`: the options again, and `$skiptoken`.
#[doc(hidden)]
pub fn next_link(base: &str, path: &str, o: &Options, last: Uuid) -> String {
    let mut q: Vec<String> = o
        .passthrough
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    q.push(format!("$skiptoken={last}"));
    format!("{base}/v1.0/{path}?{}", q.join("&"))
}

fn page(
    base: &str,
    path: &str,
    context: &str,
    o: &Options,
    candidates: impl Iterator<Item = Result<StoredObject, ApiError>>,
    annotate: bool,
) -> Result<Value, ApiError> {
    let mut value = Vec::new();
    let mut more = false;
    for object in candidates {
        let object = object?;
        let mut g = to_graph(&object);
        if o.filter.as_ref().is_some_and(|f| !f.matches(&g)) {
            continue;
        }
        if value.len() == o.top {
            more = true;
            break;
        }
        if annotate {
            g.insert("@odata.type".into(), json!(odata_type(object.kind)));
        }
        value.push((object.id, select(g, o.select.as_deref())));
    }
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{base}/v1.0/$metadata#{context}")),
    );
    if more && let Some((last, _)) = value.last() {
        body.insert(
            "@odata.nextLink".into(),
            json!(next_link(base, path, o, *last)),
        );
    }
    body.insert(
        "value".into(),
        Value::Array(value.into_iter().map(|(_, v)| Value::Object(v)).collect()),
    );
    Ok(Value::Object(body))
}

fn start_key(after: Option<Uuid>) -> Vec<u8> {
    match after {
        // The smallest key greater than `after`: append a zero byte.
        Some(id) => {
            let mut k = id.as_bytes().to_vec();
            k.push(0);
            k
        }
        None => Vec::new(),
    }
}

fn list(
    state: &SharedState,
    base: &str,
    kind: ObjectKind,
    raw_query: &str,
    scope: &ReadScope,
) -> Result<Value, ApiError> {
    let name = collection(kind);
    let o = options(raw_query, name)?;
    let objects = state
        .store
        .objects
        .range(start_key(o.skip_after)..)
        .map(|e| -> Result<StoredObject, ApiError> {
            let (_, v) = e.map_err(super::store::StoreError::from)?;
            Ok(decode("objects", &v)?)
        })
        .filter(|o| {
            o.as_ref()
                .map_or(true, |o| o.kind == kind && !o.deleted && scope.allows(o))
        });
    page(base, name, name, &o, objects, false)
}

fn find(
    state: &SharedState,
    kind: ObjectKind,
    key: &str,
    scope: &ReadScope,
) -> Result<StoredObject, ApiError> {
    let id = match Uuid::parse_str(key) {
        Ok(id) => Some(id),
        Err(_) if kind == ObjectKind::User => state
            .store
            .upns
            .get(key.to_lowercase().as_bytes())
            .map_err(super::store::StoreError::from)?
            .map(|v| uuid_value("upns", &v))
            .transpose()?,
        Err(_) => None,
    };
    id.and_then(|id| get_json::<StoredObject>(&state.store.objects, "objects", id.as_bytes()).transpose())
        .transpose()?
        .filter(|o| o.kind == kind && !o.deleted && scope.allows(o))
        .ok_or_else(|| ApiError::NotFound(format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present.")))
}

fn members(
    state: &SharedState,
    base: &str,
    group: &StoredObject,
    raw_query: &str,
    scope: &ReadScope,
) -> Result<Value, ApiError> {
    let o = options(raw_query, "directoryObject")?;
    let mut start = group.id.as_bytes().to_vec();
    start.extend(start_key(o.skip_after));
    let store = &state.store;
    let prefix = group.id.as_bytes().to_vec();
    let objects = store
        .members
        .range(start..)
        .take_while(move |e| e.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
        .filter_map(|e| -> Option<Result<StoredObject, ApiError>> {
            let result = (|| {
                let (k, _) = e.map_err(super::store::StoreError::from)?;
                let member = k.get(16..).unwrap_or_default().to_vec();
                get_json::<StoredObject>(&store.objects, "objects", &member).map_err(ApiError::from)
            })();
            result
                .transpose()
                .filter(|r| r.as_ref().map_or(true, |o| scope.allows(o)))
        });
    let path = format!("groups/{}/members", group.id);
    page(base, &path, "directoryObjects", &o, objects, true)
}

/// Serves one GET below `/v1.0` (`path_and_query` without the `/v1.0` prefix).
pub fn get_resource(
    state: &SharedState,
    base: &str,
    path: &str,
    query: &str,
    scope: &ReadScope,
) -> Result<Value, ApiError> {
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let kind_of = |s: &str| match s {
        "users" => Some(ObjectKind::User),
        "groups" => Some(ObjectKind::Group),
        "contacts" => Some(ObjectKind::Contact),
        _ => None,
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        [coll] if kind_of(coll).is_some() => list(
            state,
            base,
            kind_of(coll).unwrap_or(ObjectKind::User),
            query,
            scope,
        ),
        [coll, key] if kind_of(coll).is_some() => {
            let kind = kind_of(coll).unwrap_or(ObjectKind::User);
            let o = options(query, coll)?;
            let mut g = to_graph(&find(state, kind, key, scope)?);
            g.insert(
                "@odata.context".into(),
                json!(format!("{base}/v1.0/$metadata#{coll}/$entity")),
            );
            Ok(Value::Object(select(g, o.select.as_deref())))
        }
        ["groups", key, "members"] => {
            let group = find(state, ObjectKind::Group, key, scope)?;
            members(state, base, &group, query, scope)
        }
        _ => Err(ApiError::NotFound(format!(
            "Resource not found for the segment '/v1.0/{}'.",
            segments.join("/")
        ))),
    }
}

fn authorize_read(state: &SharedState, headers: &HeaderMap) -> Result<ReadScope, ApiError> {
    let principal = Principal {
        claims: super::auth::authenticate(headers, state)?,
    };
    principal.require(READERS)?;
    ReadScope::of(state, &principal)
}

/// `GET /v1.0/{*path}`.
pub async fn get(
    State(state): State<SharedState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let scope = authorize_read(&state, &headers)?;
    state
        .throttle
        .take(Budget::Reads, 1)
        .map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    let base = base_url(&state, &headers, &uri);
    let path = uri.path().strip_prefix("/v1.0").unwrap_or(uri.path());
    Ok(Json(get_resource(
        &state,
        &base,
        path,
        uri.query().unwrap_or(""),
        &scope,
    )?))
}
