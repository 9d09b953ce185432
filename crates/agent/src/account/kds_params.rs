//! The Group Key Distribution Service's fixed values (MS-GKDI): the default KDF and secret-agreement
//! parameter blobs a new KDS root key carries, the key interval and clock skew, and NT time. Enters:
//! nothing, or a `SystemTime` / NT time integer. Leaves: the blobs byte for byte as Windows and Samba
//! write them (checked below against the published values and, in `tests/kds_lab.rs`, against the
//! root key Samba's provision wrote), and times converted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `msKds-RootKeyData` length (MS-GKDI 3.1.4.1.1: 64 random bytes).
pub const ROOT_KEY_LEN: usize = 64;
/// One GKDI key interval: 10 hours (MS-GKDI 3.1.4.1.1, `KeyCycleDuration`).
pub const KEY_CYCLE: Duration = Duration::from_secs(10 * 3600);
/// The clock skew GKDI allows: 5 minutes (MS-GKDI 3.1.4.1.1, `MaxClockSkew`).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// The default `msKds-KDFAlgorithmID` (MS-GKDI 3.1.4.1.2).
pub const KDF_ALGORITHM: &str = "SP800_108_CTR_HMAC";
/// The default `msKds-SecretAgreementAlgorithmID` (MS-GKDI 3.1.4.1.2).
pub const SECRET_AGREEMENT_ALGORITHM: &str = "DH";
/// The default `msKds-PublicKeyLength`, in bits (MS-GKDI 3.1.4.1.2).
pub const PUBLIC_KEY_LENGTH: u32 = 2048;
/// The default `msKds-PrivateKeyLength`, in bits (MS-GKDI 3.1.4.1.2; Samba writes 256).
pub const PRIVATE_KEY_LENGTH: u32 = 512;

/// The default `msKds-KDFParam` (MS-GKDI 2.2.1 KDF Parameters): 0, 1, the byte length of the hash
/// name with its NUL (14), 0 — each a little-endian u32 — then "SHA512" in NUL-terminated UTF-16LE.
pub const KDF_PARAM_SHA512: [u8; 30] = [
    0, 0, 0, 0, 1, 0, 0, 0, 14, 0, 0, 0, 0, 0, 0, 0, b'S', 0, b'H', 0, b'A', 0, b'5', 0, b'1', 0,
    b'2', 0, 0, 0,
];

/// Bytes of p and of g in [`FFC_DH_PARAMETERS`].
const DH_KEY_LEN: usize = 256;
const DH_HEADER_LEN: usize = 12;
/// Length of [`FFC_DH_PARAMETERS`].
pub const FFC_DH_PARAMETERS_LEN: usize = DH_HEADER_LEN + 2 * DH_KEY_LEN;

/// The default `msKds-SecretAgreementParam` (MS-GKDI 2.2.2 FFC DH Parameters): the blob length (524)
/// as a little-endian u32, the magic `DHPM`, the key length (256) as a little-endian u32, then the
/// field order p and the generator g big-endian — the 2048-bit MODP group with a 256-bit prime order
/// subgroup of RFC 5114 §2.3, the group Windows and Samba write.
pub const FFC_DH_PARAMETERS: [u8; FFC_DH_PARAMETERS_LEN] = ffc_dh_parameters();

const fn ffc_dh_parameters() -> [u8; FFC_DH_PARAMETERS_LEN] {
    let mut out = [0u8; FFC_DH_PARAMETERS_LEN];
    let len = (FFC_DH_PARAMETERS_LEN as u32).to_le_bytes();
    let key_len = (DH_KEY_LEN as u32).to_le_bytes();
    let header = [
        len[0], len[1], len[2], len[3], b'D', b'H', b'P', b'M', key_len[0], key_len[1], key_len[2],
        key_len[3],
    ];
    let mut i = 0;
    while i < DH_HEADER_LEN {
        out[i] = header[i];
        i += 1;
    }
    let mut i = 0;
    while i < DH_KEY_LEN {
        out[DH_HEADER_LEN + i] = DH_P[i];
        out[DH_HEADER_LEN + DH_KEY_LEN + i] = DH_G[i];
        i += 1;
    }
    out
}

