//! The projector: applies journal events, in sequence order, to the [`State`] and emits cloud operations
//! and provisioning-log entries. Pure and deterministic: no I/O, no clock, no randomness.
//!
//! Per event the steps are Import (update the object), Scope, Match (create / update / delete / nothing),
//! Action (the operation). Operations come out in an order the tenant can apply one by one: an object's
//! upsert precedes membership operations that name it, and an object's own operations keep event order.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::anchor::anchor_bytes;
use super::config::Compiled;
use super::dn;
use super::expr::{EvalContext, Value};
use super::model::{AttrBlob, kind_of, to_value};
use super::ops::{ObjectKind, OnPremisesIdentity, Operation, Upsert};
use super::provlog::{LogEntry, Step};
use super::sid::sid_to_string;
use super::state::{ObjState, State};
use crate::event::{Attribute, Event, Guid, SourceKind};

/// One operation for the outbox, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectedOp {
    /// The AD domain (selects the tenant configuration).
    pub domain: String,
    /// The journal sequence that produced it.
    pub origin_seq: u64,
    /// The operation.
    pub op: Operation,
}

/// What applying events produced.
#[derive(Debug, Default)]
pub struct Output {
    /// Operations, in sending order.
    pub ops: Vec<ProjectedOp>,
    /// Provisioning-log entries (only when [`Projector::log_enabled`]).
    pub log: Vec<LogEntry>,
}

/// Applies events to the state.
#[derive(Debug, Clone)]
pub struct Projector {
    cfg: Compiled,
    state: State,
    /// Whether to produce provisioning-log entries.
    pub log_enabled: bool,
    /// Ignore the scoping filter (on-demand provisioning, as the product does).
    pub ignore_scope: bool,
}

