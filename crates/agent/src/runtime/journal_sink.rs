//! The journal as the sources' [`EventSink`].

use crate::event::{Event, SourceKind};
use crate::journal::{Checkpoint, Journal, JournalError};
use crate::source::{EventSink, SinkError, SourceCheckpoint};

fn sink_error(err: JournalError) -> SinkError {
    SinkError {
        message: err.to_string(),
        retriable: err.is_retriable(),
    }
}

impl EventSink for Journal {
    fn checkpoint(&self, domain: &str, source: SourceKind) -> Result<Option<Vec<u8>>, SinkError> {
        Journal::checkpoint(self, domain, source).map_err(sink_error)
    }

    async fn append(
        &self,
        events: Vec<Event>,
        checkpoint: Option<SourceCheckpoint>,
    ) -> Result<Option<u64>, SinkError> {
        let checkpoint = checkpoint.map(|c| Checkpoint {
            domain: c.domain,
            source: c.source,
            data: c.data,
        });
        // Per domain and kind; a batch has few of each, so a short list beats a map.
        let mut counted: Vec<(String, &'static str, u64)> = Vec::new();
        for e in &events {
            let kind = e.kind().as_str();
            match counted
                .iter_mut()
                .find(|c| c.1 == kind && c.0 == e.domain())
            {
                Some(c) => c.2 += 1,
                None => counted.push((e.domain().to_owned(), kind, 1)),
            }
        }
        let ack = self
            .append_async(events, checkpoint)
            .await
            .map_err(sink_error)?;
        crate::metrics::events_appended(&counted);
        Ok(ack.last_seq)
    }
}
