//! `push::Outbox` as projection's [`OpSink`]: each projected operation goes to the configuration of
//! its domain, and the operations of a run are enqueued with projection's cursor in one atomic write.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::projection::projector::ProjectedOp;
use crate::projection::runner::{OpSink, SinkError};
use crate::push::{Outbox, OutboxError, OutboxOp};

/// The outbox producer name under which projection's journal cursor is stored.
pub const PRODUCER: &str = "projection";

/// The outbox plus the domain → configuration map.
#[derive(Clone)]
pub struct OutboxSink {
    outbox: Arc<Outbox>,
    configurations: BTreeMap<String, Uuid>,
}

impl OutboxSink {
    /// `configurations` maps domain DNS names (any case) to tenant configuration ids.
    pub fn new(outbox: Arc<Outbox>, configurations: BTreeMap<String, Uuid>) -> OutboxSink {
        let configurations = configurations
            .into_iter()
            .map(|(d, id)| (d.to_ascii_lowercase(), id))
            .collect();
        OutboxSink {
            outbox,
            configurations,
        }
    }

    /// The outbox.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }
}

impl OutboxSink {
    /// Enqueues a takeover image for `configuration` (operations from projection's image, then
    /// `complete`, normally an `imageComplete`) and records `epoch` as taken over, in one write.
    pub async fn enqueue_takeover(
        &self,
        configuration: Uuid,
        epoch: u64,
        image: Vec<ProjectedOp>,
        complete: Option<cloudsync_api::ops::Operation>,
    ) -> Result<usize, OutboxError> {
        let origin = image.iter().map(|p| p.origin_seq).max().unwrap_or(0);
        let mut ops: Vec<OutboxOp> = image
            .into_iter()
            .map(|p| OutboxOp {
                configuration_id: configuration,
                operation: p.op,
                origin_seq: p.origin_seq,
                reason: p.reason.map(|r| r.to_string()),
            })
            .collect();
        if let Some(op) = complete {
            ops.push(OutboxOp {
                configuration_id: configuration,
                operation: op,
                origin_seq: origin,
                reason: Some("LeaseTakeover: image complete".into()),
            });
        }
        let n = ops.len();
        self.outbox
            .enqueue_takeover(ops, configuration, epoch)
            .await?;
        Ok(n)
    }
}

fn sink_error(e: OutboxError) -> SinkError {
    SinkError {
        retriable: e.is_retriable(),
        message: e.to_string(),
    }
}

impl OpSink for OutboxSink {
    fn producer_cursor(&self) -> Result<Option<u64>, SinkError> {
        self.outbox.producer_cursor(PRODUCER).map_err(sink_error)
    }

    async fn enqueue(&self, ops: Vec<ProjectedOp>, cursor: Option<u64>) -> Result<(), SinkError> {
        let mut out = Vec::with_capacity(ops.len());
        for p in ops {
            let Some(id) = self.configurations.get(&p.domain.to_ascii_lowercase()) else {
                return Err(SinkError {
                    message: format!(
                        "no tenant configuration for domain {}: run `cloudsync agent register` or set configuration_id",
                        p.domain
                    ),
                    retriable: false,
                });
            };
            out.push(OutboxOp {
                configuration_id: *id,
                operation: p.op,
                origin_seq: p.origin_seq,
                reason: p.reason.map(|r| r.to_string()),
            });
        }
        if out.is_empty() && cursor.is_none() {
            return Ok(());
        }
        self.outbox
            .enqueue(out, cursor.map(|c| (PRODUCER, c)))
            .await
            .map(|_| ())
            .map_err(sink_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudsync_api::ops::Operation;

    #[tokio::test]
    async fn ops_land_under_their_domains_configuration_with_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
        let corp = Uuid::from_u128(7);
        let sink = OutboxSink::new(outbox.clone(), [("Corp.Example.Test".into(), corp)].into());
        assert_eq!(sink.producer_cursor().unwrap(), None);
        let op: Operation = serde_json::from_value(serde_json::json!(
            {"op": "delete", "kind": "user", "sourceAnchor": "AQ==", "version": 3}
        ))
        .unwrap();
        let p = |domain: &str| ProjectedOp {
            domain: domain.into(),
            origin_seq: 3,
            op: op.clone(),
            reason: None,
        };
        sink.enqueue(vec![p("corp.example.test")], Some(3))
            .await
            .unwrap();
        assert_eq!(sink.producer_cursor().unwrap(), Some(3));
        let stored = outbox.read_after(0, 10).unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].1.configuration_id, corp);
        assert_eq!(stored[0].1.origin_seq, 3);
        let err = sink
            .enqueue(vec![p("other.test")], Some(4))
            .await
            .unwrap_err();
        assert!(!err.retriable);
        // Nothing of the refused run was written, the cursor included.
        assert_eq!(sink.producer_cursor().unwrap(), Some(3));
    }
}
