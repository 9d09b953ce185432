//! The projected state: every object projection knows, the DN index, pending member references and
//! in-progress resyncs. Ordered maps only (no hash iteration order), no clocks: the same journal always
//! gives the same bytes ([`State::to_bytes`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::anchor::AnchorBytes;
use super::model::AttrBlob;
use super::ops::ObjectKind;
use crate::event::Guid;

/// Membership of a group: resolved members by GUID, and member DNs not seen yet (canonical form).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// Members whose objects are known.
    pub members: BTreeSet<Guid>,
    /// Member DNs (canonical) that no known object has yet.
    pub pending: BTreeSet<Box<str>>,
}

/// What projection keeps per object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjState {
    /// Index into [`State::domains`].
    pub domain: u16,
    /// The synced kind.
    pub kind: ObjectKind,
    /// The distinguished name as AD last reported it ("" until the object itself has been read).
    pub dn: Box<str>,
    /// The kept attributes.
    pub attrs: AttrBlob,
    /// The source anchor's 16 bytes (rendered as base64), fixed when the object is first read.
    pub anchor: AnchorBytes,
    /// Whether the cloud has (or has been sent) this object.
    pub in_cloud: bool,
    /// Fingerprint of the last upsert sent, to skip identical upserts.
    pub last_hash: u64,
    /// The journal sequence of the last read of this object; 0 for a placeholder known only from a
    /// membership event.
    pub seen_seq: u64,
    /// For groups: the membership.
    pub group: Option<Box<GroupState>>,
}

impl ObjState {
    /// A placeholder for an object known only by reference.
    pub fn placeholder(domain: u16, kind: ObjectKind, guid: Guid) -> ObjState {
        ObjState {
            domain,
            kind,
            dn: "".into(),
            attrs: AttrBlob::default(),
            anchor: AnchorBytes(guid.0),
            in_cloud: false,
            last_hash: 0,
            seen_seq: 0,
            group: None,
        }
    }
}

/// The whole projected state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Domain names, interned in order of first appearance.
    pub domains: Vec<String>,
    /// Objects by objectGUID.
    pub objects: BTreeMap<Guid, ObjState>,
    /// (domain, 64-bit FNV-1a of the canonical DN) to objectGUID, for resolving member DNs. Keyed by hash so
    /// the DN is not stored a second time; every hit is verified against the object's own DN.
    pub dn_index: BTreeMap<(u16, u64), Guid>,
    /// The rare DNs whose hash another DN already holds: domain to canonical DN to objectGUID.
    pub dn_collisions: BTreeMap<u16, BTreeMap<Box<str>, Guid>>,
    /// (domain, canonical member DN) to the groups waiting for that object.
    pub waiting: BTreeMap<(u16, Box<str>), BTreeSet<Guid>>,
    /// (member, group) for every resolved direct membership: one flat ordered set (a per-member set
    /// would cost a whole B-tree node for the usual one or two groups).
    pub member_of: BTreeSet<(Guid, Guid)>,
    /// Domains with a resync in progress: domain to the sequence of its `ResyncStarted`.
    pub resyncs: BTreeMap<u16, u64>,
    /// Password hashes that arrived before their user reached the cloud: (sequence, OrgId string).
    pub pending_hashes: BTreeMap<Guid, (u64, String)>,
    /// Objects held back because a mapping failed, with the reason (rare, so kept apart from
    /// [`ObjState`] to keep every object small).
    pub quarantined: BTreeMap<Guid, Box<str>>,
    /// Values of on-create mappings as first sent, per object, kept so updates resend them unchanged
    /// (only for objects that have such mappings).
    pub on_create: BTreeMap<Guid, BTreeMap<String, serde_json::Value>>,
    /// Values chosen by `SelectUniqueValue` mappings (lower-cased) to the object that holds them.
    pub claimed: BTreeMap<String, Guid>,
    /// The last journal sequence applied.
    pub last_seq: u64,
}

/// FNV-1a (64 bit) of a canonical DN: stable across runs and platforms, as the state's bytes must be.
pub fn dn_hash(canonical: &str) -> u64 {
    canonical.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The bincode configuration of state snapshots (varint integers, bounded length prefixes).
const CONFIG: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ 16 * 1024 * 1024 * 1024 }>,
> = bincode::config::standard().with_limit::<{ 16 * 1024 * 1024 * 1024 }>();

/// Snapshot decoding failures.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The bytes are not a state of this format version.
    #[error("projection snapshot does not decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// Encoding failed (cannot happen for this type; reported rather than unwrapped).
    #[error("projection snapshot does not encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// Bytes remained after the state.
    #[error("projection snapshot has {0} trailing bytes")]
    Trailing(usize),
}

impl State {
    /// The object holding canonical DN `canonical` in `domain`.
    pub fn dn_lookup(&self, domain: u16, canonical: &str) -> Option<Guid> {
        self.dn_lookup_hashed(domain, dn_hash(canonical), canonical)
    }

    fn holds(&self, guid: Guid, canonical: &str) -> bool {
        self.objects
            .get(&guid)
            .is_some_and(|o| crate::projection::dn::canonical_eq(&o.dn, canonical))
    }

