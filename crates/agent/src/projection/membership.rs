//! Group membership: member DNs resolved to objects through the per-domain DN index, references to
//! objects not seen yet kept pending and resolved when the object arrives, and the membership operations
//! that follow. Membership operations are only sent when both the group and the member are in the cloud;
//! when either enters the cloud later, its memberships are sent then (see `Projector::entered_cloud`).

use std::collections::BTreeSet;

use super::dn;
use super::ops::{ObjectKind, Operation};
use super::projector::{Output, Projector};
use super::state::slab::{GroupState, ObjId, ObjState};
use crate::event::Guid;

impl Projector {
    fn in_cloud(&self, id: ObjId) -> bool {
        self.state().obj(id).is_some_and(ObjState::in_cloud)
    }

    fn is_scoping(&self, group: ObjId) -> bool {
        let Some(obj) = self.state().obj(group) else {
            return false;
        };
        let scope = self.config().scope_of(self.state().domain_name(obj.domain));
        matches!(scope.mode, super::scope::Mode::Groups(_))
            && obj.has_dn()
            && scope.is_scoping_group(&self.state().canonical_dn(group))
    }

    /// Resolves pending references to object `id`'s (new) DN; returns the groups that gained it as a
    /// member.
    pub(super) fn resolve_waiting(&mut self, domain: u16, id: ObjId) -> Vec<ObjId> {
        if self.state().waiting.is_empty() {
            return Vec::new();
        }
        let canon: Box<str> = self.state().canonical_dn(id).into();
        let state = self.state_mut();
        let Some(groups) = state.waiting.remove(&(domain, canon.clone())) else {
            return Vec::new();
        };
        let mut newly = Vec::new();
        for g in groups {
            if let Some(gs) = state.obj_mut(g).and_then(|o| o.group.as_mut()) {
                gs.pending.remove(&canon);
                if gs.members.insert(id) {
                    state.member_of.insert((id, g));
                    newly.push(g);
                }
            }
        }
        newly
    }

    /// After `reconcile`: for an object that already was in the cloud, send the memberships that
    /// `resolve_waiting` just found (a newly created object got them from `entered_cloud`).
    pub(super) fn add_resolved(
        &mut self,
        seq: u64,
        id: ObjId,
        newly: &[ObjId],
        was_in_cloud: bool,
        out: &mut Output,
    ) {
        if !was_in_cloud || !self.in_cloud(id) {
            return;
        }
        for &g in newly {
            if self.in_cloud(g) {
                let domain = self.state().obj(g).map_or(0, |o| o.domain);
                let op = Operation::AddMember {
                    group_anchor: self.state().anchor(g).text(),
                    member_anchor: self.state().anchor(id).text(),
                };
                self.emit(out, domain, seq, op);
            }
        }
    }

    /// The id of group `guid`, created as a placeholder when unknown, with its membership record.
    pub(super) fn ensure_group(&mut self, domain: u16, guid: Guid) -> ObjId {
        let id = self.state_mut().ensure(guid, domain, ObjectKind::Group);
        if let Some(o) = self.state_mut().obj_mut(id)
            && o.group.is_none()
        {
            o.group = Some(Box::new(GroupState::default()));
        }
        id
    }

