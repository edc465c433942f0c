//! The offline side: each entity row's aggregates as of its time, from a replay of the
//! stored events. The online side reads the same [`State`] at now.

use std::collections::HashMap;

use arrow::array::ArrayRef;

use super::{Engine, State, Value, Visitor};
use crate::columnar::ColumnBuilder;
use crate::model::{ValueType, within_ttl};

/// A point-in-time join of entity rows to an aggregated view, as a [`Visitor`] of the
/// view's replay. A row gets its key's aggregates as of its time when the key has an event
/// at or before that time within the view's ttl, else nulls (as the online path reports
/// `NOT_FOUND` or `OUTSIDE_MAX_AGE`).
pub struct PointInTime<'a> {
    engine: &'a Engine,
    ttl_seconds: Option<u64>,
    times: &'a [i64],
    /// Rows still to join, by key bytes, each list in time order.
    wanted: HashMap<Vec<u8>, Vec<usize>>,
    /// The current key's rows and how many of them are joined.
    pending: Vec<usize>,
    joined: usize,
    /// Per row: the newest event's time and the aggregates, when within the ttl.
    results: Vec<Option<(i64, Vec<Value>)>>,
}

impl<'a> PointInTime<'a> {
    /// Joins rows with these key bytes ([`super::key_bytes`]) and times (µs).
    pub fn new(
        engine: &'a Engine,
        ttl_seconds: Option<u64>,
        keys: Vec<Vec<u8>>,
        times: &'a [i64],
    ) -> Self {
        let mut wanted: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        for (row, key) in keys.into_iter().enumerate() {
            wanted.entry(key).or_default().push(row);
        }
        for rows in wanted.values_mut() {
            rows.sort_by_key(|&row| (times[row], row));
        }
        Self {
            engine,
            ttl_seconds,
            times,
            wanted,
            pending: Vec::new(),
            joined: 0,
            results: vec![None; times.len()],
        }
    }

    /// Joins the current key's rows earlier than `until` (all when `None`) to `state`.
    fn join_until(&mut self, state: &State, until: Option<i64>) {
        while let Some(&row) = self.pending.get(self.joined) {
            let t = self.times[row];
            if until.is_some_and(|until| t >= until) {
                break;
            }
            self.results[row] = state
                .newest()
                .filter(|(newest, _)| within_ttl(*newest, t, self.ttl_seconds))
                .and_then(|(newest, _)| Some((newest, state.read(self.engine, t)?)));
            self.joined += 1;
        }
    }

    /// One column per aggregate, one row per entity row, in order; and each row's newest
    /// event time (null where the row has no aggregates).
    pub fn finish(self) -> (Vec<ArrayRef>, ArrayRef) {
        let mut builders: Vec<ColumnBuilder> = self
            .engine
            .outputs()
            .iter()
            .map(|output| ColumnBuilder::new(output.value_type))
            .collect();
        let mut newest = ColumnBuilder::new(ValueType::Timestamp);
        for result in &self.results {
            match result {
                None => {
                    builders.iter_mut().for_each(ColumnBuilder::null);
                    newest.null();
                }
                Some((event_ts, values)) => {
                    for (builder, value) in builders.iter_mut().zip(values) {
                        value.append_to(builder);
                    }
                    newest.int(*event_ts);
                }
            }
        }
        let columns = builders.into_iter().map(ColumnBuilder::finish).collect();
        (columns, newest.finish())
    }
}

impl Visitor for PointInTime<'_> {
    fn start(&mut self, key: &[u8]) -> bool {
        self.pending = self.wanted.remove(key).unwrap_or_default();
        self.joined = 0;
        !self.pending.is_empty()
    }

    fn before(&mut self, state: &State, event_ts: i64) {
        self.join_until(state, Some(event_ts));
    }

    fn finish(
        &mut self,
        _key: Vec<u8>,
        state: State,
        _rows: &arrow::array::RecordBatch,
        _row: usize,
    ) {
        self.join_until(&state, None);
    }
}
