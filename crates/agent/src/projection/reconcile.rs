//! Reconciling one object with the cloud: scope, mapping evaluation, create / update / delete, and what
//! follows a create (memberships, a held password hash). An object leaves the cloud through one sequence,
//! [`Projector::delete_from_cloud`], whether it fell out of scope or left AD. Also the evaluation context
//! and the upsert fingerprint that suppresses identical upserts.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::config::Compiled;
use super::expr::{EvalContext, Value};
use super::mapping::ApplyWhen;
use super::ops::{ObjectKind, OnPremisesIdentity, Operation, Upsert};
use super::projector::{Output, Projector};
use super::provlog::Step;
use super::scope::Mode;
use super::sid::sid_to_string;
use super::state::blob::{Loc, ObjData};
use super::state::shared::Shared;
use super::state::slab::{ObjId, ObjState};
use crate::event::Guid;

pub(super) struct Ctx<'a> {
    cfg: &'a Compiled,
    data: &'a ObjData,
    shared: &'a Shared,
    dn: String,
    guid: Guid,
    seq: u64,
    claimed: &'a BTreeMap<String, Guid>,
    /// Where each kept attribute's values lie in `data` ([`ObjData::locate`]), by table id.
    locs: [Loc; SLOTS],
}

/// Attribute ids below this are located once per object; the rest are found by scanning.
const SLOTS: usize = 64;

impl Ctx<'_> {
    /// The objectSid (table id `id`) in text form, `None` when absent or not a SID.
    fn sid_text(&self, id: Option<u16>) -> Option<String> {
        let id = id?;
        match self.locs.get(usize::from(id)) {
            Some(loc) if loc.count == 0 => None,
            Some(&loc) => self.data.sid_text_at(loc, self.shared),
            None => match self.by_id(Some(id)) {
                Value::Bin(b) => sid_to_string(&b),
                _ => None,
            },
        }
    }

    /// The kept attribute with table id `id` (`None`: not kept, so Null).
    fn by_id(&self, id: Option<u16>) -> Value {
        match id {
            Some(id) => self.attribute_in_slot("", id),
            None => Value::Null,
        }
    }
}

impl EvalContext for Ctx<'_> {
    fn attribute(&self, name: &str) -> Value {
        if name.eq_ignore_ascii_case("dn") || name.eq_ignore_ascii_case("distinguishedName") {
            return Value::Str(self.dn.clone());
        }
        if name.eq_ignore_ascii_case("objectGUID") {
            return Value::Bin(self.guid.0.to_vec());
        }
        match self.cfg.table.id(name) {
            Some(id) => self.attribute_in_slot(name, id),
            None => Value::Null,
        }
    }

    fn attribute_shape(&self, _name: &str, id: u16) -> Option<(usize, bool)> {
        match self.locs.get(usize::from(id)) {
            Some(loc) if loc.count == 0 => Some((0, true)),
            Some(&loc) => Some(self.data.shape_at(loc)),
            None => None,
        }
    }

    fn attribute_in_slot(&self, _name: &str, id: u16) -> Value {
        match self.locs.get(usize::from(id)) {
            Some(loc) if loc.count == 0 => Value::Null,
            Some(&loc) => self
                .data
                .value_at(loc, self.cfg.table.shape(id), self.shared),
            None => self
                .data
                .value(id, self.cfg.table.name(id).unwrap_or_default(), self.shared),
        }
    }

    fn guid_bytes(&self) -> [u8; 16] {
        seed(self.guid, self.seq)
    }

    fn is_unique(&self, value: &str) -> bool {
        self.claimed
            .get(&value.to_lowercase())
            .is_none_or(|g| *g == self.guid)
    }
}

fn seed(guid: Guid, seq: u64) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(guid.0)
        .chain_update(seq.to_be_bytes())
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// A fingerprint hash fed piece by piece, eight bytes at a time: cheap, stable across runs and platforms
/// (it is kept in the state's bytes).
struct Fp(u64);

