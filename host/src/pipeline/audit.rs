//! The skew audit: a feature service's logged online responses replayed through the offline
//! path — the training set's point-in-time join at each logged request time, and the
//! on-demand views by their logged digests — and compared with what was served, value by
//! value, bit for bit. Every difference fails the audit; each gets a likely cause to say
//! where to look, never to excuse it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{Field, Schema, TimestampMicrosecondType};
use serde::Serialize;

use super::Lockstep;
use super::feature_log::LoggedRequest;
use super::features::{FeatureError, Selection, Store, plan};
use super::online_answer::Status;
use crate::columnar::{same_value, value_text};
use crate::model::arrow_type;
use crate::model::{Digest, ValueType};
use crate::offline::LogRecord;

/// The entity rows' time column while replaying: a name no key or request field has.
const REQUEST_TS: &str = "__lockstep_request_ts";

/// What to audit.
#[derive(Debug, Clone)]
pub struct AuditRequest {
    /// The project (by default the only one, or `default`).
    pub project: Option<String>,
    /// The feature service whose logged responses are replayed.
    pub service: String,
    /// Only responses logged at or after this time (µs).
    pub since: i64,
    /// At most this many logged responses, oldest first.
    pub limit: u32,
    /// How many differences the report lists (all are counted).
    pub max_differences: usize,
}

impl AuditRequest {
    /// Every logged response of `service` (up to 100 000), listing the first 20 differences.
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            project: None,
            service: service.into(),
            since: i64::MIN,
            limit: 100_000,
            max_differences: 20,
        }
    }
}

/// Why a served value may differ from the offline replay: a hint, judged from the event
/// times and digests involved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The offline store had a newer row than the one served (or the online store none).
    MaterializationLag,
    /// The served row is newer than the offline store's, or the offline store has none.
    WrittenOnlineOnly,
    /// The served row's event time is after the request time.
    OnlineRowAfterRequest,
    /// Same event time online and offline, different values.
    RowReplaced,
    /// The view is now pinned to another transform than the one logged.
    TransformChanged,
    /// An on-demand value whose feature-view inputs differed in the same row.
    InputDiffered,
    /// An on-demand value differing while its logged inputs matched.
    Unexplained,
}

impl Cause {
    /// One line for people.
    pub fn describe(self) -> &'static str {
        match self {
            Cause::MaterializationLag => {
                "materialization lag / missed push: the offline store has a newer row than the \
                 one served"
            }
            Cause::WrittenOnlineOnly => {
                "written online only (push to online, write-to-online-store): the served row is \
                 newer than the offline store's"
            }
            Cause::OnlineRowAfterRequest => {
                "the served row's event time is after the request time (served as of a past time)"
            }
            Cause::RowReplaced => {
                "same event time, different value: a row was replaced in one store only"
            }
            Cause::TransformChanged => {
                "transform version changed: the view is pinned to another digest than the one \
                 logged"
            }
            Cause::InputDiffered => "an input of the on-demand view differed in the same row",
            Cause::Unexplained => {
                "no known cause: the on-demand transform gave another value for matching inputs"
            }
        }
    }
}

/// One value served differently from the offline replay.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// µs: when the response was logged.
    pub logged_at: i64,
    /// µs: the time the request was served as of (and replayed at).
    pub request_ts: i64,
    /// The row's join keys, `(name, value)`.
    pub entity: Vec<(String, String)>,
    pub view: String,
    pub feature: String,
    /// The value served, as exact text.
    pub online: String,
    pub status: Status,
    /// µs: the served row's event time, for feature views with a row.
    pub online_event_ts: Option<i64>,
    /// The offline replay's value, as exact text.
    pub offline: String,
    /// µs: the offline row's event time, for feature views with a match.
    pub offline_event_ts: Option<i64>,
    pub cause: Cause,
}