/// The prime p of RFC 5114 §2.3 (big-endian).
const DH_P: [u8; DH_KEY_LEN] = [
    0x87, 0xa8, 0xe6, 0x1d, 0xb4, 0xb6, 0x66, 0x3c, 0xff, 0xbb, 0xd1, 0x9c, 0x65, 0x19, 0x59, 0x99,
    0x8c, 0xee, 0xf6, 0x08, 0x66, 0x0d, 0xd0, 0xf2, 0x5d, 0x2c, 0xee, 0xd4, 0x43, 0x5e, 0x3b, 0x00,
    0xe0, 0x0d, 0xf8, 0xf1, 0xd6, 0x19, 0x57, 0xd4, 0xfa, 0xf7, 0xdf, 0x45, 0x61, 0xb2, 0xaa, 0x30,
    0x16, 0xc3, 0xd9, 0x11, 0x34, 0x09, 0x6f, 0xaa, 0x3b, 0xf4, 0x29, 0x6d, 0x83, 0x0e, 0x9a, 0x7c,
    0x20, 0x9e, 0x0c, 0x64, 0x97, 0x51, 0x7a, 0xbd, 0x5a, 0x8a, 0x9d, 0x30, 0x6b, 0xcf, 0x67, 0xed,
    0x91, 0xf9, 0xe6, 0x72, 0x5b, 0x47, 0x58, 0xc0, 0x22, 0xe0, 0xb1, 0xef, 0x42, 0x75, 0xbf, 0x7b,
    0x6c, 0x5b, 0xfc, 0x11, 0xd4, 0x5f, 0x90, 0x88, 0xb9, 0x41, 0xf5, 0x4e, 0xb1, 0xe5, 0x9b, 0xb8,
    0xbc, 0x39, 0xa0, 0xbf, 0x12, 0x30, 0x7f, 0x5c, 0x4f, 0xdb, 0x70, 0xc5, 0x81, 0xb2, 0x3f, 0x76,
    0xb6, 0x3a, 0xca, 0xe1, 0xca, 0xa6, 0xb7, 0x90, 0x2d, 0x52, 0x52, 0x67, 0x35, 0x48, 0x8a, 0x0e,
    0xf1, 0x3c, 0x6d, 0x9a, 0x51, 0xbf, 0xa4, 0xab, 0x3a, 0xd8, 0x34, 0x77, 0x96, 0x52, 0x4d, 0x8e,
    0xf6, 0xa1, 0x67, 0xb5, 0xa4, 0x18, 0x25, 0xd9, 0x67, 0xe1, 0x44, 0xe5, 0x14, 0x05, 0x64, 0x25,
    0x1c, 0xca, 0xcb, 0x83, 0xe6, 0xb4, 0x86, 0xf6, 0xb3, 0xca, 0x3f, 0x79, 0x71, 0x50, 0x60, 0x26,
    0xc0, 0xb8, 0x57, 0xf6, 0x89, 0x96, 0x28, 0x56, 0xde, 0xd4, 0x01, 0x0a, 0xbd, 0x0b, 0xe6, 0x21,
    0xc3, 0xa3, 0x96, 0x0a, 0x54, 0xe7, 0x10, 0xc3, 0x75, 0xf2, 0x63, 0x75, 0xd7, 0x01, 0x41, 0x03,
    0xa4, 0xb5, 0x43, 0x30, 0xc1, 0x98, 0xaf, 0x12, 0x61, 0x16, 0xd2, 0x27, 0x6e, 0x11, 0x71, 0x5f,
    0x69, 0x38, 0x77, 0xfa, 0xd7, 0xef, 0x09, 0xca, 0xdb, 0x09, 0x4a, 0xe9, 0x1e, 0x1a, 0x15, 0x97,
];
/// The generator g of RFC 5114 §2.3 (big-endian).
const DH_G: [u8; DH_KEY_LEN] = [
    0x3f, 0xb3, 0x2c, 0x9b, 0x73, 0x13, 0x4d, 0x0b, 0x2e, 0x77, 0x50, 0x66, 0x60, 0xed, 0xbd, 0x48,
    0x4c, 0xa7, 0xb1, 0x8f, 0x21, 0xef, 0x20, 0x54, 0x07, 0xf4, 0x79, 0x3a, 0x1a, 0x0b, 0xa1, 0x25,
    0x10, 0xdb, 0xc1, 0x50, 0x77, 0xbe, 0x46, 0x3f, 0xff, 0x4f, 0xed, 0x4a, 0xac, 0x0b, 0xb5, 0x55,
    0xbe, 0x3a, 0x6c, 0x1b, 0x0c, 0x6b, 0x47, 0xb1, 0xbc, 0x37, 0x73, 0xbf, 0x7e, 0x8c, 0x6f, 0x62,
    0x90, 0x12, 0x28, 0xf8, 0xc2, 0x8c, 0xbb, 0x18, 0xa5, 0x5a, 0xe3, 0x13, 0x41, 0x00, 0x0a, 0x65,
    0x01, 0x96, 0xf9, 0x31, 0xc7, 0x7a, 0x57, 0xf2, 0xdd, 0xf4, 0x63, 0xe5, 0xe9, 0xec, 0x14, 0x4b,
    0x77, 0x7d, 0xe6, 0x2a, 0xaa, 0xb8, 0xa8, 0x62, 0x8a, 0xc3, 0x76, 0xd2, 0x82, 0xd6, 0xed, 0x38,
    0x64, 0xe6, 0x79, 0x82, 0x42, 0x8e, 0xbc, 0x83, 0x1d, 0x14, 0x34, 0x8f, 0x6f, 0x2f, 0x91, 0x93,
    0xb5, 0x04, 0x5a, 0xf2, 0x76, 0x71, 0x64, 0xe1, 0xdf, 0xc9, 0x67, 0xc1, 0xfb, 0x3f, 0x2e, 0x55,
    0xa4, 0xbd, 0x1b, 0xff, 0xe8, 0x3b, 0x9c, 0x80, 0xd0, 0x52, 0xb9, 0x85, 0xd1, 0x82, 0xea, 0x0a,
    0xdb, 0x2a, 0x3b, 0x73, 0x13, 0xd3, 0xfe, 0x14, 0xc8, 0x48, 0x4b, 0x1e, 0x05, 0x25, 0x88, 0xb9,
    0xb7, 0xd2, 0xbb, 0xd2, 0xdf, 0x01, 0x61, 0x99, 0xec, 0xd0, 0x6e, 0x15, 0x57, 0xcd, 0x09, 0x15,
    0xb3, 0x35, 0x3b, 0xbb, 0x64, 0xe0, 0xec, 0x37, 0x7f, 0xd0, 0x28, 0x37, 0x0d, 0xf9, 0x2b, 0x52,
    0xc7, 0x89, 0x14, 0x28, 0xcd, 0xc6, 0x7e, 0xb6, 0x18, 0x4b, 0x52, 0x3d, 0x1d, 0xb2, 0x46, 0xc3,
    0x2f, 0x63, 0x07, 0x84, 0x90, 0xf0, 0x0e, 0xf8, 0xd6, 0x47, 0xd1, 0x48, 0xd4, 0x79, 0x54, 0x51,
    0x5e, 0x23, 0x27, 0xcf, 0xef, 0x98, 0xc5, 0x82, 0x66, 0x4b, 0x4c, 0x0f, 0x6c, 0xc4, 0x16, 0x59,
];

