//! Every route of the tenant as one table, [`ROUTES`], and the router built from it ([`build`]).
//!
//! Enters: nothing (a constant). Leaves: the axum routes [`super::server::router`] serves, each
//! behind [`super::route_guard::guard`] with its own row, and the security table that
//! `docs/tenant.md` § Route security table shows ([`markdown_table`], checked by a test).
//!
//! Why a table: a route exists only as a row, so who may call it, what it isolates, the body it
//! takes and the query parameters it accepts are stated next to its handler and enforced by the
//! row's guard; `tests/tenant_route_auth.rs` walks this same table and fails on a row it has no
//! request for. `tests::no_route_is_registered_outside_the_table` fails when a module adds a route
//! with `.route(` instead of a row.
//!
//! Handlers keep their own checks (`Authorized<R>`, the self-id and domain checks); the guard's role
//! check is the table's promise made good even when a handler forgets its extractor (the Graph read
//! routes take no extractor and relied on a hand-written check).

use axum::Router;
use axum::routing::{MethodFilter, MethodRouter, on};

use cloudsync_api::auth::Role;

use super::authorize::{Admins, AdminsOrAgents, Agents, GlobalAdmins, RoleSet};
use super::state::SharedState;
use super::{
    admin, agents, auth, graph, graph_batch, logs, portal, portal_auth, provisioning, release,
    release_binary, release_slot, route_guard, signin, sspr, writeback_agent, writeback_graph,
    writeback_switch,
};

/// An HTTP method a row answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl Verb {
    /// axum's filter for the method.
    pub fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Patch => MethodFilter::PATCH,
            Verb::Delete => MethodFilter::DELETE,
        }
    }

    /// The method's name, e.g. `GET`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: identity endpoints, the sign-in check and SSPR (password checks under smart lockout).
    Anonymous,
    /// Anyone, on the portal's surface (its security headers): the sign-in page and form, the CSS.
    PortalPublic,
    /// A portal session of an administrator; a POST also needs the session's CSRF token and a
    /// same-origin request. Bearer tokens do not open the portal. Checked by the handler.
    PortalSession,
    /// A valid bearer token of this tenant holding one of these roles: 401 without one, 403 without
    /// the role — checked by the guard, before the query and the body.
    Roles(&'static [Role]),
}

/// What a caller with the role may reach beyond the role check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Nothing further: every caller with the role sees the same.
    None,
    /// The path's agent `{id}` must be the calling agent; another agent's id is 403.
    OwnAgentForbidden,
    /// The path's agent `{id}` must be the calling agent (admins: any); another agent's id is 404,
    /// as if it did not exist.
    OwnAgentHidden,
    /// An agent reaches only the configurations (and their objects) of the domains it serves;
    /// another is 404, as if it did not exist (admins: all).
    AgentDomainsHidden,
    /// A list: an agent's answer leaves out what is not of its domains (admins: all).
    AgentDomainsFiltered,
}

/// The request body a route takes, and so its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRule {
    /// No body: any body is 413 (the limit is 0).
    None,
    /// JSON, at most [`cloudsync_api::MAX_BODY_BYTES`].
    Json,
    /// `application/x-www-form-urlencoded`, at most [`cloudsync_api::MAX_BODY_BYTES`].
    Form,
    /// A release binary, streamed to a file; at most `--release-max-mib`.
    Binary,
}

/// The query parameters a route takes. Every query is also bounded in length
/// ([`route_guard::MAX_QUERY_BYTES`], 414) and must be well-formed (valid percent escapes, UTF-8,
/// no control characters, no parameter twice: else 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryRule {
    /// None: any parameter is 400.
    None,
    /// Exactly these names (each optional); any other is 400.
    Params(&'static [&'static str]),
    /// OData system query options ([`route_guard::ODATA_OPTIONS`]; any other `$` name is 400),
    /// checked further by the Graph parser (`$count`, `$orderby`, `$expand`, `$search` are 400
    /// there); names without `$` are ignored, as Graph does.
    OData,
}

