//! The projector: applies journal events, in sequence order, to the [`State`] and emits cloud operations
//! and provisioning-log entries. Pure and deterministic: no I/O, no clock, no randomness.
//!
//! Per event the steps are Import (update the object), Scope, Match (create / update / delete / nothing),
//! Action (the operation). Operations come out in an order the tenant can apply one by one: an object's
//! upsert precedes membership operations that name it, and an object's own operations keep event order.

use super::anchor::anchor_bytes;
use super::config::Compiled;
use super::ops::{ObjectKind, Operation};
use super::provlog::{LogEntry, Step};
use super::state::State;
use super::state::schema::kind_of;
use super::state::slab::ObjId;
use crate::event::{Attribute, Event, Guid, SourceKind};

/// One operation for the outbox, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectedOp {
    /// The AD domain (selects the tenant configuration); shared, as every operation of a run names one
    /// of a few domains.
    pub domain: std::sync::Arc<str>,
    /// The journal sequence that produced it.
    pub origin_seq: u64,
    /// The operation.
    pub op: Operation,
    /// Why it was sent, beyond "the object changed in AD" (a configuration change being applied);
    /// it travels with the operation to the tenant's provisioning log.
    pub reason: Option<std::sync::Arc<str>>,
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
    pub(super) cfg: Compiled,
    pub(super) state: State,
    /// Whether to produce provisioning-log entries.
    pub log_enabled: bool,
    /// Ignore the scoping filter (on-demand provisioning, as the product does).
    pub ignore_scope: bool,
    /// The state's domain names, shared by the operations that name them.
    domain_names: Vec<std::sync::Arc<str>>,
    /// Domains (lower-case DNS name) whose settings changed while running, with the provisioning
    /// log's detail ("scope, revision 7"): every object the change creates, updates or deletes
    /// gets a "ConfigurationChanged" entry until the domain's re-read completes.
    config_reasons: std::collections::BTreeMap<String, String>,
}

impl Projector {
    /// A projector over `state` (empty for a first run, or a restored snapshot).
    pub fn new(cfg: Compiled, state: State) -> Projector {
        Projector {
            cfg,
            state,
            log_enabled: true,
            ignore_scope: false,
            domain_names: Vec::new(),
            config_reasons: std::collections::BTreeMap::new(),
        }
    }

    /// Replaces the configuration from the next event on (the state is kept: a changed attribute
    /// table must match it, see [`super::state::State::remap_attributes`]). `reasons` names, per
    /// domain (DNS name), why its objects change; the caller then has each such domain re-read so
    /// that every object is evaluated again under the new settings.
    pub fn reconfigure(
        &mut self,
        cfg: Compiled,
        reasons: impl IntoIterator<Item = (String, String)>,
    ) {
        if cfg.table != self.cfg.table {
            let old = self.cfg.table.names().to_vec();
            self.state.remap_attributes(&old, &cfg.table);
        }
        self.cfg = cfg;
        self.add_config_reasons(reasons);
    }

    /// Notes why the objects of these domains will change (their re-read follows).
    pub fn add_config_reasons(&mut self, reasons: impl IntoIterator<Item = (String, String)>) {
        for (domain, why) in reasons {
            self.config_reasons.insert(domain.to_ascii_lowercase(), why);
        }
    }

    /// The domains whose configuration change is still being applied, with why.
    pub fn config_reasons(&self) -> &std::collections::BTreeMap<String, String> {
        &self.config_reasons
    }

