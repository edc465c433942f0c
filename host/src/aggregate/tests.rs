//! The engine against a brute-force oracle of the documented windows, and the two paths
//! (replay of sorted events, online inserts in any order through stored bytes) against
//! each other, bit for bit.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};

use super::*;
use crate::datagen::SplitMix64;
use crate::model::aggregation::Aggregate;
use crate::model::arrow_schema;
use crate::model::within_ttl;

const MINUTE: i64 = 60_000_000;

fn column(name: &str, value_type: ValueType) -> Option<FieldSpec> {
    Some(FieldSpec {
        name: name.into(),
        value_type,
        nullable: true,
    })
}

fn spec() -> AggregationSpec {
    use AggregateFunction::*;
    let amount = column("amount", ValueType::Float64);
    let quantity = column("quantity", ValueType::Int64);
    let country = column("country", ValueType::Utf8);
    let aggregate =
        |name: &str, function, column: &Option<FieldSpec>, minutes: Option<u64>| Aggregate {
            name: name.into(),
            function,
            column: column.clone(),
            window_seconds: minutes.map(|m| m * 60),
        };
    AggregationSpec {
        granularity_seconds: 60,
        allowed_lateness_seconds: 600,
        aggregates: vec![
            aggregate("events_10m", Count, &None, Some(10)),
            aggregate("amounts_1h", Count, &amount, Some(60)),
            aggregate("amount_sum_1h", Sum, &amount, Some(60)),
            aggregate("amount_mean_10m", Mean, &amount, Some(10)),
            aggregate("amount_min_1h", Min, &amount, Some(60)),
            aggregate("amount_max_10m", Max, &amount, Some(10)),
            aggregate("country_last_1h", Last, &country, Some(60)),
            aggregate("countries_1h", CountDistinct, &country, Some(60)),
            aggregate("quantity_sum_ever", Sum, &quantity, None),
            aggregate("quantity_mean_ever", Mean, &quantity, None),
            aggregate("countries_ever", CountDistinct, &country, None),
            aggregate("quantity_max_ever", Max, &quantity, None),
        ],
    }
}

/// Events of one key at increasing, distinct times: gaps up to 5 minutes, some bursts.
fn stream(random: &mut SplitMix64, count: usize) -> Vec<Event> {
    let mut t = 1_700_000_000_000_000 + (random.next_u64() % 1_000_000) as i64;
    (0..count)
        .map(|_| {
            let burst = random.next_u64().is_multiple_of(4);
            t += 1 + (random.next_u64() % if burst { 2_000_000 } else { 5 * MINUTE as u64 }) as i64;
            let amount = match random.next_u64() % 10 {
                0 => Value::Null,
                _ => Value::Float((random.next_u64() % 100_000) as f64 / 7.0 - 1000.0),
            };
            let country = match random.next_u64() % 6 {
                0 => Value::Null,
                n => Value::Text(["US", "FR", "DE", "BR", "JP"][n as usize - 1].into()),
            };
            // In the order of the engine's inputs: amount, country, quantity.
            Event {
                event_ts: t,
                created_ts: t,
                values: vec![amount, country, Value::Int((random.next_u64() % 50) as i64)],
            }
        })
        .collect()
}