/// What an audit found.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub project: String,
    pub service: String,
    /// Logged responses replayed.
    pub requests: u64,
    /// Entity rows in them.
    pub rows: u64,
    /// Feature values compared (rows × features).
    pub values: u64,
    /// Values equal bit for bit (both null counts as equal).
    pub matched: u64,
    pub differed: u64,
    /// Differences by likely cause.
    pub causes: BTreeMap<Cause, u64>,
    /// The first differences: responses with the same columns and digests replay together,
    /// so in log order within each such group, row by row.
    pub differences: Vec<Difference>,
    /// Transforms that served logged responses and were since caught breaking the row-wise
    /// contract, by view, with why: those responses are not replayed (the transform is not
    /// run again), and the audit fails.
    pub unsafe_transforms: BTreeMap<String, (Digest, String)>,
    /// Logged requests not replayed because they used an unsafe transform.
    pub skipped_requests: u64,
}

impl AuditReport {
    /// Passed: something was compared, every value matched and no logged response came from
    /// a transform marked unsafe.
    pub fn passed(&self) -> bool {
        self.values > 0 && self.differed == 0 && self.unsafe_transforms.is_empty()
    }
}

/// Logged responses that replay together: the same columns and digests.
struct Group {
    digests: BTreeMap<String, Digest>,
    requests: Vec<(i64, i64, LoggedRequest)>,
}

impl Lockstep {
    /// Replays `request.service`'s logged responses (after writing any still queued)
    /// through the offline path and compares them with what was served.
    pub async fn audit(&self, request: &AuditRequest) -> Result<AuditReport, FeatureError> {
        self.flush_feature_logs().await?;
        let served = self.served_definitions(request.project.as_deref()).await?;
        let project = served.resolved.project().to_owned();
        let records = self
            .offline
            .read_feature_logs(&project, &request.service, request.since, request.limit)
            .await?;
        let mut report = AuditReport {
            project,
            service: request.service.clone(),
            requests: records.len() as u64,
            rows: 0,
            values: 0,
            matched: 0,
            differed: 0,
            causes: BTreeMap::new(),
            differences: Vec::new(),
            unsafe_transforms: BTreeMap::new(),
            skipped_requests: 0,
        };
        let unsafe_digests = self.registry.unsafe_transforms().await?;
        for group in group(records)? {
            let caught: Vec<(&String, &Digest)> = group
                .digests
                .iter()
                .filter(|(_, digest)| unsafe_digests.contains_key(digest))
                .collect();
            if !caught.is_empty() {
                for (view, digest) in caught {
                    report
                        .unsafe_transforms
                        .insert(view.clone(), (*digest, unsafe_digests[digest].clone()));
                }
                report.skipped_requests += group.requests.len() as u64;
                continue;
            }
            self.replay(&served, group, request.max_differences, &mut report)
                .await?;
        }
        Ok(report)
    }

