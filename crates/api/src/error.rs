//! The OData error body every tenant route answers with on failure: `{"error":{"code","message"}}`.

use serde::{Deserialize, Serialize};

/// The outer OData error envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ODataError {
    /// The error itself.
    pub error: ODataErrorBody,
}

/// Code and message of an OData error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ODataErrorBody {
    /// A stable machine-readable code, e.g. `BadRequest`, `Forbidden`, `TooManyRequests`.
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
    /// `LeaseLost` only: the configuration's current lease (holder and epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<crate::lease::LeaseInfo>,
}

impl ODataError {
    /// Builds an error body from a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ODataError {
            error: ODataErrorBody {
                code: code.into(),
                message: message.into(),
                lease: None,
            },
        }
    }
}
