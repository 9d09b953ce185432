//! The network decoders of `source::drsr` (and the OrgId parser) on arbitrary bytes: typed errors,
//! never a panic — the same bodies as the fuzz targets in `fuzz/fuzz_targets/drsr_*.rs`, run as
//! proptests so every `cargo test` exercises them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cloudsync_agent::phs::OrgIdHash;
use cloudsync_agent::source::drsr::cookie::Cookie;
use cloudsync_agent::source::drsr::{drsuapi, epm, getncchanges, ntlm, pdu, secrets};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn pdu_decoders(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = pdu::Header::parse(&data);
        if let Ok(s) = pdu::split(&data) {
            prop_assert!(s.body.len() + pdu::HEADER_LEN <= data.len());
            let _ = pdu::fault_status(s.body);
        }
        let _ = pdu::parse_bind_ack(&data);
    }

    #[test]
    fn pdu_decoders_on_plausible_headers(
        ptype in prop_oneof![Just(2u8), Just(3), Just(12), Just(13)],
        auth_len in 0u16..40,
        body in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut data = vec![5, 0, ptype, 3, 0x10, 0, 0, 0];
        let frag_len = (16 + body.len()) as u16;
        data.extend_from_slice(&frag_len.to_le_bytes());
        data.extend_from_slice(&auth_len.to_le_bytes());
        data.extend_from_slice(&1u32.to_le_bytes());
        data.extend_from_slice(&body);
        let _ = pdu::split(&data);
        let _ = pdu::parse_bind_ack(&data);
    }

    #[test]
    fn ntlm_challenge_and_unseal(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = ntlm::parse_challenge(&data);
        let mut with_sig = b"NTLMSSP\0\x02\0\0\0".to_vec();
        with_sig.extend_from_slice(&data);
        let _ = ntlm::parse_challenge(&with_sig);
        if data.len() >= 16 {
            let (sig, rest) = data.split_at(16);
            let mut pdu = rest.to_vec();
            let end = pdu.len() / 2;
            let mut session = ntlm::Session::for_fuzzing(&[7; 16]).unwrap();
            prop_assert!(session.unseal(&mut pdu, 0..end, sig).is_err());
        }
    }

    #[test]
    fn epm_and_drsuapi_replies(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = epm::parse_map_response(&data);
        let _ = epm::tcp_port(&data);
        let _ = drsuapi::parse_bind_reply(&data);
        let _ = getncchanges::decode_reply(&data);
    }

    #[test]
    fn getncchanges_reply_with_a_valid_prefix(
        tail in proptest::collection::vec(any::<u8>(), 0..600),
        counts in proptest::collection::vec(0u32..5, 16),
    ) {
        // A plausible level-6 header followed by hostile counts and pointers.
        let mut data = vec![6, 0, 0, 0, 6, 0, 0, 0];
        data.extend_from_slice(&[0x11; 32]);
        for c in &counts {
            data.extend_from_slice(&c.to_le_bytes());
        }
        data.extend_from_slice(&tail);
        data.extend_from_slice(&0u32.to_le_bytes());
        let _ = getncchanges::decode_reply(&data);
    }

    #[test]
    fn cookie_and_secrets(data in proptest::collection::vec(any::<u8>(), 0..120), rid in any::<u32>()) {
        if let Ok(Some(c)) = Cookie::from_bytes(&data) {
            prop_assert_eq!(c.to_bytes(), data.clone());
        }
        let _ = secrets::decrypt_unicode_pwd(&[1; 16], &data, rid);
    }

    #[test]
    fn orgid_parser(s in "v1;PPH1_MD4,[0-9a-f]{0,30},[0-9]{0,8},[0-9a-f]{0,70};?|\\PC{0,80}") {
        if let Ok(h) = s.parse::<OrgIdHash>() {
            prop_assert_eq!(h.to_string(), s);
        }
    }
}
