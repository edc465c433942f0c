//! Time-window aggregations, one engine for both paths: the offline join replays a key's
//! stored events in time order into a [`State`] and reads it at each entity row's time; the
//! online path keeps the same [`State`] per key in the online store, inserts pushed events
//! and reads it at now. Same steps, same bits.
//!
//! Time is cut into tiles of the view's granularity. A key's events stay raw while events
//! as late as the allowed lateness may still arrive among them; then each tile is folded,
//! in event-time order, into one partial per aggregate. A window's value is the merge, oldest
//! tile first, of the partials of its tiles (see [`AggregationSpec`] for which tiles). Tiles
//! older than the longest window are dropped, or folded into a base for lifetime aggregates.
//! Since every step depends only on which events a key has, not on the order they came in,
//! events arriving out of order (within the lateness) give the same bits as in order.

mod codec;
mod join;
mod partial;
mod replay;
mod state;
mod value;

pub use join::PointInTime;
pub use replay::{Replay, Visitor};
pub use state::{Event, Inserted, State};
pub use value::Value;

use arrow::array::{Array, ArrayRef, RecordBatch};

use crate::model::aggregation::{AggregateFunction, AggregationSpec};
use crate::model::{Digest, FieldSpec, ValueType, ViewTable};
use partial::Partial;

const MICROS_PER_SECOND: i64 = 1_000_000;

/// One aggregate, compiled.
#[derive(Debug, Clone)]
struct Compiled {
    function: AggregateFunction,
    /// Index of its column among the engine's inputs; `None` counts events.
    input: Option<usize>,
    input_type: Option<ValueType>,
    /// The window in tiles; `None` for the lifetime.
    window_tiles: Option<i64>,
}

/// A view's aggregations, ready to run.
#[derive(Debug, Clone)]
pub struct Engine {
    /// Tile size, µs.
    granularity: i64,
    /// Allowed lateness, µs.
    lateness: i64,
    aggregates: Vec<Compiled>,
    inputs: Vec<FieldSpec>,
    outputs: Vec<FieldSpec>,
    /// Tiles kept behind the newest event's tile: the longest finite window.
    retention_tiles: i64,
    /// Whether some aggregate covers the lifetime.
    lifetime: bool,
    /// Identifies the spec in stored states, so a state is never read by other
    /// aggregations.
    fingerprint: u64,
}

impl Engine {
    pub fn new(spec: &AggregationSpec) -> Engine {
        let inputs = spec.inputs();
        let granularity = spec.granularity_seconds as i64 * MICROS_PER_SECOND;
        let aggregates = spec
            .aggregates
            .iter()
            .map(|aggregate| Compiled {
                function: aggregate.function,
                input: aggregate.column.as_ref().map(|column| {
                    inputs
                        .iter()
                        .position(|input| input.name == column.name)
                        .expect("inputs are the aggregates' columns")
                }),
                input_type: aggregate.column.as_ref().map(|column| column.value_type),
                window_tiles: aggregate
                    .window_seconds
                    .map(|seconds| (seconds / spec.granularity_seconds) as i64),
            })
            .collect();
        let identity = serde_json::to_vec(spec).expect("a spec serializes");
        let digest = Digest::of(&identity);
        let fingerprint = u64::from_le_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes"));
        Engine {
            granularity,
            lateness: spec.allowed_lateness_seconds as i64 * MICROS_PER_SECOND,
            aggregates,
            outputs: spec.outputs(),
            inputs,
            retention_tiles: (spec.longest_window_seconds() / spec.granularity_seconds) as i64,
            lifetime: spec.has_lifetime(),
            fingerprint,
        }
    }

    /// The engine of an aggregated view's table.
    pub fn of(table: &ViewTable) -> Option<Engine> {
        table.aggregation.as_ref().map(Engine::new)
    }

    /// The aggregated columns an event carries, in order.
    pub fn inputs(&self) -> &[FieldSpec] {
        &self.inputs
    }

    /// The aggregates' features, in order.
    pub fn outputs(&self) -> &[FieldSpec] {
        &self.outputs
    }

    /// The tile of a time (µs).
    fn tile(&self, micros: i64) -> i64 {
        micros.div_euclid(self.granularity)
    }

    fn empty_one(&self, index: usize) -> Partial {
        let aggregate = &self.aggregates[index];
        Partial::empty(aggregate.function, aggregate.input_type)
    }

    fn empty(&self) -> Vec<Partial> {
        (0..self.aggregates.len())
            .map(|index| self.empty_one(index))
            .collect()
    }

    /// The partials of events in time order.
    fn fold(&self, events: &[Event]) -> Vec<Partial> {
        let mut partials = self.empty();
        for event in events {
            for (partial, aggregate) in partials.iter_mut().zip(&self.aggregates) {
                partial.add(aggregate.input.map(|input| &event.values[input]));
            }
        }
        partials
    }

    /// Events in time order, cut into runs of one tile each.
    fn group_by_tile<'a>(&self, events: &'a [Event]) -> Vec<(i64, &'a [Event])> {
        let mut groups = Vec::new();
        let mut start = 0;
        while start < events.len() {
            let tile = self.tile(events[start].event_ts);
            let end =
                start + events[start..].partition_point(|event| self.tile(event.event_ts) == tile);
            groups.push((tile, &events[start..end]));
            start = end;
        }
        groups
    }

    /// The events of stored rows (the layout of [`ViewTable::row_fields`] of an aggregated
    /// view's table, whose first `keys` columns are join keys), in row order.
    pub fn events_of(&self, rows: &RecordBatch, keys: usize) -> Vec<Event> {
        let columns = rows.columns();
        let times = |index: usize| {
            columns[index]
                .as_any()
                .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
                .expect("event and created times are timestamps")
        };
        let (event_ts, created_ts) = (times(keys), times(keys + 1));
        let inputs: Vec<(&ArrayRef, ValueType)> = self
            .inputs
            .iter()
            .map(|input| {
                let index = rows
                    .schema()
                    .index_of(&input.name)
                    .expect("stored rows carry every input");
                (&columns[index], input.value_type)
            })
            .collect();
        (0..rows.num_rows())
            .map(|row| Event {
                event_ts: event_ts.value(row),
                created_ts: created_ts.value(row),
                values: inputs
                    .iter()
                    .map(|(column, value_type)| Value::read(column.as_ref(), *value_type, row))
                    .collect(),
            })
            .collect()
    }
}

/// The bytes of a key's join-key values in row `row` of `columns`: equal exactly for equal
/// keys.
pub fn key_bytes(columns: &[&dyn Array], types: &[ValueType], row: usize) -> Vec<u8> {
    let mut key = Vec::new();
    for (column, value_type) in columns.iter().zip(types) {
        key.extend(Value::read(*column, *value_type, row).key());
    }
    key
}

#[cfg(test)]
mod tests;
