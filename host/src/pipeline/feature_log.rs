//! Feature logging: a sampled share of a feature service's online responses is offered to a
//! bounded queue on the request path (never waiting: a full queue drops the log and counts
//! it), and one background task encodes them as Arrow IPC and writes them to the offline
//! store's feature log in batches. The skew audit decodes them with [`LoggedRequest::decode`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::online_answer::{OnlineColumn, Status};
use crate::config::FeatureLoggingConfig;
use crate::metrics::Metrics;
use crate::model::Digest;
use crate::offline::{LogRecord, OfflineError, OfflineStore};

/// One online response to log, as served: cheap to build (shared arrays), encoded later by
/// the writer task.
#[derive(Debug, Clone)]
pub(crate) struct LoggedResponse {
    pub project: String,
    pub service: String,
    /// µs: when it was served.
    pub logged_at: i64,
    /// µs: the time it was served as of.
    pub request_ts: i64,
    pub digests: BTreeMap<String, Digest>,
    /// Join keys, as sent.
    pub keys: Vec<(String, ArrayRef)>,
    /// Request fields the on-demand views read, as sent.
    pub request_fields: Vec<(String, ArrayRef)>,
    /// `(view, feature)` and what was served for it, in response order.
    pub features: Vec<((String, String), OnlineColumn)>,
}

/// A logged response read back: what the audit replays and compares with.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    pub rows: usize,
    pub keys: Vec<(String, ArrayRef)>,
    pub request_fields: Vec<(String, ArrayRef)>,
    pub features: Vec<LoggedFeature>,
}

/// One served feature column of a logged response.
#[derive(Debug, Clone)]
pub struct LoggedFeature {
    pub view: String,
    pub feature: String,
    pub values: ArrayRef,
    pub statuses: Vec<Status>,
    /// µs: the served value's event time (0 for on-demand features and when not found).
    pub event_ts: Vec<i64>,
}

// Payload column names: `key:{name}`, `request:{name}`, and per feature
// `value:{view}:{feature}`, `status:…` (the Feast status text) and `event_ts:…` (µs).
const KEY: &str = "key:";
const REQUEST: &str = "request:";
const VALUE: &str = "value:";
const STATUS: &str = "status:";
const EVENT_TS: &str = "event_ts:";

impl LoggedResponse {
    /// The response as one Arrow record batch in IPC stream bytes: exact (float bits,
    /// validity) and self-describing.
    fn encode(&self) -> Result<Vec<u8>, arrow::error::ArrowError> {
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        let mut push = |name: String, array: ArrayRef| {
            fields.push(Field::new(name, array.data_type().clone(), true));
            arrays.push(array);
        };
        for (name, array) in &self.keys {
            push(format!("{KEY}{name}"), Arc::clone(array));
        }
        for (name, array) in &self.request_fields {
            push(format!("{REQUEST}{name}"), Arc::clone(array));
        }
        for ((view, feature), column) in &self.features {
            push(
                format!("{VALUE}{view}:{feature}"),
                Arc::clone(&column.values),
            );
            let statuses: StringArray = column
                .statuses
                .iter()
                .map(|status| Some(status.as_str()))
                .collect();
            push(format!("{STATUS}{view}:{feature}"), Arc::new(statuses));
            push(
                format!("{EVENT_TS}{view}:{feature}"),
                Arc::new(Int64Array::from(column.event_ts.clone())),
            );
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema())?;
        writer.write(&batch)?;
        writer.finish()?;
        writer.into_inner()
    }

    fn into_record(self) -> Result<LogRecord, arrow::error::ArrowError> {
        let payload = self.encode()?;
        Ok(LogRecord {
            project: self.project,
            service: self.service,
            logged_at: self.logged_at,
            request_ts: self.request_ts,
            digests: self.digests,
            payload,
        })
    }
}