struct Ctx<'a> {
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
        let values = self.blob.get(id);
        to_value(self.cfg.table.name(id).unwrap_or_default(), &values)
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
    /// A projector over `state` (empty for a first run, or a restored snapshot).
    pub fn new(cfg: Compiled, state: State) -> Projector {
        Projector {
            cfg,
            state,
            log_enabled: true,
            ignore_scope: false,
        }
    }

    /// The state.
    pub fn state(&self) -> &State {
        &self.state
    }

    pub(super) fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// Gives the state back (to snapshot it).
    pub fn into_state(self) -> State {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &Compiled {
        &self.cfg
    }

    /// Applies one event with journal sequence `seq`; events must come in increasing sequence order
    /// (an event at or below the last applied sequence is ignored, so replays are harmless).
    pub fn apply(&mut self, seq: u64, event: &Event, out: &mut Output) {
        if seq <= self.state.last_seq {
            return;
        }
        self.state.last_seq = seq;
        let domain = self.state.domain_id(event.domain());
        match event {
            Event::ObjectUpserted {
                guid,
                dn,
                class,
                attributes,
                full_image,
                ..
            } => {
                self.upserted(seq, domain, *guid, dn, class, attributes, *full_image, out);
            }
            Event::MembersChanged {
                guid,
                attribute,
                added,
                removed,
                ..
            } => {
                if attribute.eq_ignore_ascii_case("member") {
                    self.log(out, *guid, seq, Step::Import, "MembersChanged", || {
                        format!("+{} -{}", added.len(), removed.len())
                    });
                    self.members_changed(seq, domain, *guid, added, removed, out);
                }
            }
            Event::ObjectDeleted { guid, .. } => {
                self.log(out, *guid, seq, Step::Import, "Deleted", String::new);
                self.deleted(seq, *guid, out);
            }
            Event::ObjectMoved { guid, new_dn, .. } => {
                if self.state.objects.contains_key(guid) {
                    self.log(out, *guid, seq, Step::Import, "Moved", || new_dn.clone());
                    let canonical = self.set_dn(domain, *guid, new_dn);
                    let newly = self.resolve_waiting(domain, *guid, &canonical);
                    let was = self.state.objects.get(guid).is_some_and(|o| o.in_cloud);
                    self.reconcile(seq, *guid, out);
                    self.add_resolved(seq, *guid, &newly, was, out);
                    self.rescope_members(seq, *guid, out);
                }
            }
            Event::PasswordChanged { .. } => {}
            Event::PasswordHashChanged {
                guid, org_id_hash, ..
            } => self.password_hash(seq, *guid, org_id_hash, out),
            Event::ResyncStarted { source, .. } => {
                if matches!(source, SourceKind::LdapDirSync | SourceKind::LdapUsnPoll) {
                    self.state.resyncs.insert(domain, seq);
                }
            }
            Event::ResyncCompleted { source, .. } => {
                if matches!(source, SourceKind::LdapDirSync | SourceKind::LdapUsnPoll)
                    && let Some(start) = self.state.resyncs.remove(&domain)
                {
                    let gone: Vec<Guid> = self
                        .state
                        .objects
                        .iter()
                        .filter(|(_, o)| o.domain == domain && o.seen_seq < start)
                        .map(|(g, _)| *g)
                        .collect();
                    for g in gone {
                        self.log(out, g, seq, Step::Import, "NotSeenInResync", String::new);
                        self.deleted(seq, g, out);
                    }
                }
            }
        }
    }

    /// On-demand provisioning of one object: Import, Scope (filter ignored; exclusions still apply), Match
    /// and Action on a copy of the state, so the real state is untouched. Versions use the current sequence.
    pub fn provision_preview(&self, guid: Guid) -> (Vec<LogEntry>, Vec<ProjectedOp>) {
        let mut copy = self.clone();
        copy.ignore_scope = true;
        copy.log_enabled = true;
        let seq = copy.state.last_seq;
        if let Some(o) = copy.state.objects.get_mut(&guid) {
            // Forget the last fingerprint so an unchanged object still shows its upsert.
            o.last_hash = 0;
        }
        let mut out = Output::default();
        let dn = copy
            .state
            .objects
            .get(&guid)
            .map(|o| o.dn.to_string())
            .unwrap_or_default();
        copy.log(&mut out, guid, seq, Step::Import, "OnDemand", || dn);
        copy.reconcile(seq, guid, &mut out);
        (out.log, out.ops)
    }

    fn log(
        &self,
        out: &mut Output,
        guid: Guid,
        seq: u64,
        step: Step,
        outcome: &str,
        detail: impl FnOnce() -> String,
    ) {
        if self.log_enabled {
            out.log.push(LogEntry {
                guid,
                seq,
                step,
                outcome: outcome.to_string(),
                detail: detail(),
            });
        }
    }

    pub(super) fn emit(&self, out: &mut Output, domain: u16, seq: u64, op: Operation) {
        out.ops.push(ProjectedOp {
            domain: self.state.domain_name(domain).to_string(),
            origin_seq: seq,
            op,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn upserted(
        &mut self,
        seq: u64,
        domain: u16,
        guid: Guid,
        new_dn: &str,
        class: &crate::event::ObjectClass,
        attributes: &[Attribute],
        full_image: bool,
        out: &mut Output,
    ) {
        let Some(kind) = kind_of(class) else {
            self.log(out, guid, seq, Step::Import, "Skipped", || {
                format!("class {} is not synced", class.as_str())
            });
            return;
        };
        self.log(
            out,
            guid,
            seq,
            Step::Import,
            if full_image { "FullImage" } else { "Delta" },
            || new_dn.to_string(),
        );
        let obj = self
            .state
            .objects
            .entry(guid)
            .or_insert_with(|| ObjState::placeholder(domain, kind, guid));
        obj.kind = kind;
        obj.domain = domain;
        if obj.seen_seq == 0 {
            // First read: the anchor is fixed now, for the object's life.
            let cg = attributes
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case("ms-DS-ConsistencyGuid"))
                .and_then(|a| a.values.first());
            obj.anchor = anchor_bytes(guid, cg.map(Vec::as_slice));
        }
        obj.seen_seq = seq;
        let table = &self.cfg.table;
        obj.attrs.apply(
            table,
            attributes
                .iter()
                .filter(|a| !a.name.eq_ignore_ascii_case("member"))
                .map(|a| (a.name.as_str(), a.values.as_slice())),
            full_image,
        );
        let was = obj.in_cloud;
        let dn_changed = !new_dn.is_empty() && *obj.dn != *new_dn;
        let canonical = dn_changed.then(|| self.set_dn(domain, guid, new_dn));
        if kind == ObjectKind::Group {
            self.state.objects.entry(guid).and_modify(|o| {
                if o.group.is_none() {
                    o.group = Some(Box::default());
                }
            });
        }
        let member_attr = attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case("member"));
        let newly = match &canonical {
            Some(c) => self.resolve_waiting(domain, guid, c),
            None => Vec::new(),
        };
        self.reconcile(seq, guid, out);
        self.add_resolved(seq, guid, &newly, was, out);
        if dn_changed && kind == ObjectKind::Group {
            self.rescope_members(seq, guid, out);
        }
        if kind == ObjectKind::Group
            && let Some(member) = member_attr
        {
            let dns: Vec<String> = member
                .values
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect();
            self.replace_members(seq, domain, guid, &dns, out);
        }
    }

    /// Moves `guid` to `new_dn` in the DN index; returns the new canonical DN.
    fn set_dn(&mut self, domain: u16, guid: Guid, new_dn: &str) -> Box<str> {
        let canonical: Box<str> = dn::canonical(new_dn).into();
        let Some(obj) = self.state.objects.get_mut(&guid) else {
            return canonical;
        };
        let old = (!obj.dn.is_empty()).then(|| dn::canonical(&obj.dn));
        obj.dn = new_dn.into();
        if let Some(old) = old {
            self.state.dn_remove(domain, &old, guid);
        }
        self.state.dn_insert(domain, canonical.clone(), guid);
        canonical
    }

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

    fn ctx<'a>(&'a self, guid: Guid, obj: &'a ObjState, seq: u64) -> Ctx<'a> {
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
            .evaluate(obj.kind, ctx, creating, obj.on_create.as_deref())
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
                        if let Some(o) = self.state.objects.get_mut(&guid) {
                            o.quarantine = Some(reason.into());
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
                    .filter(|m| m.apply == super::mapping::ApplyWhen::OnCreate)
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
                    o.quarantine = None;
                    if creating && !on_create.is_empty() {
                        o.on_create = Some(Box::new(on_create));
                    }
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
            o.on_create = None;
        }
        self.state.claimed.retain(|_, g| *g != guid);
    }

    fn password_hash(&mut self, seq: u64, guid: Guid, hash: &str, out: &mut Output) {
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
    fn deleted(&mut self, seq: u64, guid: Guid, out: &mut Output) {
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
