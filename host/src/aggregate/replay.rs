//! Replays an aggregated view's stored events, streamed in key and time order, into one
//! [`State`] per key, telling a [`Visitor`] what happens: the offline join reads states
//! between events, materialization writes each key's final state.

use arrow::array::{Array, RecordBatch};

use super::{Engine, State, key_bytes};
use crate::model::{ValueType, ViewTable};

/// What a replay reports.
pub trait Visitor {
    /// A key's events begin; false skips them (the key is not wanted).
    fn start(&mut self, key: &[u8]) -> bool;
    /// The key's state just before an event at `event_ts` is inserted.
    fn before(&mut self, state: &State, event_ts: i64);
    /// The key's last event is in; its last row is row `row` of `rows`.
    fn finish(&mut self, key: Vec<u8>, state: State, rows: &RecordBatch, row: usize);
}

/// A replay in progress over batches of stored rows ([`ViewTable::row_fields`]) sorted by
/// join keys, then event time.
pub struct Replay<'a> {
    engine: &'a Engine,
    key_types: Vec<ValueType>,
    key_count: usize,
    /// The key being replayed, its state (`None` when skipped), and its latest row.
    current: Option<(Vec<u8>, Option<State>)>,
    last_rows: Option<RecordBatch>,
}

impl<'a> Replay<'a> {
    pub fn new(engine: &'a Engine, table: &ViewTable) -> Self {
        Self {
            engine,
            key_types: table.join_keys.iter().map(|key| key.value_type).collect(),
            key_count: table.join_keys.len(),
            current: None,
            last_rows: None,
        }
    }

    /// Replays the next batch.
    pub fn feed(&mut self, rows: &RecordBatch, visitor: &mut impl Visitor) {
        if rows.num_rows() == 0 {
            return;
        }
        let key_columns: Vec<&dyn Array> = rows.columns()[..self.key_count]
            .iter()
            .map(AsRef::as_ref)
            .collect();
        let events = self.engine.events_of(rows, self.key_count);
        for (row, event) in events.into_iter().enumerate() {
            let key = key_bytes(&key_columns, &self.key_types, row);
            if self
                .current
                .as_ref()
                .is_none_or(|(current, _)| *current != key)
            {
                self.close(visitor, rows, row);
                let wanted = visitor.start(&key);
                self.current = Some((key, wanted.then(State::default)));
            }
            if let Some((_, Some(state))) = &mut self.current {
                visitor.before(state, event.event_ts);
                state.insert(self.engine, event);
            }
        }
        self.last_rows = Some(rows.clone());
    }

    /// Ends the replay: the last key finishes.
    pub fn end(mut self, visitor: &mut impl Visitor) {
        if let Some(rows) = self.last_rows.take() {
            let after_last = rows.num_rows();
            self.close(visitor, &rows, after_last);
        }
    }

    /// Finishes the current key, whose last row is the one before `next` in `rows` (or the
    /// last row of the previous batch when `next` is 0).
    fn close(&mut self, visitor: &mut impl Visitor, rows: &RecordBatch, next: usize) {
        let Some((key, state)) = self.current.take() else {
            return;
        };
        let Some(state) = state else {
            return;
        };
        match next.checked_sub(1) {
            Some(row) => visitor.finish(key, state, rows, row),
            None => {
                let previous = self
                    .last_rows
                    .clone()
                    .expect("a key began in an earlier batch");
                let row = previous.num_rows() - 1;
                visitor.finish(key, state, &previous, row);
            }
        }
    }
}
