//! `imageComplete`: after a new lease holder re-sent its whole view under its epoch, the writes of
//! earlier holders that the view no longer holds are removed (rules in [`cloudsync_api::ops`],
//! Image complete; the agent's side is `projection::image` and `runtime::takeover`).
//!
//! Enters: the calling configuration, the batch's epoch (at least 1: the sweep compares epochs), the
//! operation's version and `keep` anchors. Leaves: deletes of the configuration's live objects whose
//! stored epoch is older than the batch's (through [`super::apply_ops::delete`], so the delete
//! threshold counts them), removal of membership links last asserted under an older epoch, and the
//! list of what went for the provisioning log.

use std::collections::HashSet;

use uuid::Uuid;

use cloudsync_api::ops::{MAX_IMAGE_KEEP, OpErrorCode, OpStatus};

use super::apply::{BatchContext, Outcome, fail};
use super::apply_ops::{delete, link_epoch};
use super::store::{ConfigRecord, Store, StoreError, StoredObject, get_json, uuid_value};

/// What one `imageComplete` removed.
#[derive(Debug, Default)]
pub(super) struct Swept {
    /// Objects deleted: cloud id and source anchor.
    pub objects: Vec<(Uuid, String)>,
    /// Membership links removed.
    pub links: usize,
}

/// Applies `imageComplete` for `config` under `ctx.epoch` (its version was bounded by the caller,
/// [`super::apply_ops::apply_one`]).
pub(super) fn image_complete(
    store: &Store,
    config: &mut ConfigRecord,
    version: u64,
    keep: &[String],
    ctx: &BatchContext,
) -> Result<(Outcome, Swept), StoreError> {
    let mut swept = Swept::default();
    if ctx.epoch == 0 {
        let refused = fail(
            OpErrorCode::InvalidAttribute,
            "imageComplete needs a batch with a lease epoch.",
        );
        return Ok((refused, swept));
    }
    if keep.len() > MAX_IMAGE_KEEP {
        let refused = fail(
            OpErrorCode::InvalidAttribute,
            format!("imageComplete: at most {MAX_IMAGE_KEEP} keep anchors."),
        );
        return Ok((refused, swept));
    }
    let keep: HashSet<&str> = keep.iter().map(String::as_str).collect();
    let config_id = config.config.id;
    // The configuration's objects first (a snapshot: deletes below write to `objects`).
    let mut stale: Vec<StoredObject> = Vec::new();
    let mut groups: Vec<Uuid> = Vec::new();
    for entry in store.anchors.scan_prefix(config_id.as_bytes()) {
        let (_, id) = entry?;
        let Some(object) = get_json::<StoredObject>(&store.objects, "objects", &id)? else {
            continue;
        };
        if object.deleted || object.configuration_id != config_id {
            continue;
        }
        if object.epoch < ctx.epoch && !keep.contains(object.source_anchor.as_str()) {
            stale.push(object);
        } else if object.kind == cloudsync_api::ops::ObjectKind::Group {
            groups.push(object.id);
        }
    }
    for object in stale {
        match delete(
            store,
            config,
            object.kind,
            &object.source_anchor,
            version,
            ctx,
        )? {
            Outcome::Done(OpStatus::Success, ..) => {
                tracing::info!(configuration = %config_id, anchor = %object.source_anchor, epoch = object.epoch, current = ctx.epoch, "Not in the new lease holder's image: deleted.");
                swept.objects.push((object.id, object.source_anchor));
            }
            Outcome::Done(..) => {}
            // The delete threshold (or a kind clash, which a stored object cannot have): stop here;
            // the agent retries the operation, and what was swept stays swept.
            failed @ Outcome::Failed(..) => return Ok((failed, swept)),
        }
    }
    for group in groups {
        let mut old: Vec<(sled::IVec, Uuid)> = Vec::new();
        for entry in store.members.scan_prefix(group.as_bytes()) {
            let (key, value) = entry?;
            if link_epoch(&value) < ctx.epoch {
                let member = uuid_value("members", key.get(16..).unwrap_or_default())?;
                old.push((key, member));
            }
        }
        for (key, member) in old {
            store.members.remove(key)?;
            store
                .member_of
                .remove(super::store::pair_key(member, group))?;
            swept.links += 1;
        }
    }
    let message = if swept.objects.is_empty() && swept.links == 0 {
        "Image complete; nothing of an earlier lease holder was left."
    } else {
        "Image complete; objects and links of earlier lease holders removed."
    };
    Ok((Outcome::Done(OpStatus::Success, None, message), swept))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use cloudsync_api::ops::{ObjectKind, OpErrorCode, Operation, OperationBatch, Upsert};

    use super::super::apply::apply_batch;
    use super::*;

    fn upsert(kind: ObjectKind, anchor: &str, version: u64) -> Operation {
        let mut attributes: BTreeMap<cloudsync_api::ops::AttrName, serde_json::Value> =
            [("displayName".into(), json!(anchor))]
                .into_iter()
                .collect();
        if kind == ObjectKind::User {
            attributes.insert(
                "userPrincipalName".into(),
                json!(format!("{anchor}@x.test")),
            );
        }
        Operation::Upsert(Upsert {
            kind,
            source_anchor: anchor.into(),
            version,
            on_premises: Default::default(),
            attributes,
        })
    }

    fn member(group: &str, m: &str) -> Operation {
        Operation::AddMember {
            group_anchor: group.into(),
            member_anchor: m.into(),
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        config: ConfigRecord,
    }

    impl Fixture {
        fn new(delete_threshold: u32) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("db")).unwrap();
            let config = crate::bench::config_record_with(delete_threshold);
            Fixture {
                _dir: dir,
                store,
                config,
            }
        }

        /// Applies `ops` as one batch under `epoch` (0: none); the statuses and error codes.
        fn batch(
            &mut self,
            epoch: u64,
            ops: Vec<Operation>,
        ) -> Vec<(OpStatus, Option<OpErrorCode>)> {
            let ctx = BatchContext {
                agent_id: Uuid::nil(),
                now: 1_000,
                now_text: "2026-01-01T00:00:00Z".into(),
                delete_window_secs: 120,
                quarantine_after: u32::MAX,
                epoch,
            };
            let batch = OperationBatch {
                batch_id: Uuid::new_v4(),
                operations: ops,
                reasons: Default::default(),
                epoch: (epoch > 0).then_some(epoch),
            };
            apply_batch(&self.store, &mut self.config, &batch, &ctx)
                .unwrap()
                .results
                .into_iter()
                .map(|r| (r.status, r.error.map(|e| e.code)))
                .collect()
        }

        /// Live anchors of the configuration, and the (group, member) anchor pairs.
        fn live(&self) -> (Vec<String>, Vec<(String, String)>) {
            let mut anchors = BTreeMap::new();
            for entry in self.store.objects.iter() {
                let (_, v) = entry.unwrap();
                let o: StoredObject = serde_json::from_slice(&v).unwrap();
                if !o.deleted {
                    anchors.insert(o.id, o.source_anchor);
                }
            }
            let mut links = Vec::new();
            for entry in self.store.members.iter() {
                let (k, _) = entry.unwrap();
                let g = Uuid::from_slice(&k[..16]).unwrap();
                let m = Uuid::from_slice(&k[16..]).unwrap();
                links.push((anchors[&g].clone(), anchors[&m].clone()));
            }
            links.sort();
            let mut live: Vec<String> = anchors.into_values().collect();
            live.sort();
            (live, links)
        }
    }

    fn complete(version: u64, keep: &[&str]) -> Operation {
        Operation::ImageComplete {
            version,
            keep: keep.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn older_epoch_objects_and_links_go_the_image_and_keep_stay() {
        let mut f = Fixture::new(0);
        // Epoch 1 (the old holder): users a, b, c, orphan, group g with members a, b, orphan.
        let old = vec![
            upsert(ObjectKind::User, "a", 5),
            upsert(ObjectKind::User, "b", 6),
            upsert(ObjectKind::User, "c", 7),
            upsert(ObjectKind::User, "orphan", 8),
            upsert(ObjectKind::Group, "g", 9),
            member("g", "a"),
            member("g", "b"),
            member("g", "orphan"),
        ];
        assert!(f.batch(1, old).iter().all(|(s, _)| *s == OpStatus::Success));
        // Epoch 2 (the new holder's image, versions from its own lower journal): a, b, g, and only
        // the link g→a; c is held back (kept); orphan and g→b are not in the image.
        let image = vec![
            upsert(ObjectKind::User, "a", 2),
            upsert(ObjectKind::User, "b", 2),
            upsert(ObjectKind::Group, "g", 2),
            member("g", "a"),
            complete(2, &["c"]),
        ];
        let results = f.batch(2, image);
        // The link g→a exists already: re-asserted (its epoch moves), reported as skipped.
        assert_eq!(results[3], (OpStatus::Skipped, None));
        assert!(results.iter().all(|(_, e)| e.is_none()), "{results:?}");
        let (live, links) = f.live();
        assert_eq!(live, ["a", "b", "c", "g"]);
        assert_eq!(links, [("g".to_owned(), "a".to_owned())]);
        // Swept objects are tombstones under the new epoch: the old holder's late write of
        // them (epoch 1, any version) stays stale.
        let late = f.batch(1, vec![upsert(ObjectKind::User, "orphan", 99)]);
        assert_eq!(late[0].0, OpStatus::Skipped, "{late:?}");
        // The sweep is idempotent: again under the same epoch, nothing more goes.
        f.batch(2, vec![complete(3, &["c"])]);
        assert_eq!(f.live().0, ["a", "b", "c", "g"]);
    }

    #[test]
    fn refused_without_an_epoch_and_stopped_by_the_delete_threshold() {
        let mut f = Fixture::new(0);
        f.batch(0, vec![upsert(ObjectKind::User, "a", 1)]);
        let r = f.batch(0, vec![complete(2, &[])]);
        assert_eq!(r[0], (OpStatus::Error, Some(OpErrorCode::InvalidAttribute)));
        assert_eq!(f.live().0, ["a"], "nothing swept without an epoch");

        let mut f = Fixture::new(2);
        let users: Vec<Operation> = ["a", "b", "c"]
            .iter()
            .map(|a| upsert(ObjectKind::User, a, 1))
            .collect();
        f.batch(1, users);
        let r = f.batch(2, vec![complete(2, &[])]);
        assert_eq!(
            r[0],
            (OpStatus::Error, Some(OpErrorCode::DeleteThresholdExceeded)),
            "three deletes against a threshold of two"
        );
        assert_eq!(
            f.live().0.len(),
            2,
            "deletes below the threshold went, then it stopped"
        );
    }

    /// An upsert with another anchor and the same userPrincipalName as `anchor`'s.
    fn same_upn(anchor: &str, upn_of: &str, version: u64) -> Operation {
        let Operation::Upsert(mut u) = upsert(ObjectKind::User, anchor, version) else {
            unreachable!()
        };
        u.attributes.insert(
            "userPrincipalName".into(),
            json!(format!("{upn_of}@x.test")),
        );
        Operation::Upsert(u)
    }

    #[test]
    fn an_image_upsert_supersedes_an_earlier_holders_object_with_its_upn_and_only_that() {
        // A user deleted and re-created in AD with the same name while the holder was down: the old
        // holder (epoch 1) wrote "old"; the new holder's image (epoch 2) holds "new" with the same
        // UPN. Without the supersede the upsert is refused and imageComplete never comes
        // (tests/ha_image_duplicate_upn.rs).
        let mut f = Fixture::new(0);
        f.batch(1, vec![upsert(ObjectKind::User, "old", 5)]);
        let r = f.batch(2, vec![same_upn("new", "old", 3), complete(4, &[])]);
        assert_eq!(r, [(OpStatus::Success, None), (OpStatus::Success, None)]);
        assert_eq!(f.live().0, ["new"]);
        let reasons: Vec<String> = f
            .store
            .logs
            .iter()
            .map(|e| {
                let v: serde_json::Value = serde_json::from_slice(&e.unwrap().1).unwrap();
                format!("{} {}", v["sourceAnchor"].as_str().unwrap(), v["reason"])
            })
            .collect();
        assert!(
            reasons.contains(&"old \"SupersededInImage\"".to_owned()),
            "{reasons:?}"
        );
        // The old holder's late write of "old" is stale against the tombstone.
        assert_eq!(
            f.batch(1, vec![upsert(ObjectKind::User, "old", 99)])[0].0,
            OpStatus::Skipped
        );

        // Refused, nothing deleted: a clash under the holder's own epoch (a clash is a clash); an
        // object written before leases (epoch 0: a first lease sends no image); a supersede the
        // delete threshold (1) blocks.
        for (why, threshold, old_epoch, new_epoch) in [
            ("same epoch", 0, 2, 2),
            ("written before leases", 0, 0, 1),
            ("delete threshold", 1, 1, 2),
        ] {
            let mut f = Fixture::new(threshold);
            f.batch(old_epoch, vec![upsert(ObjectKind::User, "a", 1)]);
            let r = f.batch(new_epoch, vec![same_upn("b", "a", 2)]);
            assert_eq!(
                r[0],
                (
                    OpStatus::Error,
                    Some(OpErrorCode::DuplicateUserPrincipalName)
                ),
                "{why}"
            );
            assert_eq!(f.live().0, ["a"], "{why}");
        }
    }
}