impl Fp {
    fn bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.word(w);
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        // The length goes in too, so that ("ab", "c") and ("a", "bc") differ.
        self.word(u64::from_le_bytes(tail) ^ ((bytes.len() as u64) << 56));
    }

    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }

    fn json(&mut self, v: &serde_json::Value) {
        use serde_json::Value as J;
        match v {
            J::Null => self.bytes(b"n"),
            J::Bool(b) => self.bytes(if *b { b"t" } else { b"f" }),
            J::Number(n) => match n.as_i64() {
                Some(i) => self.bytes(&i.to_le_bytes()),
                None => self.bytes(n.to_string().as_bytes()),
            },
            J::String(s) => self.bytes(s.as_bytes()),
            J::Array(a) => {
                self.bytes(b"[");
                a.iter().for_each(|x| self.json(x));
                self.bytes(b"]");
            }
            J::Object(o) => {
                self.bytes(b"{");
                for (k, x) in o {
                    self.bytes(k.as_bytes());
                    self.json(x);
                }
                self.bytes(b"}");
            }
        }
    }

    fn opt(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.bytes(s.as_bytes()),
            None => self.bytes(b"\x00none"),
        }
    }
}

/// What decides whether an upsert must be sent again: kind, on-premises identity and attributes
/// (not the anchor, which never changes, nor the version).
fn upsert_fingerprint(u: &Upsert) -> u64 {
    let mut h = Fp(0xcbf2_9ce4_8422_2325);
    h.bytes(u.kind.as_str().as_bytes());
    h.opt(u.on_premises.sam_account_name.as_deref());
    h.opt(u.on_premises.distinguished_name.as_deref());
    h.opt(u.on_premises.security_identifier.as_deref());
    h.opt(u.on_premises.domain_name.as_deref());
    for (k, v) in &u.attributes {
        h.bytes(k.as_bytes());
        h.json(v);
    }
    h.0 | 1
}