    async fn replay(
        &self,
        served: &super::served::ServedDefinitions,
        group: Group,
        max_differences: usize,
        report: &mut AuditReport,
    ) -> Result<(), FeatureError> {
        let definitions = &served.resolved;
        let first = &group.requests[0].2;
        let requested: Vec<(String, String)> = first
            .features
            .iter()
            .map(|f| (f.view.clone(), f.feature.clone()))
            .collect();
        for (view, _) in &requested {
            if !definitions.feature_views.contains_key(view)
                && !definitions.on_demand_views.contains_key(view)
            {
                return Err(FeatureError::Invalid(format!(
                    "`{view}` was logged but project `{}` no longer defines it",
                    definitions.project()
                )));
            }
        }
        let plan = plan(
            definitions,
            &Selection {
                requested: requested.clone(),
            },
            Store::Offline,
        )?;

        // Entity rows: every logged row at its request time, with its keys and request
        // fields as sent.
        let mut request_ts = Vec::new();
        let mut logged_at = Vec::new();
        for (logged, ts, request) in &group.requests {
            request_ts.extend(std::iter::repeat_n(*ts, request.rows));
            logged_at.extend(std::iter::repeat_n(*logged, request.rows));
        }
        let rows = request_ts.len();
        let mut fields = vec![Field::new(
            REQUEST_TS,
            arrow_type(ValueType::Timestamp),
            false,
        )];
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(
            TimestampMicrosecondArray::from(request_ts.clone()).with_timezone("UTC"),
        )];
        let concat =
            |pick: &dyn Fn(&LoggedRequest) -> &ArrayRef| -> Result<ArrayRef, FeatureError> {
                let parts: Vec<&dyn Array> = group
                    .requests
                    .iter()
                    .map(|(_, _, request)| pick(request).as_ref())
                    .collect();
                arrow::compute::concat(&parts).map_err(|e| FeatureError::Internal(e.to_string()))
            };
        for (index, (name, array)) in first.keys.iter().enumerate() {
            fields.push(Field::new(name, array.data_type().clone(), false));
            arrays.push(concat(&|request| &request.keys[index].1)?);
        }
        for (index, (name, array)) in first.request_fields.iter().enumerate() {
            fields.push(Field::new(name, array.data_type().clone(), true));
            arrays.push(concat(&|request| &request.request_fields[index].1)?);
        }
        let keys: Vec<(String, ArrayRef)> = first
            .keys
            .iter()
            .zip(&arrays[1..])
            .map(|((name, _), array)| (name.clone(), Arc::clone(array)))
            .collect();
        let entities = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| FeatureError::Entities(e.to_string()))?;
        let on_demand_digests: BTreeMap<String, Digest> = plan
            .on_demand
            .iter()
            .filter_map(|name| {
                group
                    .digests
                    .get(name)
                    .map(|digest| (name.clone(), *digest))
            })
            .collect();
        let joined = self
            .join_offline(
                served,
                &plan,
                &entities,
                REQUEST_TS,
                &on_demand_digests,
                true,
                &|_| {},
            )
            .await?;

        // What was served, column by column over the whole group, next to the replay.
        struct Compared {
            view: String,
            feature: String,
            on_demand: bool,
            online: ArrayRef,
            statuses: Vec<Status>,
            online_ts: Vec<i64>,
            offline: ArrayRef,
            offline_ts: Option<ArrayRef>,
            /// For feature views: whether the logged digest is the one pinned now.
            same_transform: bool,
        }
        let mut columns = Vec::with_capacity(requested.len());
        for (index, (view, feature)) in requested.iter().enumerate() {
            let online = concat(&|request| &request.features[index].values)?;
            let offline = Arc::clone(&joined.values[&(view.clone(), feature.clone())]);
            if online.data_type() != offline.data_type() {
                return Err(FeatureError::Invalid(format!(
                    "`{view}:{feature}` was served as {} but is now {}",
                    online.data_type(),
                    offline.data_type()
                )));
            }
            let on_demand = definitions.on_demand_views.contains_key(view);
            let same_transform =
                on_demand || served.tables[view].transform == group.digests.get(view).copied();
            columns.push(Compared {
                view: view.clone(),
                feature: feature.clone(),
                on_demand,
                online,
                statuses: group
                    .requests
                    .iter()
                    .flat_map(|(_, _, request)| request.features[index].statuses.iter().copied())
                    .collect(),
                online_ts: group
                    .requests
                    .iter()
                    .flat_map(|(_, _, request)| request.features[index].event_ts.iter().copied())
                    .collect(),
                offline,
                offline_ts: joined.event_ts.get(view).cloned(),
                same_transform,
            });
        }

        report.rows += rows as u64;
        for row in 0..rows {
            // Feature views first: an on-demand difference is judged by its inputs'.
            let mut differing_views: BTreeSet<&str> = BTreeSet::new();
            let mut found: Vec<(usize, Cause)> = Vec::new();
            for pass_on_demand in [false, true] {
                for (index, column) in columns.iter().enumerate() {
                    if column.on_demand != pass_on_demand {
                        continue;
                    }
                    report.values += 1;
                    if same_value(column.online.as_ref(), row, column.offline.as_ref(), row) {
                        report.matched += 1;
                        continue;
                    }
                    let cause = if column.on_demand {
                        let inputs = &definitions.on_demand_views[&column.view].views;
                        if inputs
                            .iter()
                            .any(|view| differing_views.contains(view.as_str()))
                        {
                            Cause::InputDiffered
                        } else {
                            Cause::Unexplained
                        }
                    } else {
                        differing_views.insert(&column.view);
                        view_cause(
                            column.same_transform,
                            online_event_ts(column, row),
                            offline_event_ts(column, row),
                            request_ts[row],
                        )
                    };
                    found.push((index, cause));
                }
            }
            found.sort_unstable_by_key(|(index, _)| *index);
            for (index, cause) in found {
                report.differed += 1;
                *report.causes.entry(cause).or_default() += 1;
                if report.differences.len() >= max_differences {
                    continue;
                }
                let column = &columns[index];
                report.differences.push(Difference {
                    logged_at: logged_at[row],
                    request_ts: request_ts[row],
                    entity: keys
                        .iter()
                        .map(|(name, array)| (name.clone(), value_text(array.as_ref(), row)))
                        .collect(),
                    view: column.view.clone(),
                    feature: column.feature.clone(),
                    online: value_text(column.online.as_ref(), row),
                    status: column.statuses[row],
                    online_event_ts: online_event_ts(column, row),
                    offline: value_text(column.offline.as_ref(), row),
                    offline_event_ts: offline_event_ts(column, row),
                    cause,
                });
            }
        }

        fn online_event_ts(column: &Compared, row: usize) -> Option<i64> {
            (!column.on_demand && column.statuses[row] != Status::NotFound)
                .then_some(column.online_ts[row])
        }
        fn offline_event_ts(column: &Compared, row: usize) -> Option<i64> {
            let times = column.offline_ts.as_ref()?;
            times
                .is_valid(row)
                .then(|| times.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        Ok(())
    }
}

