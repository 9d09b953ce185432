//! The word lists and value formats the synthetic directory draws from: names, titles, places,
//! AD timestamps, SIDs and GUIDs. Sizes follow what AD holds for real accounts (docs/bench.md).

use super::spec::{DOMAIN, Rng, stream};
use crate::event::{Attribute, Guid};

/// Given names (ASCII, so the derived account names need no escaping).
pub const GIVEN: [&str; 32] = [
    "Anna", "Ben", "Carla", "David", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Karin",
    "Lukas", "Maria", "Nils", "Olga", "Paul", "Rosa", "Sven", "Tanja", "Uwe", "Vera", "Wim",
    "Yara", "Zoe", "Amir", "Bea", "Chen", "Dana", "Emil", "Fatma", "Gino", "Hana",
];
/// Surnames, at most eight letters.
pub const SURNAMES: [&str; 32] = [
    "Schmidt", "Muller", "Meyer", "Weber", "Wagner", "Becker", "Hoffmann", "Koch", "Richter",
    "Klein", "Wolf", "Neumann", "Schwarz", "Braun", "Zimmer", "Kruger", "Hartmann", "Lange",
    "Werner", "Krause", "Lehmann", "Kohler", "Walter", "Maier", "Kaiser", "Fuchs", "Peters",
    "Lang", "Scholz", "Jung", "Moller", "Vogel",
];
/// Job titles of the initial read.
pub const TITLES: [&str; 12] = [
    "Account Manager",
    "Software Engineer",
    "Senior Software Engineer",
    "HR Business Partner",
    "Financial Analyst",
    "Legal Counsel",
    "Operations Manager",
    "Support Specialist",
    "Marketing Manager",
    "Sales Representative",
    "IT Administrator",
    "Project Manager",
];
/// Job titles the delta round sets: none of them is in [`TITLES`], so every change is a change.
pub const DELTA_TITLES: [&str; 4] = [
    "Team Lead",
    "Principal Consultant",
    "Head of Department",
    "Programme Director",
];
/// Where an office is, as AD's address attributes hold it.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    /// `l`.
    pub city: &'static str,
    /// `st`.
    pub state: &'static str,
    /// `co`.
    pub country: &'static str,
    /// `c` (ISO 3166 alpha-2).
    pub iso: &'static str,
    /// `countryCode` (ISO 3166 numeric).
    pub code: &'static str,
    /// The phone prefix.
    pub phone: &'static str,
}

const fn place(
    city: &'static str,
    state: &'static str,
    country: &'static str,
    iso: &'static str,
    code: &'static str,
    phone: &'static str,
) -> Place {
    Place {
        city,
        state,
        country,
        iso,
        code,
        phone,
    }
}

/// Two offices per region.
pub const PLACES: [[Place; 2]; 3] = [
    [
        place("Berlin", "BE", "Germany", "DE", "276", "+49 30"),
        place("Madrid", "MD", "Spain", "ES", "724", "+34 91"),
    ],
    [
        place("Seattle", "WA", "United States", "US", "840", "+1 206"),
        place("Toronto", "ON", "Canada", "CA", "124", "+1 416"),
    ],
    [
        place("Singapore", "SG", "Singapore", "SG", "702", "+65 6"),
        place("Sydney", "NSW", "Australia", "AU", "36", "+61 2"),
    ],
];
/// `objectCategory` of the schema classes generated.
pub const CATEGORY_PERSON: &str = "CN=Person,CN=Schema,CN=Configuration,DC=contoso,DC=com";
/// `objectCategory` of groups.
pub const CATEGORY_GROUP: &str = "CN=Group,CN=Schema,CN=Configuration,DC=contoso,DC=com";
/// `objectCategory` of OUs.
pub const CATEGORY_OU: &str = "CN=Organizational-Unit,CN=Schema,CN=Configuration,DC=contoso,DC=com";
/// Exchange's legacy X500 address prefix, which most migrated mailboxes carry in `proxyAddresses`.
pub const X500_PREFIX: &str =
    "X500:/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=";

