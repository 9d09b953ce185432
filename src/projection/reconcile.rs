//! Reconciling one object with the cloud: scope, mapping evaluation, create / update / delete, and what
//! follows a create (memberships, a held password hash). Also the evaluation context and the upsert
//! fingerprint that suppresses identical upserts.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::config::Compiled;
use super::dn;
use super::expr::{EvalContext, Value};
use super::mapping::ApplyWhen;
use super::model::AttrBlob;
use super::ops::{ObjectKind, OnPremisesIdentity, Operation, Upsert};
use super::projector::{Output, Projector};
use super::provlog::Step;
use super::sid::sid_to_string;
use super::state::ObjState;
use crate::event::Guid;

pub(super) struct Ctx<'a> {
    cfg: &'a Compiled,
    blob: &'a AttrBlob,
    dn: &'a str,
    guid: Guid,
    seq: u64,
    claimed: &'a BTreeMap<String, Guid>,
}

impl EvalContext for Ctx<'_> {
    fn attribute(&self, name: &str) -> Value {
        if name.eq_ignore_ascii_case("dn") || name.eq_ignore_ascii_case("distinguishedName") {
            return Value::Str(self.dn.to_string());
        }
        if name.eq_ignore_ascii_case("objectGUID") {
            return Value::Bin(self.guid.0.to_vec());
        }
        let Some(id) = self.cfg.table.id(name) else {
            return Value::Null;
        };
        self.blob
            .value(id, self.cfg.table.name(id).unwrap_or_default())
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

/// FNV-1a, fed piece by piece: cheap, stable across runs and platforms.
struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        // A separator so that ("ab", "c") and ("a", "bc") differ.
        self.0 = (self.0 ^ 0xff).wrapping_mul(0x0100_0000_01b3);
    }

    fn json(&mut self, v: &serde_json::Value) {
        use serde_json::Value as J;
        match v {
            J::Null => self.bytes(b"n"),
            J::Bool(b) => self.bytes(if *b { b"t" } else { b"f" }),
            J::Number(n) => self.bytes(n.to_string().as_bytes()),
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
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    h.bytes(u.kind.as_str().as_bytes());
    h.opt(u.on_premises.sam_account_name.as_deref());
    h.opt(u.on_premises.distinguished_name.as_deref());
    h.opt(u.on_premises.security_identifier.as_deref());
    h.opt(u.on_premises.domain_name.as_deref());
    for (k, v) in &u.attributes {
        h.bytes(k.as_bytes());
        h.json(v);
    }
    h.0
}

impl Projector {
    /// Whether the object is in scope, and why not.
    fn in_scope(&self, guid: Guid, obj: &ObjState, ctx: &Ctx<'_>) -> Result<(), &'static str> {
        if obj.seen_seq == 0 {
            return Err("object not read yet");
        }
        if ctx
            .attribute("isCriticalSystemObject")
            .to_bool("scope")
            .unwrap_or(false)
        {
            return Err("critical system object");
        }
        if self.ignore_scope {
            return Ok(());
        }
        let in_group = || {
            self.state.groups_of(guid).any(|g| {
                self.state
                    .objects
                    .get(&g)
                    .is_some_and(|o| self.cfg.scope.is_scoping_group(&dn::canonical(&o.dn)))
            })
        };
        if !self.cfg.scope.mode_selects(&obj.dn, &in_group) {
            return Err("outside the selected OUs or groups");
        }
        if !self.cfg.scope.filters_match(&|name| ctx.attribute(name)) {
            return Err("attribute filter");
        }
        Ok(())
    }

    pub(super) fn ctx<'a>(&'a self, guid: Guid, obj: &'a ObjState, seq: u64) -> Ctx<'a> {
        Ctx {
            cfg: &self.cfg,
            blob: &obj.attrs,
            dn: &obj.dn,
            guid,
            seq,
            claimed: &self.state.claimed,
        }
    }

    fn build_upsert(&self, seq: u64, obj: &ObjState, ctx: &Ctx<'_>) -> Result<Upsert, String> {
        let creating = !obj.in_cloud;
        let attributes = self
            .cfg
            .mappings
            .evaluate(obj.kind, ctx, creating, self.state.on_create.get(&ctx.guid))
            .map_err(|(target, e)| format!("{target}: {e}"))?;
        let text = |name: &str| ctx.attribute(name).to_opt_str("onPremises").ok().flatten();
        let sid = match ctx.attribute("objectSid") {
            Value::Bin(b) => sid_to_string(&b),
            _ => None,
        };
        Ok(Upsert {
            kind: obj.kind,
            source_anchor: obj.anchor.to_string(),
            version: seq,
            on_premises: OnPremisesIdentity {
                sam_account_name: text("sAMAccountName"),
                distinguished_name: Some(obj.dn.to_string()),
                security_identifier: sid,
                domain_name: Some(self.state.domain_name(obj.domain).to_string()),
            },
            attributes,
        })
    }

    /// Brings the cloud in line with the object: create, update, delete or nothing.
    pub(super) fn reconcile(&mut self, seq: u64, guid: Guid, out: &mut Output) {
        let Some(obj) = self.state.objects.get(&guid) else {
            return;
        };
        let domain = obj.domain;
        let decision = {
            let ctx = self.ctx(guid, obj, seq);
            self.in_scope(guid, obj, &ctx)
                .map(|()| self.build_upsert(seq, obj, &ctx))
        };
        match decision {
            Err(reason) => {
                self.log(out, guid, seq, Step::Scope, "Skipped", || {
                    reason.to_string()
                });
                if obj.in_cloud {
                    let op = Operation::Delete {
                        kind: obj.kind,
                        source_anchor: obj.anchor.to_string(),
                        version: seq,
                    };
                    self.log(out, guid, seq, Step::Match, "Delete", String::new);
                    self.log(out, guid, seq, Step::Action, "Delete", || {
                        obj.anchor.to_string()
                    });
                    self.emit(out, domain, seq, op);
                    self.leave_cloud(guid);
                }
            }
            Ok(built) => {
                self.log(out, guid, seq, Step::Scope, "InScope", String::new);
                let creating = !obj.in_cloud;
                let upsert = match built {
                    Ok(u) => u,
                    Err(reason) => {
                        self.log(out, guid, seq, Step::Action, "Error", || reason.clone());
                        tracing::warn!(object = %guid, seq, reason = %reason, "Mapping failed; object held back.");
                        if self.state.objects.contains_key(&guid) {
                            self.state.quarantined.insert(guid, reason.into());
                        }
                        return;
                    }
                };
                let print = upsert_fingerprint(&upsert);
                if !creating && print == obj.last_hash {
                    self.log(out, guid, seq, Step::Match, "NoChange", String::new);
                    return;
                }
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
                let unique: Vec<String> = self
                    .cfg
                    .mappings
                    .of(upsert.kind)
                    .iter()
                    .filter(|m| m.unique)
                    .filter_map(|m| {
                        upsert
                            .attributes
                            .get(&m.target)
                            .and_then(|v| v.as_str())
                            .map(str::to_lowercase)
                    })
                    .collect();
                let on_create: BTreeMap<String, serde_json::Value> = self
                    .cfg
                    .mappings
                    .of(upsert.kind)
                    .iter()
                    .filter(|m| m.apply == ApplyWhen::OnCreate)
                    .filter_map(|m| {
                        upsert
                            .attributes
                            .get(&m.target)
                            .map(|v| (m.target.clone(), v.clone()))
                    })
                    .collect();
                self.emit(out, domain, seq, Operation::Upsert(upsert));
                for v in unique {
                    self.state.claimed.insert(v, guid);
                }
                if let Some(o) = self.state.objects.get_mut(&guid) {
                    o.in_cloud = true;
                    o.last_hash = print;
                }
                self.state.quarantined.remove(&guid);
                if creating && !on_create.is_empty() {
                    self.state.on_create.insert(guid, on_create);
                }
                if creating {
                    self.entered_cloud(seq, guid, out);
                }
            }
        }
    }

    fn leave_cloud(&mut self, guid: Guid) {
        if let Some(o) = self.state.objects.get_mut(&guid) {
            o.in_cloud = false;
            o.last_hash = 0;
        }
        self.state.on_create.remove(&guid);
        self.state.claimed.retain(|_, g| *g != guid);
    }

    pub(super) fn password_hash(&mut self, seq: u64, guid: Guid, hash: &str, out: &mut Output) {
        match self.state.objects.get(&guid) {
            Some(o) if o.in_cloud && o.kind == ObjectKind::User => {
                let op = Operation::SetPasswordHash {
                    source_anchor: o.anchor.to_string(),
                    version: seq,
                    credential: hash.to_string(),
                };
                self.log(out, guid, seq, Step::Action, "SetPasswordHash", String::new);
                self.emit(out, o.domain, seq, op);
            }
            _ => {
                self.log(out, guid, seq, Step::Action, "HashHeld", || {
                    "user not in the cloud yet".into()
                });
                self.state
                    .pending_hashes
                    .insert(guid, (seq, hash.to_string()));
            }
        }
    }

    /// Object `guid` was just created in the cloud: send the memberships and a held password hash.
    fn entered_cloud(&mut self, seq: u64, guid: Guid, out: &mut Output) {
        let Some(obj) = self.state.objects.get(&guid) else {
            return;
        };
        let (domain, anchor, kind) = (obj.domain, obj.anchor.to_string(), obj.kind);
        if let Some(g) = &obj.group {
            for m in &g.members {
                if let Some(mo) = self.state.objects.get(m).filter(|mo| mo.in_cloud) {
                    let op = Operation::AddMember {
                        group_anchor: anchor.clone(),
                        member_anchor: mo.anchor.to_string(),
                    };
                    self.emit(out, domain, seq, op);
                }
            }
        }
        for g in self.state.groups_of(guid) {
            if let Some(go) = self.state.objects.get(&g).filter(|go| go.in_cloud) {
                let op = Operation::AddMember {
                    group_anchor: go.anchor.to_string(),
                    member_anchor: anchor.clone(),
                };
                self.emit(out, go.domain, seq, op);
            }
        }
        if kind == ObjectKind::User
            && let Some((hseq, hash)) = self.state.pending_hashes.remove(&guid)
        {
            let op = Operation::SetPasswordHash {
                source_anchor: anchor,
                version: hseq,
                credential: hash,
            };
            self.emit(out, domain, seq, op);
        }
    }

    /// The object left AD: delete it in the cloud if it is there, and forget it.
    pub(super) fn deleted(&mut self, seq: u64, guid: Guid, out: &mut Output) {
        let Some(obj) = self.state.objects.get(&guid) else {
            return;
        };
        let domain = obj.domain;
        if obj.in_cloud {
            let op = Operation::Delete {
                kind: obj.kind,
                source_anchor: obj.anchor.to_string(),
                version: seq,
            };
            self.log(out, guid, seq, Step::Match, "Delete", String::new);
            self.log(out, guid, seq, Step::Action, "Delete", || {
                obj.anchor.to_string()
            });
            self.emit(out, domain, seq, op);
        }
        self.leave_cloud(guid);
        self.forget(seq, domain, guid, out);
    }
}