/// The likely cause of a feature view's difference, from the digests and event times.
fn view_cause(
    same_transform: bool,
    online: Option<i64>,
    offline: Option<i64>,
    request_ts: i64,
) -> Cause {
    if !same_transform {
        return Cause::TransformChanged;
    }
    match (online, offline) {
        (Some(online), _) if online > request_ts => Cause::OnlineRowAfterRequest,
        (None, _) => Cause::MaterializationLag,
        (Some(_), None) => Cause::WrittenOnlineOnly,
        (Some(online), Some(offline)) if online < offline => Cause::MaterializationLag,
        (Some(online), Some(offline)) if online > offline => Cause::WrittenOnlineOnly,
        (Some(_), Some(_)) => Cause::RowReplaced,
    }
}

/// Decodes records and groups them by columns and digests, in log order of each group's
/// first record.
fn group(records: Vec<LogRecord>) -> Result<Vec<Group>, FeatureError> {
    let mut groups: Vec<(String, Group)> = Vec::new();
    for record in records {
        let request = LoggedRequest::decode(&record.payload)?;
        let mut shape = String::new();
        for (name, array) in request.keys.iter().chain(&request.request_fields) {
            shape.push_str(&format!("{name}:{};", array.data_type()));
        }
        for feature in &request.features {
            shape.push_str(&format!(
                "{}:{}:{};",
                feature.view,
                feature.feature,
                feature.values.data_type()
            ));
        }
        shape.push_str(&serde_json::to_string(&record.digests).unwrap_or_default());
        let entry = (record.logged_at, record.request_ts, request);
        match groups.iter_mut().find(|(known, _)| *known == shape) {
            Some((_, group)) => group.requests.push(entry),
            None => groups.push((
                shape,
                Group {
                    digests: record.digests,
                    requests: vec![entry],
                },
            )),
        }
    }
    Ok(groups.into_iter().map(|(_, group)| group).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_follow_the_event_times() {
        let at = 100;
        assert_eq!(
            view_cause(false, Some(1), Some(1), at),
            Cause::TransformChanged
        );
        assert_eq!(
            view_cause(true, Some(101), Some(1), at),
            Cause::OnlineRowAfterRequest
        );
        assert_eq!(
            view_cause(true, None, Some(1), at),
            Cause::MaterializationLag
        );
        assert_eq!(
            view_cause(true, Some(5), Some(9), at),
            Cause::MaterializationLag
        );
        assert_eq!(
            view_cause(true, Some(9), Some(5), at),
            Cause::WrittenOnlineOnly
        );
        assert_eq!(
            view_cause(true, Some(9), None, at),
            Cause::WrittenOnlineOnly
        );
        assert_eq!(view_cause(true, Some(9), Some(9), at), Cause::RowReplaced);
    }
}