/// Kinds, as the GUID derivation tells them apart.
pub mod kind {
    /// Users.
    pub const USER: u64 = 1;
    /// Contacts.
    pub const CONTACT: u64 = 2;
    /// Groups.
    pub const GROUP: u64 = 3;
    /// Organizational units.
    pub const OU: u64 = 4;
}

/// The `objectGUID` of object `index` of `kind`: distinct for every (kind, index) under one seed
/// (bytes 0–7 are the index under a per-kind mask, byte 15 is the kind).
pub fn guid(seed: u64, kind: u64, index: u64) -> Guid {
    let mask = Rng::new(seed, stream::GUID, kind).next_u64();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&(index ^ mask).to_le_bytes());
    let tail = Rng::new(seed, stream::GUID, (kind << 56) ^ index).next_u64();
    bytes[8..].copy_from_slice(&tail.to_le_bytes());
    bytes[15] = kind as u8;
    Guid(bytes)
}

/// A binary `objectSid` in the domain: S-1-5-21-(three sub-authorities from the seed)-`rid`.
pub fn sid(seed: u64, rid: u64) -> Vec<u8> {
    let mut r = Rng::new(seed, stream::GUID, u64::MAX);
    let mut out = vec![1u8, 5, 0, 0, 0, 0, 0, 5];
    out.extend_from_slice(&21u32.to_le_bytes());
    for _ in 0..3 {
        out.extend_from_slice(&((r.next_u64() >> 33) as u32).to_le_bytes());
    }
    out.extend_from_slice(&(rid as u32).to_le_bytes());
    out
}

/// A generalized time (`whenCreated`) between 2015 and 2024.
pub fn generalized_time(r: &mut Rng) -> String {
    format!(
        "{}{:02}{:02}{:02}{:02}{:02}.0Z",
        2015 + r.below(10),
        1 + r.below(12),
        1 + r.below(28),
        r.below(24),
        r.below(60),
        r.below(60)
    )
}

/// A FILETIME (100 ns since 1601) in 2024, as AD prints `pwdLastSet` and the logon times.
pub fn filetime(r: &mut Rng) -> String {
    (133_485_408_000_000_000 + r.below(315_360_000_000_000)).to_string()
}

/// A phone number under `prefix`.
pub fn phone(r: &mut Rng, prefix: &str) -> String {
    format!("{prefix} {:04} {:04}", r.below(10_000), r.below(10_000))
}

/// 32 lowercase hex digits (an Exchange recipient id).
pub fn hex32(r: &mut Rng) -> String {
    format!("{:016x}{:016x}", r.next_u64(), r.next_u64())
}

/// `proxyAddresses` of a mailbox: the primary SMTP address, and for most an alias, often the
/// legacy X500 address of a migrated mailbox, a few with many aliases (up to 12 values).
pub fn proxy_addresses(r: &mut Rng, sam: &str, given: &str, surname: &str) -> Attribute {
    let mut values = vec![format!("SMTP:{sam}@{DOMAIN}")];
    let extra = match r.below(100) {
        0..=29 => 0,
        30..=69 => 1,
        70..=89 => 2 + r.below(3),
        _ => 5 + r.below(7),
    };
    for k in 0..extra {
        values.push(match k {
            0 => format!(
                "smtp:{}.{}{}@{DOMAIN}",
                given.to_lowercase(),
                surname.to_lowercase(),
                &sam[sam.len() - 7..]
            ),
            1 => format!("{}{}-{sam}", X500_PREFIX, hex32(r)),
            _ => format!("smtp:{sam}.{k}@contoso.mail.onmicrosoft.com"),
        });
    }
    Attribute {
        name: "proxyAddresses".into(),
        values: values.into_iter().map(String::into_bytes).collect(),
    }
}