    fn dn_lookup_hashed(&self, domain: u16, hash: u64, canonical: &str) -> Option<Guid> {
        if let Some(g) = self
            .dn_collisions
            .get(&domain)
            .and_then(|m| m.get(canonical))
        {
            return Some(*g);
        }
        let g = *self.dn_index.get(&(domain, hash))?;
        self.holds(g, canonical).then_some(g)
    }

    /// Records that `guid` holds canonical DN `canonical` (the object's `dn` must already be set).
    pub fn dn_insert(&mut self, domain: u16, canonical: Box<str>, guid: Guid) {
        self.dn_insert_hashed(domain, dn_hash(&canonical), canonical, guid);
    }

    fn dn_insert_hashed(&mut self, domain: u16, hash: u64, canonical: Box<str>, guid: Guid) {
        match self.dn_index.get(&(domain, hash)).copied() {
            Some(other)
                if other != guid
                    && self.objects.contains_key(&other)
                    && !self.holds(other, &canonical) =>
            {
                self.dn_collisions
                    .entry(domain)
                    .or_default()
                    .insert(canonical, guid);
            }
            _ => {
                self.dn_index.insert((domain, hash), guid);
            }
        }
    }

    /// Forgets canonical DN `canonical` if `guid` holds it.
    pub fn dn_remove(&mut self, domain: u16, canonical: &str, guid: Guid) {
        self.dn_remove_hashed(domain, dn_hash(canonical), canonical, guid);
    }

    fn dn_remove_hashed(&mut self, domain: u16, hash: u64, canonical: &str, guid: Guid) {
        if let Some(m) = self.dn_collisions.get_mut(&domain)
            && m.get(canonical) == Some(&guid)
        {
            m.remove(canonical);
            if m.is_empty() {
                self.dn_collisions.remove(&domain);
            }
            return;
        }
        if self.dn_index.get(&(domain, hash)) == Some(&guid) {
            self.dn_index.remove(&(domain, hash));
        }
    }

    /// How many DNs the index holds.
    pub fn dn_count(&self) -> usize {
        self.dn_index.len()
            + self
                .dn_collisions
                .values()
                .map(BTreeMap::len)
                .sum::<usize>()
    }
    /// The groups `member` is a direct member of.
    pub fn groups_of(&self, member: Guid) -> impl Iterator<Item = Guid> + '_ {
        self.member_of
            .range((member, Guid([0; 16]))..=(member, Guid([0xff; 16])))
            .map(|(_, g)| *g)
    }

    /// The state as bytes (bincode, standard configuration): equal states give equal bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, StateError> {
        Ok(bincode::serde::encode_to_vec(self, CONFIG)?)
    }

    /// Decodes [`State::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<State, StateError> {
        let (state, used) = bincode::serde::decode_from_slice(bytes, CONFIG)?;
        if used != bytes.len() {
            return Err(StateError::Trailing(bytes.len() - used));
        }
        Ok(state)
    }

    /// The id of `domain`, interning it on first use.
    pub fn domain_id(&mut self, domain: &str) -> u16 {
        if let Some(i) = self.domains.iter().position(|d| d == domain) {
            return i as u16;
        }
        self.domains.push(domain.to_string());
        (self.domains.len() - 1) as u16
    }

    /// The name of domain `id`.
    pub fn domain_name(&self, id: u16) -> &str {
        self.domains.get(usize::from(id)).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ops::ObjectKind;

    fn object(state: &mut State, n: u8, dn: &str) -> Guid {
        let g = Guid([n; 16]);
        let mut o = ObjState::placeholder(0, ObjectKind::User, g);
        o.dn = dn.into();
        state.objects.insert(g, o);
        g
    }

    #[test]
    fn hash_collisions_go_to_the_side_table() {
        let mut st = State::default();
        let a = object(&mut st, 1, "CN=A,DC=x");
        let b = object(&mut st, 2, "CN=B,DC=x");
        // Force both DNs onto one hash value.
        st.dn_insert_hashed(0, 7, "cn=a,dc=x".into(), a);
        st.dn_insert_hashed(0, 7, "cn=b,dc=x".into(), b);
        assert_eq!(st.dn_lookup_hashed(0, 7, "cn=a,dc=x"), Some(a));
        assert_eq!(st.dn_lookup_hashed(0, 7, "cn=b,dc=x"), Some(b));
        assert_eq!(
            st.dn_lookup_hashed(0, 7, "cn=c,dc=x"),
            None,
            "a hash hit is verified"
        );
        assert_eq!(st.dn_count(), 2);
        st.dn_remove_hashed(0, 7, "cn=b,dc=x", b);
        st.dn_remove_hashed(0, 7, "cn=a,dc=x", a);
        assert_eq!(st.dn_count(), 0);
        assert!(st.dn_collisions.is_empty());
    }

    #[test]
    fn dn_hash_is_fnv1a() {
        // Published FNV-1a 64 test vectors (Fowler/Noll/Vo): "" and "a".
        assert_eq!(dn_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(dn_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