/// One route: method and path, who may call it, what it isolates, its body and query, its handler.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// The method.
    pub verb: Verb,
    /// axum's path pattern, e.g. `/api/v1/agents/{id}`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// What a caller with the role may reach.
    pub isolation: Isolation,
    /// The body it takes.
    pub body: BodyRule,
    /// The query it takes.
    pub query: QueryRule,
    /// One line on what it is, for the documentation.
    pub what: &'static str,
    /// The handler for the row's method.
    pub handler: fn(MethodFilter) -> MethodRouter<SharedState>,
}

impl RouteSpec {
    const fn new(
        verb: Verb,
        path: &'static str,
        access: Access,
        what: &'static str,
        handler: fn(MethodFilter) -> MethodRouter<SharedState>,
    ) -> RouteSpec {
        RouteSpec {
            verb,
            path,
            access,
            isolation: Isolation::None,
            body: BodyRule::None,
            query: QueryRule::None,
            what,
            handler,
        }
    }

    const fn body(mut self, body: BodyRule) -> RouteSpec {
        self.body = body;
        self
    }

    const fn query(mut self, query: QueryRule) -> RouteSpec {
        self.query = query;
        self
    }

    const fn isolation(mut self, isolation: Isolation) -> RouteSpec {
        self.isolation = isolation;
        self
    }
}

use Access::{Anonymous, PortalPublic, PortalSession, Roles};
use BodyRule::{Binary, Form, Json};
use Verb::{Delete, Get, Patch, Post, Put};

const ADMINS: Access = Roles(Admins::ROLES);
const GA: Access = Roles(GlobalAdmins::ROLES);
const AGENTS: Access = Roles(Agents::ROLES);
const READERS: Access = Roles(AdminsOrAgents::ROLES);

