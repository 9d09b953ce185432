//! Errors of the tenant's HTTP layer and their OData error bodies.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use cloudsync_api::error::ODataError;

use super::store::StoreError;

/// Everything a tenant route can answer instead of its normal result.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (bad JSON, bad query, bad value). 400.
    #[error("{0}")]
    BadRequest(String),
    /// No token, or a token that is invalid or expired. 401.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token without the role the route needs. 403.
    #[error("{0}")]
    Forbidden(String),
    /// The addressed resource does not exist. 404.
    #[error("{0}")]
    NotFound(String),
    /// The method is not supported on this resource. 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request conflicts with the tenant's state. 409.
    #[error("{0}")]
    Conflict(String),
    /// A batch whose epoch is not the configuration's current lease ([`super::lease`]). 409
    /// `LeaseLost`, the current lease in the body.
    #[error("{message}")]
    LeaseLost {
        /// What was refused and why.
        message: String,
        /// The configuration's current lease, if any.
        lease: Option<cloudsync_api::lease::LeaseInfo>,
    },
    /// The body or the batch is too large. 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The request path or query string is too long. 414.
    #[error("{0}")]
    UriTooLong(String),
    /// The write or read budget is spent; retry after the given seconds. 429.
    #[error("Too many requests; retry after {retry_after} s.")]
    TooManyRequests {
        /// Seconds until enough budget has refilled.
        retry_after: u64,
    },
    /// An injected fault. 503 with `Retry-After: 1`.
    #[error("The service is temporarily unavailable (injected fault).")]
    ServiceUnavailable,
    /// The state store failed. 500.
    #[error("Internal error: {0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) | ApiError::LeaseLost { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OData error code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthorized(_) => "InvalidAuthenticationToken",
            ApiError::Forbidden(_) => "Authorization_RequestDenied",
            ApiError::NotFound(_) => "Request_ResourceNotFound",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::Conflict(_) => "Conflict",
            ApiError::LeaseLost { .. } => "LeaseLost",
            ApiError::PayloadTooLarge(_) => "RequestEntityTooLarge",
            ApiError::UriTooLong(_) => "RequestUriTooLong",
            ApiError::TooManyRequests { .. } => "TooManyRequests",
            ApiError::ServiceUnavailable => "ServiceUnavailable",
            ApiError::Store(_) => "InternalServerError",
        }
    }

    /// `Retry-After` seconds, for 429 and 503.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests { retry_after } => Some(*retry_after),
            ApiError::ServiceUnavailable => Some(1),
            _ => None,
        }
    }

    /// The OData body.
    pub fn body(&self) -> ODataError {
        let mut body = ODataError::new(self.code(), self.to_string());
        if let ApiError::LeaseLost { lease, .. } = self {
            body.error.lease = lease.clone();
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Store(err) = &self {
            tracing::error!(error = %err, "State store failed while serving a request.");
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!(
                "The request body exceeds {} bytes.",
                cloudsync_api::MAX_BODY_BYTES
            ))
        } else {
            ApiError::BadRequest(format!("Malformed JSON body: {}", rejection.body_text()))
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(format!("Malformed query: {}", rejection.body_text()))
    }
}

/// A JSON body extractor whose rejections are OData errors (400, or 413 for an oversized body).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}

/// A query extractor whose rejections are OData 400 errors.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(value))
    }
}
