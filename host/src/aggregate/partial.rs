//! The partial result of one aggregate over some events (a tile, a window, the lifetime):
//! values are added in event order and partials merged oldest first, so both paths, doing
//! the same steps, get the same bits.

use std::collections::BTreeSet;

use super::codec::{Reader, Writer};
use super::value::Value;
use crate::model::ValueType;
use crate::model::aggregation::AggregateFunction;

/// One aggregate's partial result.
#[derive(Debug, Clone, PartialEq)]
pub enum Partial {
    Count(i64),
    SumInt(i64),
    SumFloat(f64),
    Mean { sum: f64, count: i64 },
    Min(Option<Value>),
    Max(Option<Value>),
    Last(Option<Value>),
    Distinct(BTreeSet<Vec<u8>>),
}

impl Partial {
    /// The partial of no events for `function` over a column of type `input`.
    pub fn empty(function: AggregateFunction, input: Option<ValueType>) -> Partial {
        match function {
            AggregateFunction::Count => Partial::Count(0),
            AggregateFunction::Sum if input == Some(ValueType::Float64) => Partial::SumFloat(0.0),
            AggregateFunction::Sum => Partial::SumInt(0),
            AggregateFunction::Mean => Partial::Mean { sum: 0.0, count: 0 },
            AggregateFunction::Min => Partial::Min(None),
            AggregateFunction::Max => Partial::Max(None),
            AggregateFunction::Last => Partial::Last(None),
            AggregateFunction::CountDistinct => Partial::Distinct(BTreeSet::new()),
        }
    }

    /// Adds the next event's value (`None`: the aggregate reads no column, it counts
    /// events). Nulls count for nothing.
    pub fn add(&mut self, value: Option<&Value>) {
        let Some(value) = value else {
            if let Partial::Count(count) = self {
                *count += 1;
            }
            return;
        };
        if value.is_null() {
            return;
        }
        match self {
            Partial::Count(count) => *count += 1,
            Partial::SumInt(sum) => {
                if let Value::Int(value) = value {
                    *sum = sum.wrapping_add(*value);
                }
            }
            Partial::SumFloat(sum) => {
                if let Value::Float(value) = value {
                    *sum += value;
                }
            }
            Partial::Mean { sum, count } => {
                match value {
                    Value::Int(value) => *sum += *value as f64,
                    Value::Float(value) => *sum += value,
                    _ => return,
                }
                *count += 1;
            }
            Partial::Min(best) => {
                if best.as_ref().is_none_or(|best| value.compare(best).is_lt()) {
                    *best = Some(value.clone());
                }
            }
            Partial::Max(best) => {
                if best.as_ref().is_none_or(|best| value.compare(best).is_gt()) {
                    *best = Some(value.clone());
                }
            }
            Partial::Last(last) => *last = Some(value.clone()),
            Partial::Distinct(seen) => {
                seen.insert(value.key());
            }
        }
    }

    /// Merges the partial of later events into this one.
    pub fn merge(&mut self, later: &Partial) {
        match (self, later) {
            (Partial::Count(a), Partial::Count(b)) => *a += b,
            (Partial::SumInt(a), Partial::SumInt(b)) => *a = a.wrapping_add(*b),
            (Partial::SumFloat(a), Partial::SumFloat(b)) => *a += b,
            (Partial::Mean { sum, count }, Partial::Mean { sum: s, count: c }) => {
                *sum += s;
                *count += c;
            }
            (Partial::Min(a), Partial::Min(Some(b))) => {
                if a.as_ref().is_none_or(|a| b.compare(a).is_lt()) {
                    *a = Some(b.clone());
                }
            }
            (Partial::Max(a), Partial::Max(Some(b))) => {
                if a.as_ref().is_none_or(|a| b.compare(a).is_gt()) {
                    *a = Some(b.clone());
                }
            }
            (Partial::Last(a), Partial::Last(Some(b))) => *a = Some(b.clone()),
            (Partial::Distinct(a), Partial::Distinct(b)) => a.extend(b.iter().cloned()),
            (Partial::Min(_) | Partial::Max(_) | Partial::Last(_), _) => {}
            (this, later) => unreachable!("partials of one aggregate: {this:?} and {later:?}"),
        }
    }

    /// The aggregate's value.
    pub fn finish(&self) -> Value {
        match self {
            Partial::Count(count) | Partial::SumInt(count) => Value::Int(*count),
            Partial::SumFloat(sum) => Value::Float(*sum),
            Partial::Mean { count: 0, .. } => Value::Null,
            Partial::Mean { sum, count } => Value::Float(sum / *count as f64),
            Partial::Min(value) | Partial::Max(value) | Partial::Last(value) => {
                value.clone().unwrap_or(Value::Null)
            }
            Partial::Distinct(seen) => Value::Int(seen.len() as i64),
        }
    }

    pub(super) fn encode(&self, out: &mut Writer) {
        match self {
            Partial::Count(count) => {
                out.u8(0);
                out.i64(*count);
            }
            Partial::SumInt(sum) => {
                out.u8(1);
                out.i64(*sum);
            }
            Partial::SumFloat(sum) => {
                out.u8(2);
                out.u64(sum.to_bits());
            }
            Partial::Mean { sum, count } => {
                out.u8(3);
                out.u64(sum.to_bits());
                out.i64(*count);
            }
            Partial::Min(value) | Partial::Max(value) | Partial::Last(value) => {
                out.u8(match self {
                    Partial::Min(_) => 4,
                    Partial::Max(_) => 5,
                    _ => 6,
                });
                value.as_ref().unwrap_or(&Value::Null).encode(out);
            }
            Partial::Distinct(seen) => {
                out.u8(7);
                out.len(seen.len());
                for key in seen {
                    out.bytes(key);
                }
            }
        }
    }

    pub(super) fn decode(input: &mut Reader<'_>) -> Result<Partial, String> {
        let optional = |input: &mut Reader<'_>| -> Result<Option<Value>, String> {
            let value = Value::decode(input)?;
            Ok((!value.is_null()).then_some(value))
        };
        Ok(match input.u8()? {
            0 => Partial::Count(input.i64()?),
            1 => Partial::SumInt(input.i64()?),
            2 => Partial::SumFloat(f64::from_bits(input.u64()?)),
            3 => Partial::Mean {
                sum: f64::from_bits(input.u64()?),
                count: input.i64()?,
            },
            4 => Partial::Min(optional(input)?),
            5 => Partial::Max(optional(input)?),
            6 => Partial::Last(optional(input)?),
            7 => {
                let len = input.len()?;
                let mut seen = BTreeSet::new();
                for _ in 0..len {
                    seen.insert(input.bytes()?.to_vec());
                }
                Partial::Distinct(seen)
            }
            tag => return Err(format!("unknown partial tag {tag}")),
        })
    }
}