impl LoggedRequest {
    /// Decodes a payload written by the logger.
    pub fn decode(payload: &[u8]) -> Result<Self, OfflineError> {
        let corrupt = |message: String| OfflineError::Corrupt(format!("feature log: {message}"));
        let reader = arrow::ipc::reader::StreamReader::try_new(payload, None)
            .map_err(|e| corrupt(e.to_string()))?;
        let mut batches = Vec::new();
        for batch in reader {
            batches.push(batch.map_err(|e| corrupt(e.to_string()))?);
        }
        let [batch] = batches.as_slice() else {
            return Err(corrupt(format!("{} batches, expected 1", batches.len())));
        };
        let schema = batch.schema();
        let mut logged = LoggedRequest {
            rows: batch.num_rows(),
            keys: Vec::new(),
            request_fields: Vec::new(),
            features: Vec::new(),
        };
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            let name = field.name();
            if let Some(key) = name.strip_prefix(KEY) {
                logged.keys.push((key.to_owned(), Arc::clone(array)));
            } else if let Some(request) = name.strip_prefix(REQUEST) {
                logged
                    .request_fields
                    .push((request.to_owned(), Arc::clone(array)));
            } else if let Some(reference) = name.strip_prefix(VALUE) {
                let (view, feature) = reference
                    .split_once(':')
                    .ok_or_else(|| corrupt(format!("column `{name}`")))?;
                let column = |prefix: &str| {
                    batch
                        .column_by_name(&format!("{prefix}{reference}"))
                        .ok_or_else(|| corrupt(format!("no {prefix} column for `{reference}`")))
                };
                let statuses = column(STATUS)?
                    .as_string_opt::<i32>()
                    .ok_or_else(|| corrupt(format!("statuses of `{reference}` are not text")))?
                    .iter()
                    .map(|status| match status {
                        Some("PRESENT") => Ok(Status::Present),
                        Some("NOT_FOUND") => Ok(Status::NotFound),
                        Some("NULL_VALUE") => Ok(Status::NullValue),
                        Some("OUTSIDE_MAX_AGE") => Ok(Status::OutsideMaxAge),
                        other => Err(corrupt(format!("status {other:?}"))),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let event_ts = column(EVENT_TS)?;
                if event_ts.data_type() != &DataType::Int64 {
                    return Err(corrupt(format!("event times of `{reference}`")));
                }
                logged.features.push(LoggedFeature {
                    view: view.to_owned(),
                    feature: feature.to_owned(),
                    values: Arc::clone(array),
                    statuses,
                    event_ts: event_ts
                        .as_primitive::<arrow::datatypes::Int64Type>()
                        .values()
                        .to_vec(),
                });
            } else if !name.starts_with(STATUS) && !name.starts_with(EVENT_TS) {
                return Err(corrupt(format!("unknown column `{name}`")));
            }
        }
        Ok(logged)
    }
}

/// What the writer task receives.
enum Message {
    Log(Box<LoggedResponse>),
    /// Write everything received so far, then answer (with the first write error since
    /// the last flush, if any).
    Flush(oneshot::Sender<Option<OfflineError>>),
}

/// The request path's side of feature logging: sampling and a non-blocking offer.
pub(crate) struct FeatureLogger {
    sender: mpsc::Sender<Message>,
    metrics: Arc<Metrics>,
    draws: AtomicU64,
}

impl FeatureLogger {
    /// A logger feeding a new writer task on the current tokio runtime.
    pub fn start(
        config: &FeatureLoggingConfig,
        store: Arc<dyn OfflineStore>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (logger, receiver) = Self::with_queue(config.queue_capacity, Arc::clone(&metrics));
        tokio::spawn(write_loop(receiver, store, metrics, config.clone()));
        logger
    }

    /// A logger and the receiving end of its queue, without a writer.
    fn with_queue(capacity: usize, metrics: Arc<Metrics>) -> (Self, mpsc::Receiver<Message>) {
        let (sender, receiver) = mpsc::channel(capacity);
        let logger = Self {
            sender,
            metrics,
            draws: AtomicU64::new(0),
        };
        (logger, receiver)
    }

    /// Whether to log this response, at `rate` (in (0, 1]): a SplitMix64 draw per call,
    /// independent of the request's content.
    pub fn sampled(&self, rate: f64) -> bool {
        if rate >= 1.0 {
            return true;
        }
        let z = crate::model::random::nth(0, self.draws.fetch_add(1, Ordering::Relaxed));
        ((z >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < rate
    }

    /// Queues `response` for writing if there is room; otherwise drops and counts it.
    /// Never waits. True when queued.
    pub fn offer(&self, response: LoggedResponse) -> bool {
        let service = response.service.clone();
        match self.sender.try_send(Message::Log(Box::new(response))) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.feature_log_dropped(&service, "queue_full");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.metrics.feature_log_dropped(&service, "writer_stopped");
                false
            }
        }
    }

    /// Waits until every response queued before this call is written (or dropped after a
    /// failed write, which is returned).
    pub async fn flush(&self) -> Result<(), OfflineError> {
        let stopped = || OfflineError::Unavailable("the feature log writer stopped".into());
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Message::Flush(reply))
            .await
            .map_err(|_| stopped())?;
        match answer.await.map_err(|_| stopped())? {
            None => Ok(()),
            Some(error) => Err(error),
        }
    }
}

/// The writer task: batches of up to `batch_rows` responses, each written at most
/// `flush_ms` after its first response arrived; ends (after writing what it holds) when
/// every logger is gone.
async fn write_loop(
    mut receiver: mpsc::Receiver<Message>,
    store: Arc<dyn OfflineStore>,
    metrics: Arc<Metrics>,
    config: FeatureLoggingConfig,
) {
    let mut pending: Vec<LogRecord> = Vec::new();
    let mut failure: Option<OfflineError> = None;
    let mut deadline = Instant::now();
    loop {
        let message = if pending.is_empty() {
            receiver.recv().await
        } else {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(message) => message,
                Err(_) => {
                    write(&*store, &metrics, &mut pending, &mut failure).await;
                    continue;
                }
            }
        };
        match message {
            None => {
                write(&*store, &metrics, &mut pending, &mut failure).await;
                return;
            }
            Some(Message::Log(response)) => {
                let service = response.service.clone();
                match response.into_record() {
                    Ok(record) => {
                        if pending.is_empty() {
                            deadline = Instant::now() + config.flush_interval();
                        }
                        pending.push(record);
                    }
                    Err(error) => {
                        tracing::warn!(%service, %error, "a logged response could not be encoded");
                        metrics.feature_log_dropped(&service, "encode_failed");
                    }
                }
                if pending.len() >= config.batch_rows {
                    write(&*store, &metrics, &mut pending, &mut failure).await;
                }
            }
            Some(Message::Flush(reply)) => {
                write(&*store, &metrics, &mut pending, &mut failure).await;
                let _ = reply.send(failure.take());
            }
        }
    }
}

