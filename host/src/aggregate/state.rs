//! One entity's aggregation state: its recent events, raw while late events may still
//! arrive, then folded into closed tiles, then (for lifetime aggregates) into a base. The
//! online store keeps it per key and pushes update it; the offline join builds it from the
//! stored events in time order. Both read it with [`State::read`].

use std::collections::VecDeque;

use super::Engine;
use super::codec::{Reader, Writer};
use super::partial::Partial;
use super::value::Value;

/// Version of the stored state layout.
const FORMAT: u8 = 1;

/// One event: its times and the values of the engine's input columns, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_ts: i64,
    pub created_ts: i64,
    pub values: Vec<Value>,
}

/// What [`State::insert`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A new event time for the key.
    New,
    /// Replaced the event of the same time, which had an older created time.
    Replaced,
    /// An event of the same time with a created time as new or newer is kept.
    Unchanged,
    /// Older than the key's newest event by more than the allowed lateness: refused.
    TooLate,
}

impl Inserted {
    /// Whether the state changed.
    pub fn changed(self) -> bool {
        matches!(self, Inserted::New | Inserted::Replaced)
    }
}

/// The aggregation state of one entity.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct State {
    /// Event and created time of the newest event.
    newest: Option<(i64, i64)>,
    /// Lifetime aggregates over tiles older than every finite window, folded oldest first
    /// (the other aggregates' entries stay empty).
    base: Option<Vec<Partial>>,
    /// Closed tiles, by increasing tile number: no event can arrive in them any more.
    tiles: VecDeque<(i64, Vec<Partial>)>,
    /// Events of the tiles still open to late events, by increasing event time (one per
    /// event time).
    open: Vec<Event>,
}

impl State {
    /// Event and created time of the newest event, if any.
    pub fn newest(&self) -> Option<(i64, i64)> {
        self.newest
    }

    /// Adds an event (whose values follow [`Engine::inputs`]). Events of one key are
    /// identified by their event time: a second event at the same time replaces the first
    /// only if created later, as in the offline store.
    pub fn insert(&mut self, engine: &Engine, event: Event) -> Inserted {
        if let Some((newest, _)) = self.newest
            && event.event_ts < newest.saturating_sub(engine.lateness)
        {
            return Inserted::TooLate;
        }
        let order = (event.event_ts, event.created_ts);
        let inserted = match self
            .open
            .binary_search_by_key(&event.event_ts, |open| open.event_ts)
        {
            Ok(index) if self.open[index].created_ts < event.created_ts => {
                self.open[index] = event;
                Inserted::Replaced
            }
            Ok(_) => return Inserted::Unchanged,
            Err(index) => {
                self.open.insert(index, event);
                Inserted::New
            }
        };
        if self.newest.is_none_or(|newest| order > newest) {
            self.newest = Some(order);
        }
        self.settle(engine);
        inserted
    }

    /// Closes the tiles late events can no longer reach and retires the tiles every finite
    /// window has left.
    fn settle(&mut self, engine: &Engine) {
        let Some((newest, _)) = self.newest else {
            return;
        };
        let first_open = engine.tile(newest.saturating_sub(engine.lateness));
        let closing = self
            .open
            .partition_point(|event| engine.tile(event.event_ts) < first_open);
        if closing > 0 {
            let closed: Vec<Event> = self.open.drain(..closing).collect();
            for (tile, events) in engine.group_by_tile(&closed) {
                self.tiles.push_back((tile, engine.fold(events)));
            }
        }
        let kept_from = engine.tile(newest) - engine.retention_tiles + 1;
        while let Some((tile, _)) = self.tiles.front()
            && *tile < kept_from
        {
            let (_, partials) = self.tiles.pop_front().expect("a front tile");
            if engine.lifetime {
                let base = self.base.get_or_insert_with(|| engine.empty());
                for (index, aggregate) in engine.aggregates.iter().enumerate() {
                    if aggregate.window_tiles.is_none() {
                        base[index].merge(&partials[index]);
                    }
                }
            }
        }
    }