impl Projector {
    /// Whether the object is in scope, and why not.
    fn in_scope(&self, id: ObjId, obj: &ObjState, ctx: &Ctx<'_>) -> Result<(), &'static str> {
        if obj.seen_seq == 0 {
            return Err("object not read yet");
        }
        if ctx
            .by_id(self.cfg.ids.critical)
            .to_bool("scope")
            .unwrap_or(false)
        {
            return Err("critical system object");
        }
        if self.ignore_scope {
            return Ok(());
        }
        let scope = self.cfg.scope_of(self.state.domain_name(obj.domain));
        let selected = match &scope.mode {
            Mode::All => true,
            Mode::Ous(_) => scope.ou_selects(&self.state.canonical_dn(id)),
            Mode::Groups(_) => self
                .state
                .groups_of(id)
                .any(|g| scope.is_scoping_group(&self.state.canonical_dn(g))),
        };
        if !selected {
            return Err("outside the selected OUs or groups");
        }
        if !scope.filters_match(&|name| ctx.attribute(name)) {
            return Err("attribute filter");
        }
        Ok(())
    }

    pub(super) fn ctx<'a>(&'a self, id: ObjId, obj: &'a ObjState, seq: u64) -> Ctx<'a> {
        Ctx {
            cfg: &self.cfg,
            data: &obj.data,
            shared: self.state.shared(),
            dn: self.state.dn(id),
            guid: obj.guid,
            seq,
            claimed: &self.state.claimed,
            locs: {
                let mut locs = [Loc::default(); SLOTS];
                obj.data.locate(&mut locs);
                locs
            },
        }
    }

    pub(super) fn build_upsert(
        &self,
        id: ObjId,
        seq: u64,
        obj: &ObjState,
        ctx: Ctx<'_>,
    ) -> Result<Upsert, String> {
        let creating = !obj.in_cloud();
        let attributes = self
            .cfg
            .mappings_of(self.state.domain_name(obj.domain))
            .evaluate(
                obj.kind,
                &ctx,
                creating,
                self.state.on_create.get(&obj.guid),
            )
            .map_err(|(target, e)| format!("{target}: {e}"))?;
        let sid = ctx.sid_text(self.cfg.ids.sid);
        Ok(Upsert {
            kind: obj.kind,
            source_anchor: self.state.anchor(id).text(),
            version: seq,
            on_premises: OnPremisesIdentity {
                sam_account_name: ctx
                    .by_id(self.cfg.ids.sam)
                    .to_opt_str("onPremises")
                    .ok()
                    .flatten(),
                distinguished_name: Some(ctx.dn),
                security_identifier: sid,
                domain_name: Some(self.state.domain_name(obj.domain).to_string()),
            },
            attributes,
        })
    }

    /// Brings the cloud in line with object `id`: create, update, delete or nothing.
    pub(super) fn reconcile(&mut self, seq: u64, id: ObjId, out: &mut Output) {
        let Some(obj) = self.state.obj(id) else {
            return;
        };
        let (domain, guid, in_cloud, last_hash) =
            (obj.domain, obj.guid, obj.in_cloud(), obj.last_hash);
        let decision = {
            let ctx = self.ctx(id, obj, seq);
            match self.in_scope(id, obj, &ctx) {
                Ok(()) => Ok(self.build_upsert(id, seq, obj, ctx)),
                Err(reason) => Err(reason),
            }
        };
        match decision {
            Err(reason) => {
                self.log(out, guid, seq, Step::Scope, "Skipped", || {
                    reason.to_string()
                });
                if in_cloud {
                    self.log_config_change(out, guid, seq, domain);
                }
                self.delete_from_cloud(seq, id, out);
            }
            Ok(built) => {
                self.log(out, guid, seq, Step::Scope, "InScope", String::new);
                let creating = !in_cloud;
                let upsert = match built {
                    Ok(u) => u,
                    Err(reason) => {
                        self.log(out, guid, seq, Step::Action, "Error", || reason.clone());
                        tracing::warn!(object = %guid, seq, reason = %reason, "Mapping failed; object held back.");
                        self.state.quarantined.insert(guid, reason.into());
                        return;
                    }
                };
                let print = upsert_fingerprint(&upsert);
                if !creating && print == last_hash {
                    self.log(out, guid, seq, Step::Match, "NoChange", String::new);
                    return;
                }
                self.log_config_change(out, guid, seq, domain);
                self.log(
                    out,
                    guid,
                    seq,
                    Step::Match,
                    if creating { "Create" } else { "Update" },
                    String::new,
                );
                self.log(out, guid, seq, Step::Action, "Upsert", || {
                    upsert.source_anchor.clone()
                });
                let mappings = self
                    .cfg
                    .mappings_of(self.state.domain_name(domain))
                    .of(upsert.kind);
                let unique: Vec<String> = mappings
                    .iter()
                    .filter(|m| m.unique)
                    .filter_map(|m| {
                        upsert
                            .attributes
                            .get(m.target.as_ref())
                            .and_then(|v| v.as_str())
                            .map(str::to_lowercase)
                    })
                    .collect();
                let on_create: BTreeMap<String, serde_json::Value> = if creating {
                    mappings
                        .iter()
                        .filter(|m| m.apply == ApplyWhen::OnCreate)
                        .filter_map(|m| {
                            upsert
                                .attributes
                                .get(m.target.as_ref())
                                .map(|v| (m.target.to_string(), v.clone()))
                        })
                        .collect()
                } else {
                    BTreeMap::new()
                };
                self.emit(out, domain, seq, Operation::Upsert(upsert));
                for v in unique {
                    self.state.claimed.insert(v, guid);
                }
                if let Some(o) = self.state.obj_mut(id) {
                    o.set_in_cloud(true);
                    o.last_hash = print;
                }
                if !self.state.quarantined.is_empty() {
                    self.state.quarantined.remove(&guid);
                }
                if !on_create.is_empty() {
                    self.state.on_create.insert(guid, on_create);
                }
                if creating {
                    self.entered_cloud(seq, id, out);
                }
            }
        }
    }

    /// Object `id` leaves the cloud — it fell out of scope, or it left AD ([`Projector::deleted`]): when
    /// the cloud has it, the Match and Action log entries, the delete by its anchor, and then what only an
    /// object in the cloud holds is dropped (the in-cloud mark, the upsert fingerprint, its on-create values,
    /// the unique values it claimed). The one place a delete is written; the object itself stays in the
    /// state (its held password hash too, for a later re-create).
    pub(super) fn delete_from_cloud(&mut self, seq: u64, id: ObjId, out: &mut Output) {
        let Some(obj) = self.state.obj(id) else {
            return;
        };
        if !obj.in_cloud() {
            // Nothing to drop: the in-cloud mark, fingerprint, on-create values and claims come and go
            // together (set by a sent upsert, cleared below).
            return;
        }
        let (domain, guid, kind) = (obj.domain, obj.guid, obj.kind);
        let anchor = self.state.anchor(id).text();
        self.log(out, guid, seq, Step::Match, "Delete", String::new);
        self.log(out, guid, seq, Step::Action, "Delete", || anchor.clone());
        let op = Operation::Delete {
            kind,
            source_anchor: anchor,
            version: seq,
        };
        self.emit(out, domain, seq, op);
        if let Some(o) = self.state.obj_mut(id) {
            o.set_in_cloud(false);
            o.last_hash = 0;
        }
        self.state.on_create.remove(&guid);
        if !self.state.claimed.is_empty() {
            self.state.claimed.retain(|_, g| *g != guid);
        }
    }

    pub(super) fn password_hash(&mut self, seq: u64, guid: Guid, hash: &str, out: &mut Output) {
        // The latest hash is kept whether or not it is sent now: it follows every later (re)create.
        self.state.hashes.insert(guid, (seq, hash.to_string()));
        let target = self
            .state
            .id(guid)
            .and_then(|id| Some((id, self.state.obj(id)?)))
            .filter(|(_, o)| o.in_cloud() && o.kind == ObjectKind::User)
            .map(|(id, o)| (id, o.domain));
        match target {
            Some((id, domain)) => {
                let op = Operation::SetPasswordHash {
                    source_anchor: self.state.anchor(id).text(),
                    version: seq,
                    credential: hash.to_string(),
                };
                self.log(out, guid, seq, Step::Action, "SetPasswordHash", String::new);
                self.emit(out, domain, seq, op);
            }
            None => {
                self.log(out, guid, seq, Step::Action, "HashHeld", || {
                    "user not in the cloud".into()
                });
            }
        }
    }

    /// Object `id` was just (re)created in the cloud: send its memberships and, for a user, its latest
    /// known password hash (the tenant holds none for a new or re-created object).
    fn entered_cloud(&mut self, seq: u64, id: ObjId, out: &mut Output) {
        let Some(obj) = self.state.obj(id) else {
            return;
        };
        let (domain, guid, kind) = (obj.domain, obj.guid, obj.kind);
        let has_members = obj.group.as_ref().is_some_and(|g| !g.members.is_empty());
        let has_groups = self.state.groups_of(id).next().is_some();
        let has_hash = kind == ObjectKind::User && self.state.hashes.contains_key(&guid);
        if !(has_members || has_groups || has_hash) {
            return;
        }
        let anchor = self.state.anchor(id).text();
        let mut ops = Vec::new();
        if let Some(g) = &obj.group {
            for &m in &g.members {
                if self.state.obj(m).is_some_and(ObjState::in_cloud) {
                    ops.push((
                        domain,
                        Operation::AddMember {
                            group_anchor: anchor.clone(),
                            member_anchor: self.state.anchor(m).text(),
                        },
                    ));
                }
            }
        }
        for g in self.state.groups_of(id) {
            if let Some(go) = self.state.obj(g).filter(|go| go.in_cloud()) {
                ops.push((
                    go.domain,
                    Operation::AddMember {
                        group_anchor: self.state.anchor(g).text(),
                        member_anchor: anchor.clone(),
                    },
                ));
            }
        }
        for (d, op) in ops {
            self.emit(out, d, seq, op);
        }
        if has_hash && let Some((hseq, hash)) = self.state.hashes.get(&guid).cloned() {
            // The hash's own sequence as its version: re-sending it to a tenant that still holds it
            // (a staged delete that never happened) is skipped there, harmlessly.
            let op = Operation::SetPasswordHash {
                source_anchor: anchor,
                version: hseq,
                credential: hash,
            };
            self.log(out, guid, seq, Step::Action, "SetPasswordHash", String::new);
            self.emit(out, domain, seq, op);
        }
    }

    /// Object `id` left AD (deleted, or not seen in a resync): delete it in the cloud if it is there
    /// ([`Projector::delete_from_cloud`]), then forget every trace of it ([`Projector::forget`]).
    pub(super) fn deleted(&mut self, seq: u64, id: ObjId, out: &mut Output) {
        let Some(domain) = self.state.obj(id).map(|o| o.domain) else {
            return;
        };
        self.delete_from_cloud(seq, id, out);
        self.forget(seq, domain, id, out);
    }
}