/// Writes and empties `pending`; on failure counts its records as dropped and keeps the
/// first error for the next flush.
async fn write(
    store: &dyn OfflineStore,
    metrics: &Metrics,
    pending: &mut Vec<LogRecord>,
    failure: &mut Option<OfflineError>,
) {
    if pending.is_empty() {
        return;
    }
    let mut by_service: BTreeMap<&str, u64> = BTreeMap::new();
    for record in pending.iter() {
        *by_service.entry(&record.service).or_default() += 1;
    }
    match store.write_feature_logs(pending).await {
        Ok(()) => {
            for (service, count) in by_service {
                metrics.feature_logs_written(service, count);
            }
        }
        Err(error) => {
            tracing::warn!(%error, records = pending.len(), "feature logs dropped: write failed");
            for record in pending.iter() {
                metrics.feature_log_dropped(&record.service, "write_failed");
            }
            failure.get_or_insert(error);
        }
    }
    pending.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Float64Array;

    fn response(service: &str) -> LoggedResponse {
        let values: ArrayRef = Arc::new(Float64Array::from(vec![Some(-0.0), None, Some(f64::NAN)]));
        LoggedResponse {
            project: "p".into(),
            service: service.into(),
            logged_at: 2,
            request_ts: 1,
            digests: BTreeMap::from([("v".to_owned(), Digest::of(b"t"))]),
            keys: vec![(
                "user_id".into(),
                Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
            )],
            request_fields: vec![(
                "genre".into(),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])) as ArrayRef,
            )],
            features: vec![(
                ("v".into(), "f".into()),
                OnlineColumn {
                    name: "f".into(),
                    values,
                    statuses: vec![Status::Present, Status::NotFound, Status::Present],
                    event_ts: vec![5, 0, 7],
                },
            )],
        }
    }

    #[test]
    fn payloads_round_trip_exactly() {
        let sent = response("s");
        let record = sent.clone().into_record().unwrap();
        let read = LoggedRequest::decode(&record.payload).unwrap();
        assert_eq!(read.rows, 3);
        assert_eq!(read.keys[0].0, "user_id");
        assert_eq!(&read.keys[0].1, &sent.keys[0].1);
        assert_eq!(&read.request_fields[0].1, &sent.request_fields[0].1);
        let feature = &read.features[0];
        assert_eq!(
            (feature.view.as_str(), feature.feature.as_str()),
            ("v", "f")
        );
        let floats = feature
            .values
            .as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(floats.value(0).to_bits(), (-0.0f64).to_bits());
        assert!(floats.is_null(1));
        assert_eq!(floats.value(2).to_bits(), f64::NAN.to_bits());
        assert_eq!(feature.statuses[1], Status::NotFound);
        assert_eq!(feature.event_ts, [5, 0, 7]);
        assert!(LoggedRequest::decode(b"not arrow").is_err());
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let metrics = Arc::new(Metrics::new());
        // No writer: nothing leaves the queue.
        let (logger, mut receiver) = FeatureLogger::with_queue(2, Arc::clone(&metrics));
        let started = std::time::Instant::now();
        let queued: Vec<bool> = (0..5).map(|_| logger.offer(response("svc"))).collect();
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
        assert_eq!(queued, [true, true, false, false, false]);
        assert_eq!(metrics.feature_logs_dropped("svc", "queue_full"), 3);
        // The queued ones are intact and in order.
        for _ in 0..2 {
            assert!(matches!(receiver.try_recv(), Ok(Message::Log(_))));
        }
        assert!(receiver.try_recv().is_err());
        // Room again: accepted.
        assert!(logger.offer(response("svc")));
        drop(receiver);
        assert!(!logger.offer(response("svc")));
        assert_eq!(metrics.feature_logs_dropped("svc", "writer_stopped"), 1);
    }

    #[test]
    fn sampling_keeps_about_the_rate() {
        let (logger, _receiver) = FeatureLogger::with_queue(1, Arc::new(Metrics::new()));
        let kept = (0..10_000).filter(|_| logger.sampled(0.1)).count();
        assert!((800..1_200).contains(&kept), "{kept}");
        assert!((0..100).all(|_| logger.sampled(1.0)));
    }
}