/// Every route the tenant serves. A route exists only as a row here. (Kept as one line a row:
/// rustfmt would spread each over ten.)
#[rustfmt::skip]
pub const ROUTES: &[RouteSpec] = &[
    // Identity (anonymous by design).
    RouteSpec::new(Post, "/{tenant}/oauth2/v2.0/token", Anonymous, "OAuth2 token endpoint", |m| on(m, auth::token)).body(Form),
    RouteSpec::new(Get, "/{tenant}/v2.0/.well-known/openid-configuration", Anonymous, "OpenID discovery", |m| on(m, auth::openid_configuration)),
    RouteSpec::new(Get, "/{tenant}/discovery/v2.0/keys", Anonymous, "JWKS (empty: tokens are opaque)", |m| on(m, auth::jwks)),
    RouteSpec::new(Post, "/{tenant}/signin", Anonymous, "PHS sign-in check", |m| on(m, signin::signin)).body(Json),
    RouteSpec::new(Post, "/{tenant}/sspr/verificationCode", Anonymous, "SSPR: send a one-time code", |m| on(m, sspr::verification_code)).body(Json),
    RouteSpec::new(Post, "/{tenant}/sspr/resetPassword", Anonymous, "SSPR: reset with a code", |m| on(m, sspr::reset_password)).body(Json),
    RouteSpec::new(Post, "/{tenant}/sspr/unlock", Anonymous, "SSPR: unlock with a code", |m| on(m, sspr::unlock)).body(Json),
    RouteSpec::new(Get, "/api/v1/sspr/channel", GA, "SSPR: the stand-in delivery channel", |m| on(m, sspr::channel)).query(QueryRule::Params(&["userPrincipalName"])),
    // Agents.
    RouteSpec::new(Post, "/api/v1/agents", ADMINS, "register an agent", |m| on(m, agents::register)).body(Json),
    RouteSpec::new(Get, "/api/v1/agents", ADMINS, "list agents", |m| on(m, agents::list)),
    RouteSpec::new(Get, "/api/v1/agents/{id}", READERS, "one agent", |m| on(m, agents::get_one)).isolation(Isolation::OwnAgentHidden),
    RouteSpec::new(Delete, "/api/v1/agents/{id}", ADMINS, "uninstall: remove an agent", |m| on(m, agents::delete)),
    RouteSpec::new(Post, "/api/v1/agents/{id}/heartbeat", AGENTS, "heartbeat", |m| on(m, agents::heartbeat)).body(Json).isolation(Isolation::OwnAgentForbidden),
    RouteSpec::new(Put, "/api/v1/agents/{id}/domains", ADMINS, "an agent's domains", |m| on(m, agents::set_domains)).body(Json),
    RouteSpec::new(Put, "/api/v1/agents/{id}/writebackKey", AGENTS, "the agent's writeback key", |m| on(m, writeback_agent::put_key)).body(Json).isolation(Isolation::OwnAgentForbidden),
    RouteSpec::new(Get, "/api/v1/agents/{id}/writeback/requests", AGENTS, "writeback long poll", |m| on(m, writeback_agent::poll)).query(QueryRule::Params(&["waitSeconds"])).isolation(Isolation::OwnAgentForbidden),
    RouteSpec::new(Post, "/api/v1/agents/{id}/writeback/requests/{request_id}/answer", AGENTS, "writeback answer", |m| on(m, writeback_agent::answer)).body(Json).isolation(Isolation::OwnAgentForbidden),
    // Releases.
    RouteSpec::new(Get, "/api/v1/releases/latest", READERS, "the release channel", |m| on(m, release::get_latest)),
    RouteSpec::new(Put, "/api/v1/releases/latest", GA, "publish a version", |m| on(m, release::publish)).body(Json),
    // The binary's body is streamed to a file and bounded by `--release-max-mib`, not by
    // DefaultBodyLimit (which only the buffering extractors apply); the guard checks its length.
    RouteSpec::new(Put, "/api/v1/releases/{version}", GA, "store a release binary", |m| on(m, release_binary::put_binary)).body(Binary),
    RouteSpec::new(Get, "/api/v1/releases/{version}/binary", READERS, "download a release binary", |m| on(m, release_binary::get_binary)),
    RouteSpec::new(Post, "/api/v1/releases/{version}/upgrade-slot", AGENTS, "take the upgrade slot", |m| on(m, release_slot::acquire)),
    RouteSpec::new(Delete, "/api/v1/releases/{version}/upgrade-slot", AGENTS, "give the upgrade slot back (its holder only; 204 either way)", |m| on(m, release_slot::give_back)),
    // Configurations.
    RouteSpec::new(Post, "/api/v1/configurations", ADMINS, "create a configuration", |m| on(m, provisioning::create)).body(Json),
    RouteSpec::new(Get, "/api/v1/configurations", READERS, "list configurations", |m| on(m, provisioning::list)).isolation(Isolation::AgentDomainsFiltered),
    RouteSpec::new(Get, "/api/v1/configurations/{id}", READERS, "one configuration", |m| on(m, provisioning::get)).isolation(Isolation::AgentDomainsHidden),
    RouteSpec::new(Put, "/api/v1/configurations/{id}", ADMINS, "change a configuration", |m| on(m, provisioning::update)).body(Json),
    RouteSpec::new(Post, "/api/v1/configurations/{id}/restart", ADMINS, "restart (Watermark, Quarantine, ForceDeletes, Full)", |m| on(m, provisioning::restart)).body(Json),
    RouteSpec::new(Post, "/api/v1/configurations/{id}/batches", AGENTS, "a batch of operations", |m| on(m, provisioning::batch)).body(Json).isolation(Isolation::AgentDomainsHidden),
    RouteSpec::new(Get, "/api/v1/configurations/{id}/writeback", ADMINS, "the writeback switches", |m| on(m, writeback_switch::get)),
    RouteSpec::new(Put, "/api/v1/configurations/{id}/writeback", ADMINS, "set the writeback switches", |m| on(m, writeback_switch::put)).body(Json),
    RouteSpec::new(Get, "/api/v1/provisioningLogs", ADMINS, "provisioning logs", |m| on(m, logs::list))
        .query(QueryRule::Params(&["objectId", "sourceAnchor", "batchId", "agentId", "result", "top", "before"])),
    RouteSpec::new(Get, "/admin/faults", GA, "throttle and fault settings", |m| on(m, admin::get_faults)),
    RouteSpec::new(Put, "/admin/faults", GA, "set throttle and fault settings", |m| on(m, admin::put_faults)).body(Json),
    // Graph.
    RouteSpec::new(Post, "/v1.0/$batch", READERS, "Graph $batch of GETs", |m| on(m, graph_batch::batch)).body(Json).isolation(Isolation::AgentDomainsFiltered),
    RouteSpec::new(Get, "/v1.0/users/{id}", READERS, "Graph: one user", |m| on(m, graph::get)).query(QueryRule::OData).isolation(Isolation::AgentDomainsHidden),
    RouteSpec::new(Patch, "/v1.0/users/{id}", GA, "Graph: passwordProfile (writeback)", |m| on(m, writeback_graph::patch_user)).body(Json),
    RouteSpec::new(Post, "/v1.0/users/{id}/authentication/methods/{method}/resetPassword", GA, "Graph: resetPassword (writeback)", |m| on(m, writeback_graph::reset_password)).body(Json),
    RouteSpec::new(Get, "/v1.0/users/{id}/authentication/operations/{operation}", GA, "Graph: a resetPassword operation", |m| on(m, writeback_graph::operation)),
    RouteSpec::new(Get, "/v1.0/{*path}", READERS, "Graph reads: users, groups, members, contacts", |m| on(m, graph::get)).query(QueryRule::OData).isolation(Isolation::AgentDomainsHidden),
    // The portal.
    RouteSpec::new(Get, "/", PortalSession, "the portal page (else 303 to sign-in)", |m| on(m, portal::page)).query(QueryRule::Params(&["objectId"])),
    RouteSpec::new(Get, "/portal/signin", PortalPublic, "portal sign-in page", |m| on(m, portal_auth::signin_page)),
    RouteSpec::new(Post, "/portal/signin", PortalPublic, "portal sign-in (admins only)", |m| on(m, portal_auth::signin)).body(Form),
    RouteSpec::new(Post, "/portal/signout", PortalSession, "portal sign-out", |m| on(m, portal_auth::signout)).body(Form),
    RouteSpec::new(Post, "/portal/writeback", PortalSession, "portal: the writeback switch", |m| on(m, portal::set_writeback)).body(Form),
    RouteSpec::new(Post, "/portal/unlock", PortalSession, "portal: the unlock switch", |m| on(m, portal::set_unlock)).body(Form),
    RouteSpec::new(Get, "/portal/portal.css", PortalPublic, "the portal's style sheet", |m| on(m, portal_auth::style)),
];