/// The documented value of each aggregate at `t`, computed from scratch.
fn oracle(spec: &AggregationSpec, events: &[Event], t: i64) -> Vec<Value> {
    let engine = Engine::new(spec);
    let tile = |micros: i64| micros.div_euclid(spec.granularity_seconds as i64 * 1_000_000);
    spec.aggregates
        .iter()
        .map(|aggregate| {
            let input = aggregate.column.as_ref().map(|c| {
                engine
                    .inputs()
                    .iter()
                    .position(|i| i.name == c.name)
                    .unwrap()
            });
            let in_window = events.iter().filter(|event| {
                event.event_ts <= t
                    && aggregate.window_seconds.is_none_or(|seconds| {
                        let tiles = (seconds / spec.granularity_seconds) as i64;
                        tile(event.event_ts) > tile(t) - tiles
                    })
            });
            let values: Vec<&Value> = match input {
                None => in_window.map(|_| &Value::Null).collect(),
                Some(input) => in_window
                    .map(|event| &event.values[input])
                    .filter(|value| !value.is_null())
                    .collect(),
            };
            let floats = || -> Vec<f64> {
                values
                    .iter()
                    .map(|value| match value {
                        Value::Float(x) => *x,
                        Value::Int(x) => *x as f64,
                        other => panic!("not a number: {other:?}"),
                    })
                    .collect()
            };
            match aggregate.function {
                AggregateFunction::Count => Value::Int(values.len() as i64),
                AggregateFunction::Sum => match aggregate.column.as_ref().unwrap().value_type {
                    ValueType::Int64 => Value::Int(floats().iter().sum::<f64>() as i64),
                    _ => Value::Float(floats().iter().sum()),
                },
                AggregateFunction::Mean if values.is_empty() => Value::Null,
                AggregateFunction::Mean => {
                    Value::Float(floats().iter().sum::<f64>() / values.len() as f64)
                }
                AggregateFunction::Min => values
                    .iter()
                    .min_by(|a, b| a.compare(b))
                    .map_or(Value::Null, |v| (*v).clone()),
                AggregateFunction::Max => values
                    .iter()
                    .max_by(|a, b| a.compare(b))
                    .map_or(Value::Null, |v| (*v).clone()),
                AggregateFunction::Last => values.last().map_or(Value::Null, |v| (*v).clone()),
                AggregateFunction::CountDistinct => {
                    let distinct: std::collections::BTreeSet<Vec<u8>> =
                        values.iter().map(|v| v.key()).collect();
                    Value::Int(distinct.len() as i64)
                }
            }
        })
        .collect()
}

/// Equal bit for bit.
fn same_bits(a: &[Value], b: &[Value]) -> bool {
    a.iter().zip(b).all(|(a, b)| a.key() == b.key()) && a.len() == b.len()
}

/// Equal, floats within 1e-9 relative (sums added in another order).
fn close(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| match (a, b) {
            (Value::Float(a), Value::Float(b)) => {
                (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
            }
            _ => a.key() == b.key(),
        })
}

#[test]
fn states_read_the_documented_windows_at_any_time_after_the_newest_event() {
    let spec = spec();
    let engine = Engine::new(&spec);
    let mut random = SplitMix64(7);
    for _ in 0..20 {
        let events = stream(&mut random, 300);
        let mut state = State::default();
        for (index, event) in events.iter().enumerate() {
            assert_eq!(state.insert(&engine, event.clone()), Inserted::New);
            // Now, and a random moment before the next event (or long after the last).
            let next = events.get(index + 1).map_or(i64::MAX / 2, |e| e.event_ts);
            let later = event.event_ts + (random.next_u64() % 90) as i64 * MINUTE / 60;
            for t in [event.event_ts, later.min(next - 1)] {
                let read = state.read(&engine, t).unwrap();
                let expected = oracle(&spec, &events[..=index], t);
                assert!(close(&read, &expected), "at {t}: {read:?}\n!= {expected:?}");
            }
        }
        // Long after: finite windows empty, lifetime ones intact.
        let t = events.last().unwrap().event_ts + 2 * 60 * MINUTE;
        let read = state.read(&engine, t).unwrap();
        assert_eq!(read[0], Value::Int(0));
        assert_eq!(read[3], Value::Null);
        assert!(close(&read, &oracle(&spec, &events, t)));
    }
}