    /// Applies added and removed member DNs to `group`.
    pub(super) fn members_changed(
        &mut self,
        seq: u64,
        domain: u16,
        group: ObjId,
        added: &[String],
        removed: &[String],
        out: &mut Output,
    ) {
        let scoping = self.is_scoping(group);
        let Some(group_domain) = self.state().obj(group).map(|o| o.domain) else {
            return;
        };
        for member_dn in removed {
            let resolved = self.state().dn_lookup(domain, member_dn);
            let state = self.state_mut();
            let Some(gs) = state.obj_mut(group).and_then(|o| o.group.as_mut()) else {
                continue;
            };
            match resolved {
                Some(m) if gs.members.remove(&m) => {
                    state.member_of.remove(&(m, group));
                    if self.in_cloud(group) && self.in_cloud(m) {
                        let op = Operation::RemoveMember {
                            group_anchor: self.state().anchor(group).text(),
                            member_anchor: self.state().anchor(m).text(),
                        };
                        self.emit(out, group_domain, seq, op);
                    }
                    if scoping {
                        self.reconcile(seq, m, out);
                    }
                }
                _ => {
                    let canon: Box<str> = dn::canonical(member_dn).into();
                    gs.pending.remove(&canon);
                    if let Some(w) = state.waiting.get_mut(&(domain, canon.clone())) {
                        w.remove(&group);
                        if w.is_empty() {
                            state.waiting.remove(&(domain, canon));
                        }
                    }
                }
            }
        }
        // The group's anchor never changes; render it once for all added members.
        let group_anchor = self.state().anchor(group).text();
        let group_in_cloud = self.in_cloud(group);
        for member_dn in added {
            let resolved = self.state().dn_lookup(domain, member_dn);
            let state = self.state_mut();
            let Some(gs) = state.obj_mut(group).and_then(|o| o.group.as_mut()) else {
                continue;
            };
            match resolved {
                Some(m) => {
                    if !gs.members.insert(m) {
                        continue;
                    }
                    state.member_of.insert((m, group));
                    if self.in_cloud(m) {
                        if group_in_cloud {
                            let op = Operation::AddMember {
                                group_anchor: group_anchor.clone(),
                                member_anchor: self.state().anchor(m).text(),
                            };
                            self.emit(out, group_domain, seq, op);
                        }
                    } else if scoping {
                        self.reconcile(seq, m, out);
                    }
                }
                None => {
                    let canon: Box<str> = dn::canonical(member_dn).into();
                    if gs.pending.insert(canon.clone()) {
                        state
                            .waiting
                            .entry((domain, canon))
                            .or_default()
                            .insert(group);
                    }
                }
            }
        }
    }

    /// Makes `group`'s membership exactly `dns` (a full `member` value in an upsert).
    pub(super) fn replace_members(
        &mut self,
        seq: u64,
        domain: u16,
        group: ObjId,
        dns: &[String],
        out: &mut Output,
    ) {
        let Some(gs) = self.state().obj(group).and_then(|o| o.group.as_deref()) else {
            return;
        };
        let mut current: BTreeSet<String> = gs.pending.iter().map(|p| p.to_string()).collect();
        for &m in &gs.members {
            current.insert(self.state().canonical_dn(m));
        }
        let desired: BTreeSet<String> = dns.iter().map(|d| dn::canonical(d)).collect();
        let removed: Vec<String> = current.difference(&desired).cloned().collect();
        let added: Vec<String> = desired.difference(&current).cloned().collect();
        self.members_changed(seq, domain, group, &added, &removed, out);
    }

    /// A group's DN changed: in group-scoping mode its members' scope may have changed with it.
    pub(super) fn rescope_members(&mut self, seq: u64, group: ObjId, out: &mut Output) {
        let groups_mode = self.state().obj(group).is_some_and(|o| {
            matches!(
                self.config()
                    .scope_of(self.state().domain_name(o.domain))
                    .mode,
                super::scope::Mode::Groups(_)
            )
        });
        if !groups_mode {
            return;
        }
        let members: Vec<ObjId> = self
            .state()
            .obj(group)
            .and_then(|o| o.group.as_ref())
            .map(|g| g.members.iter().copied().collect())
            .unwrap_or_default();
        for m in members {
            self.reconcile(seq, m, out);
        }
    }

    /// Removes every trace of object `id` (deleted in AD or not seen in a resync).
    pub(super) fn forget(&mut self, seq: u64, domain: u16, id: ObjId, out: &mut Output) {
        let scoping = self.is_scoping(id);
        let state = self.state_mut();
        let Some(obj) = state.remove(id) else {
            return;
        };
        let guid = obj.guid;
        state.hashes.remove(&guid);
        state.quarantined.remove(&guid);
        state.on_create.remove(&guid);
        let groups: Vec<ObjId> = state.groups_of(id).collect();
        for g in groups {
            state.member_of.remove(&(id, g));
            if let Some(gs) = state.obj_mut(g).and_then(|o| o.group.as_mut()) {
                gs.members.remove(&id);
            }
        }
        let mut former_members = Vec::new();
        if let Some(gs) = obj.group {
            for p in gs.pending.iter() {
                let key = (domain, p.clone());
                if let Some(w) = state.waiting.get_mut(&key) {
                    w.remove(&id);
                    if w.is_empty() {
                        state.waiting.remove(&key);
                    }
                }
            }
            for m in gs.members {
                state.member_of.remove(&(m, id));
                former_members.push(m);
            }
        }
        if scoping {
            for m in former_members {
                self.reconcile(seq, m, out);
            }
        }
    }
}
