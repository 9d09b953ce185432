//! Group membership: member DNs resolved to objects through the per-domain DN index, references to
//! objects not seen yet kept pending and resolved when the object arrives, and the membership operations
//! that follow. Membership operations are only sent when both the group and the member are in the cloud;
//! when either enters the cloud later, its memberships are sent then (see `Projector::entered_cloud`).

use std::collections::BTreeSet;

use super::dn;
use super::ops::{ObjectKind, Operation};
use super::projector::{Output, Projector};
use super::state::{GroupState, ObjState};
use crate::event::Guid;

impl Projector {
    fn in_cloud(&self, guid: Guid) -> bool {
        self.state().objects.get(&guid).is_some_and(|o| o.in_cloud)
    }

    fn anchor(&self, guid: Guid) -> String {
        self.state()
            .objects
            .get(&guid)
            .map(|o| o.anchor.to_string())
            .unwrap_or_default()
    }

    fn is_scoping(&self, group: Guid) -> bool {
        self.state().objects.get(&group).is_some_and(|o| {
            !o.dn.is_empty() && self.config().scope.is_scoping_group(&dn::canonical(&o.dn))
        })
    }

    /// Resolves pending references to `guid`'s DN; returns the groups that gained it as a member.
    /// `canonical` is the object's new canonical DN.
    pub(super) fn resolve_waiting(
        &mut self,
        domain: u16,
        guid: Guid,
        canonical: &str,
    ) -> Vec<Guid> {
        let canon: Box<str> = canonical.into();
        let state = self.state_mut();
        let Some(groups) = state.waiting.remove(&(domain, canon.clone())) else {
            return Vec::new();
        };
        let mut newly = Vec::new();
        for g in groups {
            if let Some(gs) = state.objects.get_mut(&g).and_then(|o| o.group.as_mut()) {
                gs.pending.remove(&canon);
                if gs.members.insert(guid) {
                    state.member_of.insert((guid, g));
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
        guid: Guid,
        newly: &[Guid],
        was_in_cloud: bool,
        out: &mut Output,
    ) {
        if !was_in_cloud || !self.in_cloud(guid) {
            return;
        }
        for g in newly {
            if self.in_cloud(*g) {
                let domain = self.state().objects.get(g).map_or(0, |o| o.domain);
                let op = Operation::AddMember {
                    group_anchor: self.anchor(*g),
                    member_anchor: self.anchor(guid),
                };
                self.emit(out, domain, seq, op);
            }
        }
    }

    fn ensure_group(&mut self, domain: u16, group: Guid) {
        let obj = self
            .state_mut()
            .objects
            .entry(group)
            .or_insert_with(|| ObjState::placeholder(domain, ObjectKind::Group, group));
        if obj.group.is_none() {
            obj.group = Some(Box::new(GroupState::default()));
        }
    }

    /// Applies added and removed member DNs to `group`.
    pub(super) fn members_changed(
        &mut self,
        seq: u64,
        domain: u16,
        group: Guid,
        added: &[String],
        removed: &[String],
        out: &mut Output,
    ) {
        self.ensure_group(domain, group);
        let scoping = self.is_scoping(group);
        let group_domain = self
            .state()
            .objects
            .get(&group)
            .map_or(domain, |o| o.domain);
        for member_dn in removed {
            let canon: Box<str> = dn::canonical(member_dn).into();
            let resolved = self.state().dn_lookup(domain, &canon);
            let state = self.state_mut();
            let Some(gs) = state.objects.get_mut(&group).and_then(|o| o.group.as_mut()) else {
                continue;
            };
            match resolved {
                Some(m) if gs.members.remove(&m) => {
                    state.member_of.remove(&(m, group));
                    if self.in_cloud(group) && self.in_cloud(m) {
                        let op = Operation::RemoveMember {
                            group_anchor: self.anchor(group),
                            member_anchor: self.anchor(m),
                        };
                        self.emit(out, group_domain, seq, op);
                    }
                    if scoping {
                        self.reconcile(seq, m, out);
                    }
                }
                _ => {
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
        let group_anchor = self.anchor(group);
        for member_dn in added {
            let canon = dn::canonical(member_dn);
            let resolved = self.state().dn_lookup(domain, &canon);
            let state = self.state_mut();
            let Some(gs) = state.objects.get_mut(&group).and_then(|o| o.group.as_mut()) else {
                continue;
            };
            match resolved {
                Some(m) => {
                    if !gs.members.insert(m) {
                        continue;
                    }
                    state.member_of.insert((m, group));
                    let member = state
                        .objects
                        .get(&m)
                        .filter(|o| o.in_cloud)
                        .map(|o| o.anchor);
                    if let Some(member_anchor) = member {
                        if self.in_cloud(group) {
                            let op = Operation::AddMember {
                                group_anchor: group_anchor.clone(),
                                member_anchor: member_anchor.to_string(),
                            };
                            self.emit(out, group_domain, seq, op);
                        }
                    } else if scoping {
                        self.reconcile(seq, m, out);
                    }
                }
                None => {
                    let canon: Box<str> = canon.into();
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
        group: Guid,
        dns: &[String],
        out: &mut Output,
    ) {
        self.ensure_group(domain, group);
        let Some(gs) = self
            .state()
            .objects
            .get(&group)
            .and_then(|o| o.group.as_deref())
        else {
            return;
        };
        let mut current: BTreeSet<String> = gs.pending.iter().map(|p| p.to_string()).collect();
        for m in &gs.members {
            if let Some(o) = self.state().objects.get(m) {
                current.insert(dn::canonical(&o.dn));
            }
        }
        let desired: BTreeSet<String> = dns.iter().map(|d| dn::canonical(d)).collect();
        let removed: Vec<String> = current.difference(&desired).cloned().collect();
        let added: Vec<String> = desired.difference(&current).cloned().collect();
        self.members_changed(seq, domain, group, &added, &removed, out);
    }

    /// A group's DN changed: in group-scoping mode its members' scope may have changed with it.
    pub(super) fn rescope_members(&mut self, seq: u64, group: Guid, out: &mut Output) {
        if !matches!(self.config().scope.mode, super::scope::Mode::Groups(_)) {
            return;
        }
        let members: Vec<Guid> = self
            .state()
            .objects
            .get(&group)
            .and_then(|o| o.group.as_ref())
            .map(|g| g.members.iter().copied().collect())
            .unwrap_or_default();
        for m in members {
            self.reconcile(seq, m, out);
        }
    }

    /// Removes every trace of `guid` (deleted in AD or not seen in a resync).
    pub(super) fn forget(&mut self, seq: u64, domain: u16, guid: Guid, out: &mut Output) {
        let scoping = self.is_scoping(guid);
        let state = self.state_mut();
        let Some(obj) = state.objects.remove(&guid) else {
            return;
        };
        if !obj.dn.is_empty() {
            let key = (domain, dn::canonical(&obj.dn).into_boxed_str());
            state.dn_remove(domain, &key.1, guid);
        }
        state.pending_hashes.remove(&guid);
        state.quarantined.remove(&guid);
        state.on_create.remove(&guid);
        let groups: Vec<Guid> = state.groups_of(guid).collect();
        for g in groups {
            state.member_of.remove(&(guid, g));
            if let Some(gs) = state.objects.get_mut(&g).and_then(|o| o.group.as_mut()) {
                gs.members.remove(&guid);
            }
        }
        let mut former_members = Vec::new();
        if let Some(gs) = obj.group {
            for p in gs.pending.iter() {
                let key = (domain, p.clone());
                if let Some(w) = state.waiting.get_mut(&key) {
                    w.remove(&guid);
                    if w.is_empty() {
                        state.waiting.remove(&key);
                    }
                }
            }
            for m in gs.members {
                state.member_of.remove(&(m, guid));
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