#[test]
fn events_out_of_order_within_the_lateness_give_the_same_bits_through_stored_bytes() {
    let spec = spec();
    let engine = Engine::new(&spec);
    let mut random = SplitMix64(11);
    for _ in 0..20 {
        let events = stream(&mut random, 400);
        let mut in_order = State::default();
        for event in &events {
            in_order.insert(&engine, event.clone());
        }
        // Shuffle within the lateness: an event is delivered at most 5 minutes after a
        // later one (the lateness is 10), so none is refused.
        let mut arrivals: Vec<(i64, &Event)> = events
            .iter()
            .map(|e| {
                (
                    e.event_ts + (random.next_u64() % (5 * MINUTE as u64)) as i64,
                    e,
                )
            })
            .collect();
        arrivals.sort_by_key(|(arrival, _)| *arrival);
        assert!(
            arrivals
                .windows(2)
                .any(|w| w[0].1.event_ts > w[1].1.event_ts)
        );
        let mut bytes = State::default().encode(&engine);
        for (_, event) in &arrivals {
            let mut state = State::decode(&engine, &bytes).unwrap();
            assert_ne!(state.insert(&engine, (*event).clone()), Inserted::TooLate);
            bytes = state.encode(&engine);
        }
        let online = State::decode(&engine, &bytes).unwrap();
        assert_eq!(online, in_order, "same events, same state");
        let newest = events.last().unwrap().event_ts;
        for offset in [0, MINUTE / 2, 7 * MINUTE, 59 * MINUTE, 600 * MINUTE] {
            let (a, b) = (
                online.read(&engine, newest + offset).unwrap(),
                in_order.read(&engine, newest + offset).unwrap(),
            );
            assert!(same_bits(&a, &b));
        }
    }
}

#[test]
fn too_late_events_are_refused_and_duplicates_follow_the_offline_rule() {
    let spec = spec();
    let engine = Engine::new(&spec);
    let event = |minute: i64, created: i64, amount: f64| Event {
        event_ts: minute * MINUTE,
        created_ts: created,
        values: vec![Value::Float(amount), Value::Null, Value::Int(1)],
    };
    let mut state = State::default();
    assert_eq!(state.insert(&engine, event(100, 0, 1.0)), Inserted::New);
    assert_eq!(state.insert(&engine, event(95, 0, 2.0)), Inserted::New);
    assert_eq!(state.insert(&engine, event(89, 0, 3.0)), Inserted::TooLate);
    assert_eq!(
        state.insert(&engine, event(95, 0, 9.0)),
        Inserted::Unchanged
    );
    assert_eq!(state.insert(&engine, event(95, 5, 4.0)), Inserted::Replaced);
    let read = state.read(&engine, 100 * MINUTE).unwrap();
    assert_eq!(read[0], Value::Int(2));
    assert_eq!(read[2], Value::Float(5.0));
    assert_eq!(state.newest(), Some((100 * MINUTE, 0)));
}

#[test]
fn stored_states_reject_other_specs_and_every_truncation() {
    let spec = spec();
    let engine = Engine::new(&spec);
    let mut state = State::default();
    for event in stream(&mut SplitMix64(3), 50) {
        state.insert(&engine, event);
    }
    let bytes = state.encode(&engine);
    assert_eq!(State::decode(&engine, &bytes).unwrap(), state);
    for end in 0..bytes.len() {
        assert!(
            State::decode(&engine, &bytes[..end]).is_err(),
            "prefix of {end}"
        );
    }
    let mut longer = spec.clone();
    longer.aggregates[0].window_seconds = Some(1200);
    let error = State::decode(&Engine::new(&longer), &bytes).unwrap_err();
    assert!(error.contains("other aggregations"), "{error}");
}

