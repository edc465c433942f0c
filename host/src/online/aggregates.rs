//! Aggregated views in the online store: one aggregation [`State`] per key, stored behind
//! the same order prefix as a row (its newest event's times). Pushes insert events by
//! compare-and-set, retried with jittered backoff on a conflict until a deadline (then
//! [`OnlineError::Conflict`], never unavailability), so concurrent writers never lose an
//! event; materialization replaces a state unless the stored one has a newer event; reads
//! evaluate the state at the time asked.

use arrow::array::{Array, RecordBatch};

use super::backoff::Backoff;
use super::codec::{self, ORDER_LEN};
use super::{CompareAndSet, OnlineError, OnlineRows, OnlineStore};
use crate::aggregate::{Engine, Event, Inserted, State};
use crate::columnar::ColumnBuilder;
use crate::model::ViewTable;

/// How many of the store's round-trip timeouts rounds of read, update and compare-and-set
/// may take before contention is reported.
const CONFLICT_TIMEOUTS: u32 = 4;

/// How long a read-modify-write keeps retrying against other writers.
fn conflict_budget(store: &dyn OnlineStore) -> std::time::Duration {
    store.timeout() * CONFLICT_TIMEOUTS
}

/// The error for keys still changed by other writers when the budget ran out.
fn conflict(table: &ViewTable, keys: usize, store: &dyn OnlineStore) -> OnlineError {
    OnlineError::Conflict(format!(
        "view `{}`: {keys} keys were changed by other writers throughout {} ms; retry",
        table.view,
        conflict_budget(store).as_millis()
    ))
}

/// What inserting events into the online states did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertedEvents {
    /// Events that changed a state (new, or replacing one created earlier).
    pub inserted: u64,
    /// States written.
    pub keys: u64,
    /// Rows (of the batch given) refused as later than the allowed lateness.
    pub too_late: Vec<usize>,
}

/// Inserts stored rows of an aggregated view (its [`ViewTable::row_fields`], sorted by keys
/// and event time with one row per key and time, as `crate::offline::prepare_rows` leaves
/// them) into their keys' states.
pub async fn insert_events(
    store: &dyn OnlineStore,
    table: &ViewTable,
    engine: &Engine,
    rows: &RecordBatch,
) -> Result<InsertedEvents, OnlineError> {
    let groups = key_runs(table, engine, rows)?;
    let mut done = InsertedEvents::default();
    let mut pending: Vec<usize> = (0..groups.len()).collect();
    let mut backoff = Backoff::new(conflict_budget(store));
    loop {
        let wanted: Vec<Vec<u8>> = pending.iter().map(|&g| groups[g].0.clone()).collect();
        let stored = store.get(&wanted).await?;
        let mut writes = Vec::new();
        let mut outcomes = Vec::new();
        for (&group, stored) in pending.iter().zip(stored) {
            let (key, first_row, events) = &groups[group];
            let mut state = decode(table, engine, key, stored.as_deref())?;
            let mut inserted = 0;
            let mut too_late = Vec::new();
            for (offset, event) in events.iter().enumerate() {
                match state.insert(engine, event.clone()) {
                    Inserted::TooLate => too_late.push(first_row + offset),
                    outcome if outcome.changed() => inserted += 1,
                    _ => {}
                }
            }
            if inserted > 0 {
                writes.push(CompareAndSet {
                    key: key.clone(),
                    expected: stored,
                    value: encode(engine, &state),
                });
            }
            outcomes.push((group, inserted, too_late, inserted > 0));
        }
        let set = store.compare_and_set(&writes).await?;
        let mut results = set.into_iter();
        let mut retry = Vec::new();
        for (group, inserted, too_late, wrote) in outcomes {
            if wrote && !results.next().expect("one answer per write") {
                retry.push(group);
                continue;
            }
            done.inserted += inserted;
            done.keys += u64::from(wrote);
            done.too_late.extend(too_late);
        }
        pending = retry;
        if pending.is_empty() {
            return Ok(done);
        }
        if !backoff.wait().await {
            return Err(conflict(table, pending.len(), store));
        }
    }
}

/// The rows (of stored rows prepared as for [`insert_events`]) that the stored states
/// would refuse as later than the allowed lateness. A push asks before it writes the
/// offline store, so a refused event reaches neither store.
pub async fn late_events(
    store: &dyn OnlineStore,
    table: &ViewTable,
    engine: &Engine,
    rows: &RecordBatch,
) -> Result<Vec<usize>, OnlineError> {
    let groups = key_runs(table, engine, rows)?;
    let keys: Vec<Vec<u8>> = groups.iter().map(|(key, _, _)| key.clone()).collect();
    let stored = store.get(&keys).await?;
    let mut late = Vec::new();
    for ((key, first_row, events), stored) in groups.iter().zip(stored) {
        let mut state = decode(table, engine, key, stored.as_deref())?;
        for (offset, event) in events.iter().enumerate() {
            if matches!(state.insert(engine, event.clone()), Inserted::TooLate) {
                late.push(first_row + offset);
            }
        }
    }
    Ok(late)
}

