//! Errors of the MS-DRSR client.

/// What went wrong talking MS-DRSR to a domain controller.
#[derive(Debug, thiserror::Error)]
pub enum DrsrError {
    /// The TCP connection failed or broke.
    #[error("network error talking to the domain controller: {0}")]
    Io(#[from] std::io::Error),
    /// The peer did not answer within the deadline.
    #[error("the domain controller did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// Bytes from the peer do not decode: `what` names the structure, `detail` the problem.
    #[error("malformed {what} from the domain controller: {detail}")]
    Malformed {
        /// The structure being decoded (e.g. "PDU header", "GetNCChanges reply").
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The peer sent a PDU of a type we did not expect at this point.
    #[error("unexpected DCE/RPC PDU type {got} (expected {expected})")]
    UnexpectedPdu {
        /// PDU type received.
        got: u8,
        /// What we waited for.
        expected: &'static str,
    },
    /// The server rejected the bind (bind_nak or a rejected presentation context).
    #[error("the DCE/RPC bind was rejected (reason {0:#x})")]
    BindRejected(u32),
    /// The server answered a call with a fault PDU.
    #[error("DCE/RPC fault {0:#010x}{hint}", hint = fault_hint(*.0))]
    Fault(u32),
    /// NTLM authentication failed or negotiated too weak a session.
    #[error("NTLM authentication: {0}")]
    Ntlm(String),
    /// A sealed PDU's signature did not verify (tampering or a key mismatch).
    #[error("the signature of a sealed PDU from the domain controller does not verify")]
    BadSignature,
    /// The endpoint mapper does not know the DRSUAPI interface.
    #[error("the endpoint mapper has no ncacn_ip_tcp endpoint for DRSUAPI")]
    NoEndpoint,
    /// A DRSUAPI call returned a Win32 error.
    #[error("{call} returned Win32 error {code:#x}{hint}", hint = win32_hint(*code))]
    Win32 {
        /// The call (e.g. "IDL_DRSGetNCChanges").
        call: &'static str,
        /// The Win32 error code.
        code: u32,
    },
    /// A replicated secret failed its CRC32 check or is malformed.
    #[error("a replicated secret of object {guid} does not decrypt: {detail}")]
    Secret {
        /// The object's GUID.
        guid: String,
        /// What was wrong.
        detail: &'static str,
    },
}

impl DrsrError {
    /// Builds a [`DrsrError::Malformed`].
    pub fn malformed(what: &'static str, detail: impl Into<String>) -> DrsrError {
        DrsrError::Malformed {
            what,
            detail: detail.into(),
        }
    }

    /// Whether a later cycle may succeed without a configuration change.
    pub fn is_retriable(&self) -> bool {
        match self {
            DrsrError::Io(_) | DrsrError::Timeout(_) => true,
            // 8456/8457: the source is (temporarily) rejecting replication; RPC_S_SERVER_TOO_BUSY.
            DrsrError::Win32 { code, .. } => matches!(code, 8456 | 8457 | 1722 | 1723),
            DrsrError::Fault(code) => matches!(code, 0x6bb),
            _ => false,
        }
    }

    /// Whether the error means the account lacks rights or its credentials are wrong.
    pub fn is_access_denied(&self) -> bool {
        match self {
            DrsrError::Fault(5) => true,
            DrsrError::Win32 { code, .. } => matches!(code, 5 | 8453),
            DrsrError::Ntlm(_) => true,
            _ => false,
        }
    }
}

fn fault_hint(code: u32) -> &'static str {
    match code {
        5 => " (access denied: check the account's credentials and its replication rights)",
        0x1c010002 => " (nca_s_op_rng_error: the server does not know this call)",
        0x1c00001a | 0x6f7 => " (the server could not decode the request)",
        _ => "",
    }
}

fn win32_hint(code: u32) -> &'static str {
    match code {
        5 | 8453 => {
            " (replication access denied: the account needs 'Replicating Directory Changes' and \
             'Replicating Directory Changes All' on the domain naming context)"
        }
        8456 | 8457 => " (the source server is currently rejecting replication requests)",
        87 => " (invalid parameter)",
        _ => "",
    }
}