/// Stored rows of one view (keys `user_id`), events sorted by key and time.
fn rows(events: &[(i64, Event)]) -> RecordBatch {
    let fields = vec![
        FieldSpec {
            name: "user_id".into(),
            value_type: ValueType::Int64,
            nullable: false,
        },
        column("event_ts", ValueType::Timestamp).unwrap(),
        column("created_ts", ValueType::Timestamp).unwrap(),
        column("amount", ValueType::Float64).unwrap(),
        column("country", ValueType::Utf8).unwrap(),
        column("quantity", ValueType::Int64).unwrap(),
    ];
    let times = |pick: fn(&Event) -> i64| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(events.iter().map(|(_, e)| pick(e)))
                .with_timezone("UTC"),
        )
    };
    let value = |index: usize| events.iter().map(move |(_, e)| e.values[index].clone());
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(events.iter().map(|(k, _)| *k))),
        times(|e| e.event_ts),
        times(|e| e.created_ts),
        Arc::new(Float64Array::from_iter(value(0).map(|v| match v {
            Value::Float(x) => Some(x),
            _ => None,
        }))),
        Arc::new(StringArray::from_iter(value(1).map(|v| match v {
            Value::Text(x) => Some(x),
            _ => None,
        }))),
        Arc::new(Int64Array::from_iter(value(2).map(|v| match v {
            Value::Int(x) => Some(x),
            _ => None,
        }))),
    ];
    RecordBatch::try_new(arrow_schema(&fields), columns).unwrap()
}

#[test]
fn the_replayed_join_equals_each_key_state_read_at_the_row_time() {
    let spec = spec();
    let engine = Engine::new(&spec);
    let table = ViewTable::new(
        "p",
        "v",
        vec![column("user_id", ValueType::Int64).unwrap()],
        engine.inputs().to_vec(),
        Some(3 * 3600),
        None,
    )
    .aggregated(Some(spec.clone()));
    let mut random = SplitMix64(5);
    let streams: Vec<Vec<Event>> = (0..6).map(|_| stream(&mut random, 200)).collect();
    let sorted: Vec<(i64, Event)> = streams
        .iter()
        .enumerate()
        .flat_map(|(key, events)| events.iter().map(move |e| (key as i64, e.clone())))
        .collect();
    // Entity rows: random keys (one unknown) and times around the events, in random order.
    let entity_rows: Vec<(i64, i64)> = (0..500)
        .map(|_| {
            let key = (random.next_u64() % 7) as i64;
            let base = streams[(key % 6) as usize][(random.next_u64() % 200) as usize].event_ts;
            let jitter = (random.next_u64() % (8 * 60)) as i64 * MINUTE / 60 - 2 * MINUTE;
            (key, base + jitter)
        })
        .collect();
    let key_type = [ValueType::Int64];
    let keys: Vec<Vec<u8>> = entity_rows
        .iter()
        .map(|(key, _)| {
            let column = Int64Array::from(vec![*key]);
            key_bytes(&[&column], &key_type, 0)
        })
        .collect();
    let times: Vec<i64> = entity_rows.iter().map(|(_, t)| *t).collect();
    let mut join = PointInTime::new(&engine, table.ttl_seconds, keys, &times);
    let mut replay = Replay::new(&engine, &table);
    let all = rows(&sorted);
    for start in (0..all.num_rows()).step_by(97) {
        replay.feed(&all.slice(start, 97.min(all.num_rows() - start)), &mut join);
    }
    replay.end(&mut join);
    let (columns, _) = join.finish();
    let mut nulls = 0;
    for (row, (key, t)) in entity_rows.iter().enumerate() {
        let expected = streams.get(*key as usize).and_then(|events| {
            let seen: Vec<Event> = events
                .iter()
                .filter(|e| e.event_ts <= *t)
                .cloned()
                .collect();
            let newest = seen.last()?.event_ts;
            within_ttl(newest, *t, table.ttl_seconds).then(|| {
                let mut state = State::default();
                seen.into_iter().for_each(|e| {
                    state.insert(&engine, e);
                });
                state.read(&engine, *t).unwrap()
            })
        });
        let got: Vec<Value> = columns
            .iter()
            .zip(engine.outputs())
            .map(|(column, output)| Value::read(column.as_ref(), output.value_type, row))
            .collect();
        match expected {
            None => {
                nulls += 1;
                assert!(got.iter().all(Value::is_null), "row {row}: {got:?}");
            }
            Some(expected) => assert!(same_bits(&got, &expected), "row {row}"),
        }
    }
    assert!(nulls > 20 && nulls < 400, "{nulls} null rows");
}