/// One key's events among stored rows: the key, its first row, its events in row order.
type KeyRun = (Vec<u8>, usize, Vec<Event>);

/// The events of stored rows in runs of one key.
fn key_runs(
    table: &ViewTable,
    engine: &Engine,
    rows: &RecordBatch,
) -> Result<Vec<KeyRun>, OnlineError> {
    let key_count = table.join_keys.len();
    let key_columns: Vec<&dyn Array> = rows.columns()[..key_count]
        .iter()
        .map(AsRef::as_ref)
        .collect();
    let keys = codec::entity_keys(table, &key_columns)?;
    let events = engine.events_of(rows, key_count);
    let mut groups: Vec<KeyRun> = Vec::new();
    for (row, (key, event)) in keys.into_iter().zip(events).enumerate() {
        match groups.last_mut() {
            Some((last, _, events)) if *last == key => events.push(event),
            _ => groups.push((key, row, vec![event])),
        }
    }
    Ok(groups)
}

/// Writes whole states (a rebuild from the offline events), each unless the stored state
/// of its key has a newer event. Returns how many were written.
pub async fn write_states(
    store: &dyn OnlineStore,
    table: &ViewTable,
    engine: &Engine,
    states: &[(Vec<u8>, State)],
) -> Result<u64, OnlineError> {
    let mut written = 0;
    let mut pending: Vec<usize> = (0..states.len()).collect();
    let mut backoff = Backoff::new(conflict_budget(store));
    while !pending.is_empty() {
        let keys: Vec<Vec<u8>> = pending.iter().map(|&i| states[i].0.clone()).collect();
        let stored = store.get(&keys).await?;
        let mut writes = Vec::new();
        let mut indices = Vec::new();
        for (&index, stored) in pending.iter().zip(stored) {
            let (key, state) = &states[index];
            let current = decode(table, engine, key, stored.as_deref())?;
            if current.newest() > state.newest() {
                continue;
            }
            writes.push(CompareAndSet {
                key: key.clone(),
                expected: stored,
                value: encode(engine, state),
            });
            indices.push(index);
        }
        let set = store.compare_and_set(&writes).await?;
        pending = Vec::new();
        for (index, set) in indices.into_iter().zip(set) {
            if set {
                written += 1;
            } else {
                pending.push(index);
            }
        }
        if !pending.is_empty() && !backoff.wait().await {
            return Err(conflict(table, pending.len(), store));
        }
    }
    Ok(written)
}

/// The online key of row `row` of stored rows' join-key columns.
pub fn key_of(table: &ViewTable, rows: &RecordBatch, row: usize) -> Result<Vec<u8>, OnlineError> {
    let columns: Vec<arrow::array::ArrayRef> = rows.columns()[..table.join_keys.len()]
        .iter()
        .map(|column| column.slice(row, 1))
        .collect();
    let columns: Vec<&dyn Array> = columns.iter().map(AsRef::as_ref).collect();
    let mut keys = codec::entity_keys(table, &columns)?;
    Ok(keys.pop().expect("one row, one key"))
}

/// The aggregates of the states stored under `keys`, as of `now` (µs).
pub(super) fn decode_states(
    table: &ViewTable,
    engine: &Engine,
    keys: &[Vec<u8>],
    values: &[Option<Vec<u8>>],
    now: i64,
) -> Result<OnlineRows, OnlineError> {
    let mut builders: Vec<ColumnBuilder> = engine
        .outputs()
        .iter()
        .map(|output| ColumnBuilder::new(output.value_type))
        .collect();
    let mut rows = OnlineRows::with_capacity(values.len());
    for (key, value) in keys.iter().zip(values) {
        let state = decode(table, engine, key, value.as_deref())?;
        match (state.newest(), state.read(engine, now)) {
            (Some((event_ts, created_ts)), Some(aggregates)) => {
                for (builder, value) in builders.iter_mut().zip(&aggregates) {
                    value.append_to(builder);
                }
                rows.push_found(event_ts, created_ts, table.transform);
            }
            _ => {
                builders.iter_mut().for_each(ColumnBuilder::null);
                rows.push_missing();
            }
        }
    }
    rows.features = builders.into_iter().map(ColumnBuilder::finish).collect();
    Ok(rows)
}

/// The state stored under `key` (an empty one when none is).
fn decode(
    table: &ViewTable,
    engine: &Engine,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<State, OnlineError> {
    let Some(value) = value else {
        return Ok(State::default());
    };
    let corrupt = |message: String| {
        OnlineError::Corrupt(format!(
            "key `{}` of view `{}`: {message}",
            String::from_utf8_lossy(key),
            table.view
        ))
    };
    if value.len() < ORDER_LEN {
        return Err(corrupt("shorter than its order prefix".to_owned()));
    }
    State::decode(engine, &value[ORDER_LEN..]).map_err(corrupt)
}

/// A state's stored bytes: the order prefix of its newest event, then the state.
fn encode(engine: &Engine, state: &State) -> Vec<u8> {
    let (event_ts, created_ts) = state.newest().unwrap_or((i64::MIN, i64::MIN));
    let mut value = codec::order_prefix(event_ts, created_ts).to_vec();
    value.extend(state.encode(engine));
    value
}