/// Ticks (100 ns) between 1601-01-01 and 1970-01-01.
pub const NT_EPOCH_OFFSET_TICKS: u64 = 116_444_736_000_000_000;
/// NT time ticks per second (one tick is 100 ns).
pub const TICKS_PER_SEC: u64 = 10_000_000;

/// `time` as NT time; `None` before 1601 or past the year 30828.
pub fn nt_time(time: SystemTime) -> Option<u64> {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => {
            let ticks = u64::try_from(after.as_nanos() / 100).ok()?;
            NT_EPOCH_OFFSET_TICKS.checked_add(ticks)
        }
        Err(before) => {
            let ticks = u64::try_from(before.duration().as_nanos() / 100).ok()?;
            NT_EPOCH_OFFSET_TICKS.checked_sub(ticks)
        }
    }
}

/// NT time as a `SystemTime`; `None` where the platform's clock type cannot hold it.
pub fn from_nt_time(ticks: u64) -> Option<SystemTime> {
    let to_duration = |t: u64| {
        Duration::from_nanos(t % TICKS_PER_SEC * 100) + Duration::from_secs(t / TICKS_PER_SEC)
    };
    if ticks >= NT_EPOCH_OFFSET_TICKS {
        UNIX_EPOCH.checked_add(to_duration(ticks - NT_EPOCH_OFFSET_TICKS))
    } else {
        UNIX_EPOCH.checked_sub(to_duration(NT_EPOCH_OFFSET_TICKS - ticks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5114 §2.3 "2048-bit MODP Group with 256-bit Prime Order Subgroup", p as published.
    const RFC5114_2_3_P: [&str; 8] = [
        "87A8E61DB4B6663CFFBBD19C651959998CEEF608660DD0F25D2CEED4435E3B00",
        "E00DF8F1D61957D4FAF7DF4561B2AA3016C3D91134096FAA3BF4296D830E9A7C",
        "209E0C6497517ABD5A8A9D306BCF67ED91F9E6725B4758C022E0B1EF4275BF7B",
        "6C5BFC11D45F9088B941F54EB1E59BB8BC39A0BF12307F5C4FDB70C581B23F76",
        "B63ACAE1CAA6B7902D52526735488A0EF13C6D9A51BFA4AB3AD8347796524D8E",
        "F6A167B5A41825D967E144E5140564251CCACB83E6B486F6B3CA3F7971506026",
        "C0B857F689962856DED4010ABD0BE621C3A3960A54E710C375F26375D7014103",
        "A4B54330C198AF126116D2276E11715F693877FAD7EF09CADB094AE91E1A1597",
    ];
    /// The same section's g.
    const RFC5114_2_3_G: [&str; 8] = [
        "3FB32C9B73134D0B2E77506660EDBD484CA7B18F21EF205407F4793A1A0BA125",
        "10DBC15077BE463FFF4FED4AAC0BB555BE3A6C1B0C6B47B1BC3773BF7E8C6F62",
        "901228F8C28CBB18A55AE31341000A650196F931C77A57F2DDF463E5E9EC144B",
        "777DE62AAAB8A8628AC376D282D6ED3864E67982428EBC831D14348F6F2F9193",
        "B5045AF2767164E1DFC967C1FB3F2E55A4BD1BFFE83B9C80D052B985D182EA0A",
        "DB2A3B7313D3FE14C8484B1E052588B9B7D2BBD2DF016199ECD06E1557CD0915",
        "B3353BBB64E0EC377FD028370DF92B52C7891428CDC67EB6184B523D1DB246C3",
        "2F63078490F00EF8D647D148D47954515E2327CFEF98C582664B4C0F6CC41659",
    ];

    fn hex_lines(lines: &[&str]) -> Vec<u8> {
        hex::decode(lines.concat()).unwrap()
    }

    #[test]
    fn the_kdf_parameters_are_ms_gkdi_2_2_1_for_sha512() {
        // MS-GKDI 2.2.1: Unknown1 = 0, Unknown2 = 1, the hash name's length in bytes with its NUL,
        // Unknown3 = 0
        // (little-endian u32 each), then the hash name in UTF-16LE with its terminating NUL.
        let name: Vec<u8> = "SHA512\0"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let mut expected = Vec::new();
        for field in [0u32, 1, name.len() as u32, 0] {
            expected.extend_from_slice(&field.to_le_bytes());
        }
        expected.extend_from_slice(&name);
        assert_eq!(KDF_PARAM_SHA512.to_vec(), expected);
        // As Samba provisions it (`msKds-KDFParam:: AAAAAAEAAAAOAAAAAAAAAFMASABBADUAMQAyAAAA`).
        assert_eq!(
            hex::encode(KDF_PARAM_SHA512),
            "00000000010000000e000000000000005300480041003500310032000000"
        );
    }

    #[test]
    fn the_dh_parameters_are_ms_gkdi_2_2_2_around_the_rfc_5114_group() {
        // MS-GKDI 2.2.2: cbBlob (u32 LE), dwMagic "DHPM", cbKey (u32 LE), then p and g, cbKey bytes
        // each, big-endian.
        let p = hex_lines(&RFC5114_2_3_P);
        let g = hex_lines(&RFC5114_2_3_G);
        assert_eq!((p.len(), g.len()), (256, 256));
        let mut expected = Vec::new();
        expected.extend_from_slice(&524u32.to_le_bytes());
        expected.extend_from_slice(b"DHPM");
        expected.extend_from_slice(&256u32.to_le_bytes());
        expected.extend_from_slice(&p);
        expected.extend_from_slice(&g);
        assert_eq!(FFC_DH_PARAMETERS.to_vec(), expected);
        assert_eq!(
            &FFC_DH_PARAMETERS[..12],
            &[12, 2, 0, 0, 68, 72, 80, 77, 0, 1, 0, 0]
        );
    }

    #[test]
    fn nt_time_round_trips_and_knows_its_epochs() {
        assert_eq!(nt_time(UNIX_EPOCH), Some(NT_EPOCH_OFFSET_TICKS));
        let at = |t| from_nt_time(t).unwrap();
        assert_eq!(at(0), UNIX_EPOCH - Duration::from_secs(11_644_473_600));
        assert_eq!(nt_time(at(0)), Some(0));
        assert!(from_nt_time(u64::MAX).is_some_and(|t| nt_time(t) == Some(u64::MAX)));
        // The root key Samba 4.22's provision wrote: created 10 h 5 min after its use start.
        let (use_start, created) = (134_410_918_201_197_696u64, 134_411_281_201_197_696u64);
        let gap = at(created).duration_since(at(use_start)).unwrap();
        assert_eq!(gap, KEY_CYCLE + MAX_CLOCK_SKEW);
        assert_eq!(nt_time(at(created)), Some(created));
        assert_eq!(
            nt_time(UNIX_EPOCH - Duration::from_secs(20_000_000_000)),
            None
        );
    }
}