    /// Every aggregate as of time `t` (µs), in the engine's order; `None` when the key has
    /// no event. Exact for any `t` at or after the newest event; earlier, the tiles already
    /// folded away are missing.
    pub fn read(&self, engine: &Engine, t: i64) -> Option<Vec<Value>> {
        self.newest?;
        let now_tile = engine.tile(t);
        let visible = self.open.partition_point(|event| event.event_ts <= t);
        let open: Vec<(i64, Vec<Partial>)> = engine
            .group_by_tile(&self.open[..visible])
            .into_iter()
            .map(|(tile, events)| (tile, engine.fold(events)))
            .collect();
        let values = engine
            .aggregates
            .iter()
            .enumerate()
            .map(|(index, aggregate)| {
                let mut value = match (&self.base, aggregate.window_tiles) {
                    (Some(base), None) => base[index].clone(),
                    _ => engine.empty_one(index),
                };
                let first = aggregate
                    .window_tiles
                    .map_or(i64::MIN, |tiles| now_tile - tiles + 1);
                // Both runs are sorted by tile: skip to the window's first, stop after now's.
                let closed = self
                    .tiles
                    .range(self.tiles.partition_point(|(t, _)| *t < first)..);
                let open = open[open.partition_point(|(t, _)| *t < first)..].iter();
                for (_, partials) in closed.chain(open).take_while(|(t, _)| *t <= now_tile) {
                    value.merge(&partials[index]);
                }
                value.finish()
            })
            .collect();
        Some(values)
    }

    /// The state's bytes (format version, the engine's fingerprint, then the state).
    pub fn encode(&self, engine: &Engine) -> Vec<u8> {
        let mut out = Writer::default();
        out.u8(FORMAT);
        out.u64(engine.fingerprint);
        match self.newest {
            None => out.u8(0),
            Some((event_ts, created_ts)) => {
                out.u8(1);
                out.i64(event_ts);
                out.i64(created_ts);
            }
        }
        match &self.base {
            None => out.u8(0),
            Some(base) => {
                out.u8(1);
                base.iter().for_each(|partial| partial.encode(&mut out));
            }
        }
        out.len(self.tiles.len());
        for (tile, partials) in &self.tiles {
            out.i64(*tile);
            partials.iter().for_each(|partial| partial.encode(&mut out));
        }
        out.len(self.open.len());
        for event in &self.open {
            out.i64(event.event_ts);
            out.i64(event.created_ts);
            event.values.iter().for_each(|value| value.encode(&mut out));
        }
        out.into_bytes()
    }

    /// Reads what [`State::encode`] wrote with the same engine; anything else is an error.
    pub fn decode(engine: &Engine, bytes: &[u8]) -> Result<State, String> {
        let mut input = Reader::new(bytes);
        let format = input.u8()?;
        if format != FORMAT {
            return Err(format!("unknown aggregation state format {format}"));
        }
        if input.u64()? != engine.fingerprint {
            return Err("the state was written for other aggregations".to_owned());
        }
        let partials = |input: &mut Reader<'_>| -> Result<Vec<Partial>, String> {
            let partials = (0..engine.aggregates.len())
                .map(|_| Partial::decode(input))
                .collect::<Result<Vec<_>, _>>()?;
            for (index, partial) in partials.iter().enumerate() {
                if std::mem::discriminant(partial)
                    != std::mem::discriminant(&engine.empty_one(index))
                {
                    return Err(format!("aggregate {index} has a partial of another kind"));
                }
            }
            Ok(partials)
        };
        let newest = match input.u8()? {
            0 => None,
            _ => Some((input.i64()?, input.i64()?)),
        };
        let base = match input.u8()? {
            0 => None,
            _ => Some(partials(&mut input)?),
        };
        let tile_count = input.len()?;
        let mut tiles = VecDeque::with_capacity(tile_count);
        for _ in 0..tile_count {
            let tile = input.i64()?;
            tiles.push_back((tile, partials(&mut input)?));
        }
        let open_count = input.len()?;
        let mut open = Vec::with_capacity(open_count);
        for _ in 0..open_count {
            let event_ts = input.i64()?;
            let created_ts = input.i64()?;
            let values = (0..engine.inputs.len())
                .map(|_| Value::decode(&mut input))
                .collect::<Result<Vec<_>, _>>()?;
            open.push(Event {
                event_ts,
                created_ts,
                values,
            });
        }
        if !input.is_empty() {
            return Err("trailing bytes after the aggregation state".to_owned());
        }
        Ok(State {
            newest,
            base,
            tiles,
            open,
        })
    }
}