/// The routes of [`ROUTES`], each behind its row's [`route_guard::guard`] (and, on the portal, the
/// security headers of [`portal_auth::security_headers`]).
pub fn build(state: &SharedState) -> Router<SharedState> {
    ROUTES.iter().fold(Router::new(), |router, spec| {
        let guarded = (spec.handler)(spec.verb.filter()).route_layer(
            axum::middleware::from_fn_with_state((state.clone(), spec), route_guard::guard),
        );
        let method_router = match spec.access {
            PortalPublic | PortalSession => guarded.route_layer(axum::middleware::map_response(
                portal_auth::security_headers,
            )),
            Anonymous | Roles(_) => guarded,
        };
        router.route(spec.path, method_router)
    })
}

/// The route security table of `docs/tenant.md`, generated from [`ROUTES`].
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| method | path | who may call | isolation | body | query | what |\n|---|---|---|---|---|---|---|\n",
    );
    for r in ROUTES {
        let who = match r.access {
            Anonymous => "anyone".to_owned(),
            PortalPublic => "anyone (portal)".to_owned(),
            PortalSession => "portal session of an admin (+ CSRF on POST)".to_owned(),
            Roles(roles) => roles
                .iter()
                .map(|r| format!("{r:?}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let isolation = match r.isolation {
            Isolation::None => "—",
            Isolation::OwnAgentForbidden => "own agent id (else 403)",
            Isolation::OwnAgentHidden => "own agent id (else 404)",
            Isolation::AgentDomainsHidden => "agent: own domains (else 404)",
            Isolation::AgentDomainsFiltered => "agent: own domains only",
        };
        let body = match r.body {
            BodyRule::None => "none",
            Json => "JSON ≤ 8 MiB",
            Form => "form ≤ 8 MiB",
            Binary => "binary ≤ --release-max-mib",
        };
        let query = match r.query {
            QueryRule::None => "none".to_owned(),
            QueryRule::Params(names) => names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "),
            QueryRule::OData => "OData".to_owned(),
        };
        out.push_str(&format!(
            "| {} | `{}` | {who} | {isolation} | {body} | {query} | {} |\n",
            r.verb.as_str(),
            r.path,
            r.what
        ));
    }
    out
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