    /// A "ConfigurationChanged" provisioning-log entry for an object of `domain` that the current
    /// configuration change creates, updates or deletes.
    pub(super) fn log_config_change(&self, out: &mut Output, guid: Guid, seq: u64, domain: u16) {
        if self.config_reasons.is_empty() || !self.log_enabled {
            return;
        }
        let name = self.state.domain_name(domain).to_ascii_lowercase();
        if let Some(why) = self.config_reasons.get(&name) {
            let why = why.clone();
            self.log(out, guid, seq, Step::Match, "ConfigurationChanged", || why);
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
                    let group = self.ensure_group(domain, *guid);
                    self.members_changed(seq, domain, group, added, removed, out);
                }
            }
            Event::ObjectDeleted { guid, .. } => {
                self.log(out, *guid, seq, Step::Import, "Deleted", String::new);
                if let Some(id) = self.state.id(*guid) {
                    self.deleted(seq, id, out);
                }
            }
            Event::ObjectMoved { guid, new_dn, .. } => {
                if let Some(id) = self.state.id(*guid) {
                    self.log(out, *guid, seq, Step::Import, "Moved", || new_dn.clone());
                    self.state.set_dn(id, new_dn);
                    let newly = self.resolve_waiting(domain, id);
                    let was = self.state.obj(id).is_some_and(|o| o.in_cloud());
                    self.reconcile(seq, id, out);
                    self.add_resolved(seq, id, &newly, was, out);
                    self.rescope_members(seq, id, out);
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
                if matches!(source, SourceKind::LdapDirSync | SourceKind::LdapUsnPoll) {
                    // The re-read a configuration change asked for is done.
                    let name = self.state.domain_name(domain).to_ascii_lowercase();
                    self.config_reasons.remove(&name);
                }
                if matches!(source, SourceKind::LdapDirSync | SourceKind::LdapUsnPoll)
                    && let Some(start) = self.state.resyncs.remove(&domain)
                {
                    let gone: Vec<(ObjId, Guid)> = self
                        .state
                        .iter()
                        .filter(|(_, o)| o.domain == domain && o.seen_seq < start)
                        .map(|(i, o)| (i, o.guid))
                        .collect();
                    for (id, g) in gone {
                        self.log(out, g, seq, Step::Import, "NotSeenInResync", String::new);
                        self.deleted(seq, id, out);
                    }
                }
            }
            // An audit record of password writeback: nothing to project.
            Event::WritebackAnswered { .. } => {}
        }
    }

    /// On-demand provisioning of one object: Import, Scope (filter ignored; exclusions still apply), Match
    /// and Action on a copy of the state, so the real state is untouched. Versions use the current sequence.
    pub fn provision_preview(&self, guid: Guid) -> (Vec<LogEntry>, Vec<ProjectedOp>) {
        let mut copy = self.clone();
        copy.ignore_scope = true;
        copy.log_enabled = true;
        let seq = copy.state.last_seq;
        let mut out = Output::default();
        let Some(id) = copy.state.id(guid) else {
            return (out.log, out.ops);
        };
        if let Some(o) = copy.state.obj_mut(id) {
            // Forget the last fingerprint so an unchanged object still shows its upsert.
            o.last_hash = 0;
        }
        let dn = copy.state.dn(id);
        copy.log(&mut out, guid, seq, Step::Import, "OnDemand", || dn);
        copy.reconcile(seq, id, &mut out);
        (out.log, out.ops)
    }

    pub(super) fn log(
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

    pub(super) fn emit(&mut self, out: &mut Output, domain: u16, seq: u64, op: Operation) {
        if self.domain_names.len() != self.state.domains.len() {
            self.domain_names = self
                .state
                .domains
                .iter()
                .map(|d| d.as_str().into())
                .collect();
        }
        let domain = match self.domain_names.get(usize::from(domain)) {
            Some(d) => d.clone(),
            None => "".into(),
        };
        // While a configuration change of this domain is being applied, its operations say so.
        let reason = if self.config_reasons.is_empty() {
            None
        } else {
            self.config_reasons
                .get(&domain.to_ascii_lowercase())
                .map(|why| std::sync::Arc::from(format!("ConfigurationChanged: {why}")))
        };
        out.ops.push(ProjectedOp {
            domain,
            origin_seq: seq,
            op,
            reason,
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
        let id = self.state.ensure(guid, domain, kind);
        let (first_read, kind_changed) = {
            let Some(obj) = self.state.obj_mut(id) else {
                return;
            };
            let kind_changed = obj.kind != kind || obj.domain != domain;
            obj.kind = kind;
            obj.domain = domain;
            let first = obj.seen_seq == 0;
            obj.seen_seq = seq;
            if kind == ObjectKind::Group && obj.group.is_none() {
                obj.group = Some(Box::default());
            }
            (first, kind_changed)
        };
        if first_read {
            // First read: the anchor is fixed now, for the object's life.
            let cg = attributes
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case("ms-DS-ConsistencyGuid"))
                .and_then(|a| a.values.first());
            let anchor = anchor_bytes(guid, cg.map(Vec::as_slice));
            if anchor.0 != guid.0 {
                self.state.anchors.insert(guid, anchor);
            }
        }
        let was = self.state.obj(id).is_some_and(|o| o.in_cloud());
        let dn_changed = !new_dn.is_empty() && !self.state.dn_is(id, new_dn);
        let table = &self.cfg.table;
        let mut changed = false;
        self.state
            .change(id, dn_changed.then_some(new_dn), |data, shared, rdn| {
                changed = data.apply_with_rdn(
                    table,
                    shared,
                    attributes
                        .iter()
                        .filter(|a| !a.name.eq_ignore_ascii_case("member"))
                        .map(|a| (a.name.as_str(), a.values.as_slice())),
                    full_image,
                    rdn,
                );
            });
        // Nothing projection keeps changed (a delta of attributes no mapping, filter or identity field
        // reads — lastLogonTimestamp, badPwdCount, …): the upsert would be the one already sent, so it is
        // not evaluated again.
        // While a configuration change is being applied to the domain, every object is evaluated again.
        let reconfiguring = !self.config_reasons.is_empty()
            && self
                .config_reasons
                .contains_key(&self.state.domain_name(domain).to_ascii_lowercase());
        let unchanged = !changed
            && !dn_changed
            && !first_read
            && !kind_changed
            && was
            && !reconfiguring
            && !self.state.quarantined.contains_key(&guid);
        if unchanged {
            self.log(out, guid, seq, Step::Match, "NoChange", || {
                "no kept attribute changed".into()
            });
        } else {
            let newly = if dn_changed {
                self.resolve_waiting(domain, id)
            } else {
                Vec::new()
            };
            self.reconcile(seq, id, out);
            self.add_resolved(seq, id, &newly, was, out);
            if dn_changed && kind == ObjectKind::Group {
                self.rescope_members(seq, id, out);
            }
        }
        if kind == ObjectKind::Group
            && let Some(member) = attributes
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case("member"))
        {
            let dns: Vec<String> = member
                .values
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect();
            self.replace_members(seq, domain, id, &dns, out);
        }
    }
}
