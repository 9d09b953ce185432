//! Authorization as an extractor: [`Authorized<R>`] authenticates the caller ([`Principal`]) and
//! checks that it holds one of the roles of `R`, before the route's body extractor runs.
//!
//! Enters: the request's headers. Leaves: the principal, or 401 / 403 (naming the roles needed) with
//! the body never read, so a caller without the role cannot learn a route's schema from a 400.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use cloudsync_api::auth::Role;

use super::auth::{ADMINS, Principal};
use super::error::ApiError;
use super::state::SharedState;

/// A set of roles a route needs, named as a type so [`Authorized`] can check it as an extractor.
pub trait RoleSet: Send + Sync {
    /// The roles, any one of which suffices.
    const ROLES: &'static [Role];
}

/// Global and Hybrid Identity Administrators ([`ADMINS`]).
#[derive(Debug)]
pub struct Admins;
impl RoleSet for Admins {
    const ROLES: &'static [Role] = ADMINS;
}

/// Global Administrators only.
#[derive(Debug)]
pub struct GlobalAdmins;
impl RoleSet for GlobalAdmins {
    const ROLES: &'static [Role] = &[Role::GlobalAdministrator];
}

/// Registered agents only.
#[derive(Debug)]
pub struct Agents;
impl RoleSet for Agents {
    const ROLES: &'static [Role] = &[Role::Agent];
}

/// Admins and agents.
#[derive(Debug)]
pub struct AdminsOrAgents;
impl RoleSet for AdminsOrAgents {
    const ROLES: &'static [Role] = &[
        Role::GlobalAdministrator,
        Role::HybridIdentityAdministrator,
        Role::Agent,
    ];
}

/// An authenticated caller holding one of `R`'s roles. As an extractor it runs before the body
/// extractor, so a caller without the role gets 403 whatever the body holds.
#[derive(Debug)]
pub struct Authorized<R> {
    /// The caller.
    pub principal: Principal,
    roles: std::marker::PhantomData<R>,
}

impl<R: RoleSet> FromRequestParts<SharedState> for Authorized<R> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        principal.require(R::ROLES)?;
        Ok(Authorized {
            principal,
            roles: std::marker::PhantomData,
        })
    }
}
