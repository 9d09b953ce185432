//! A domain's full image: everything projection holds in the cloud for one domain, as operations
//! under the current journal sequence — the new lease holder's re-send on a takeover.
//!
//! Enters: the projected state (read only; the image changes nothing, so projection stays a pure
//! function of the journal). Leaves: an [`Image`]: an upsert of every object of the domain this agent
//! holds in the cloud, then an `addMember` for every link between such objects, then every held
//! password hash; the anchors of objects held in the cloud whose upsert cannot be built now (a
//! mapping error: they keep their last cloud state); and the version the tenant's sweep deletes
//! with. The caller appends `imageComplete` (`cloudsync_api::ops`, Image complete) after it.
//!
//! Why a full image and not only the standby's backlog: an AD change made and reverted while the
//! previous holder had pushed only its first half is folded by DirSync into "unchanged", and
//! projection sends nothing for an unchanged object; only re-sending every object under the new
//! epoch overwrites what the previous holder left. Objects the previous holder created that this
//! agent does not hold at all (created and deleted in AD in between) are what the sweep removes.

use std::sync::Arc;

use super::ops::{ObjectKind, Operation};
use super::projector::{ProjectedOp, Projector};
use super::state::slab::ObjState;

/// One domain's image.
#[derive(Debug, Default)]
pub struct Image {
    /// Upserts, then memberships, then password hashes.
    pub ops: Vec<ProjectedOp>,
    /// Objects held in the cloud that the image could not re-send (their anchors).
    pub keep: Vec<String>,
    /// The version of the image's upserts: the last journal sequence projected.
    pub version: u64,
}

/// Why no image can be made yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// Projection has not seen the domain at all.
    #[error("projection has not read domain {0} yet")]
    Unknown(String),
    /// A full read of the domain is in progress (an initial read, or a requested re-read): an
    /// image now would miss what is not read yet, and the sweep would delete it in the cloud.
    #[error("a full read of domain {0} is in progress")]
    Reading(String),
}

impl Projector {
    /// The image of `domain` (DNS name, any case); see the module doc.
    pub fn image(&self, domain: &str) -> Result<Image, NotReady> {
        let Some(d) = self
            .state
            .domains
            .iter()
            .position(|n| n.eq_ignore_ascii_case(domain))
            .and_then(|i| u16::try_from(i).ok())
        else {
            return Err(NotReady::Unknown(domain.to_string()));
        };
        if self.state.resyncs.contains_key(&d) {
            return Err(NotReady::Reading(domain.to_string()));
        }
        let name: Arc<str> = self.state.domain_name(d).into();
        let version = self.state.last_seq;
        let mut image = Image {
            version,
            ..Image::default()
        };
        let op = |op| ProjectedOp {
            domain: name.clone(),
            origin_seq: version,
            op,
            reason: Some("LeaseTakeover: full image".into()),
        };
        let held = |o: &ObjState| o.domain == d && o.in_cloud();
        let mut links = Vec::new();
        let mut hashes = Vec::new();
        for (id, obj) in self.state.iter().filter(|(_, o)| held(o)) {
            let anchor = self.state.anchor(id).text();
            match self.build_upsert(id, version, obj, self.ctx(id, obj, version)) {
                Ok(upsert) => image.ops.push(op(Operation::Upsert(upsert))),
                Err(reason) => {
                    tracing::warn!(object = %obj.guid, reason = %reason, "Not in the takeover image (mapping failed); its cloud object is kept as it is.");
                    image.keep.push(anchor.clone());
                    continue;
                }
            }
            if let Some(g) = &obj.group {
                for &m in &g.members {
                    if self.state.obj(m).is_some_and(ObjState::in_cloud) {
                        links.push(op(Operation::AddMember {
                            group_anchor: anchor.clone(),
                            member_anchor: self.state.anchor(m).text(),
                        }));
                    }
                }
            }
            if obj.kind == ObjectKind::User
                && let Some((hseq, hash)) = self.state.hashes.get(&obj.guid)
            {
                hashes.push(op(Operation::SetPasswordHash {
                    source_anchor: anchor,
                    version: *hseq,
                    credential: hash.clone(),
                }));
            }
        }
        image.ops.extend(links);
        image.ops.extend(hashes);
        Ok(image)
    }
}
