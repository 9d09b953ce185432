//! Fuzzes the OrgId string parser (the contract's, `cloudsync_api::orgid`, through the agent's
//! `OrgIdHash`): parse or fail, never panic; a parsed value prints back verbatim.
#![no_main]

use cloudsync_agent::phs::OrgIdHash;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(h) = s.parse::<OrgIdHash>() {
            assert_eq!(h.to_string(), s);
        }
    }
});
