//! The bytes every online backend stores: entity keys (`{table}:{join keys}` under the store's
//! `{namespace}:`) and values (an order prefix whose byte order is the numeric order of
//! `(event_ts, created_ts)`, then a versioned binary body with the transform digest and the
//! features).

use arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};

use super::OnlineError;
use crate::columnar::ColumnBuilder;
use crate::model::arrow_type;
use crate::model::{Digest, FieldSpec, ValueType, ViewTable};

/// Length of a value's order prefix: 16 hex digits of `event_ts`, 16 of `created_ts`.
pub const ORDER_LEN: usize = 32;

/// The layout of the body after the order prefix; bump it when the layout changes.
const FORMAT_VERSION: u8 = 1;

/// Characters that end a namespace, a table name or the hash tag: never inside one.
const RESERVED: [char; 3] = [':', '{', '}'];

/// Why `namespace` cannot prefix keys, if it cannot: it must be non-empty and free of `:`,
/// `{` and `}`.
pub fn check_namespace(namespace: &str) -> Result<(), String> {
    if namespace.is_empty() {
        return Err("the online namespace is empty".into());
    }
    if namespace.contains(RESERVED) {
        return Err(format!(
            "the online namespace `{namespace}` contains `:`, `{{` or `}}`"
        ));
    }
    Ok(())
}

/// `{namespace}:`: what a store puts before every key it is given.
pub fn namespace_prefix(namespace: &str) -> Vec<u8> {
    format!("{namespace}:").into_bytes()
}

/// `{table}:`: the prefix of every key of `table` below the namespace.
pub fn table_prefix(table: &ViewTable) -> Vec<u8> {
    format!("{}:", table.name).into_bytes()
}

/// The keys of `table`'s entities, one per row of its join-key `columns` (one array per join
/// key, in order): `{table}:{v1,v2}`. The braces make the join-key values the Redis Cluster
/// hash tag, so every key of the same key values (the same user in every view, view version
/// and namespace) lives in one slot, and one entity's views are read from one node; so do
/// other entities whose values are spelled the same (user 42 and movie 42), which only groups
/// them. Int64
/// values are decimal; in utf8 values `%`, `:`, `{`, `}` and `,` are percent-encoded, so two
/// different values never give the same key and the tag never ends early; `,` separates the
/// values of several join keys. A null value is an input error.
pub fn entity_keys(table: &ViewTable, columns: &[&dyn Array]) -> Result<Vec<Vec<u8>>, OnlineError> {
    if table.name.is_empty() || table.name.contains(RESERVED) {
        return Err(OnlineError::Input(format!(
            "table name `{}` cannot be part of an online key",
            table.name
        )));
    }
    if table.join_keys.is_empty() {
        return Err(OnlineError::Input(format!(
            "view `{}` has no join keys to key its online values by",
            table.view
        )));
    }
    if columns.len() != table.join_keys.len() {
        return Err(OnlineError::Input(format!(
            "view `{}` has {} join keys, {} key columns were given",
            table.view,
            table.join_keys.len(),
            columns.len()
        )));
    }
    let rows = columns[0].len();
    let mut typed = Vec::with_capacity(columns.len());
    for (field, column) in table.join_keys.iter().zip(columns) {
        if column.len() != rows {
            return Err(OnlineError::Input(format!(
                "join key `{}` has {} values, `{}` has {rows}",
                field.name,
                column.len(),
                table.join_keys[0].name
            )));
        }
        match Typed::new(field, *column)? {
            key @ (Typed::Int64(_) | Typed::Utf8(_)) => typed.push(key),
            _ => {
                return Err(OnlineError::Input(format!(
                    "join key `{}` is {}: join keys must be int64 or utf8",
                    field.name, field.value_type
                )));
            }
        }
    }
    let mut keys = Vec::with_capacity(rows);
    for row in 0..rows {
        let mut key = Vec::with_capacity(table.name.len() + 3 + 12 * typed.len());
        key.extend_from_slice(table.name.as_bytes());
        key.extend_from_slice(b":{");
        for (index, (field, column)) in table.join_keys.iter().zip(&typed).enumerate() {
            if index > 0 {
                key.push(b',');
            }
            if column.is_null(row) {
                return Err(OnlineError::Input(format!(
                    "join key `{}` is null in row {row}",
                    field.name
                )));
            }
            match column {
                Typed::Int64(values) => {
                    key.extend_from_slice(values.value(row).to_string().as_bytes())
                }
                Typed::Utf8(values) => escape(values.value(row), &mut key),
                _ => unreachable!("join keys were checked to be int64 or utf8"),
            }
        }
        key.push(b'}');
        keys.push(key);
    }
    Ok(keys)
}

/// Appends `text` with `%`, `:`, `{`, `}` and `,` percent-encoded (`%25`, `%3A`, …).
fn escape(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in text.as_bytes() {
        if matches!(byte, b'%' | b':' | b'{' | b'}' | b',') {
            out.extend_from_slice(&[
                b'%',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 15)],
            ]);
        } else {
            out.push(byte);
        }
    }
}

/// A column of a canonical Arrow type, downcast once.
#[derive(Clone, Copy)]
pub(crate) enum Typed<'a> {
    Int64(&'a Int64Array),
    Float64(&'a Float64Array),
    Utf8(&'a StringArray),
    Boolean(&'a BooleanArray),
    Timestamp(&'a TimestampMicrosecondArray),
}

impl<'a> Typed<'a> {
    /// `array` as a column of `field`'s type; an input error unless it has the canonical
    /// Arrow type of [`arrow_type`].
    pub(crate) fn new(field: &FieldSpec, array: &'a dyn Array) -> Result<Self, OnlineError> {
        let expected = arrow_type(field.value_type);
        if array.data_type() != &expected {
            return Err(OnlineError::Input(format!(
                "column `{}` has Arrow type {}, expected {expected}",
                field.name,
                array.data_type()
            )));
        }
        Ok(match field.value_type {
            ValueType::Int64 => Self::Int64(array.as_primitive::<Int64Type>()),
            ValueType::Float64 => Self::Float64(array.as_primitive::<Float64Type>()),
            ValueType::Utf8 => Self::Utf8(array.as_string::<i32>()),
            ValueType::Boolean => Self::Boolean(array.as_boolean()),
            ValueType::Timestamp => {
                Self::Timestamp(array.as_primitive::<TimestampMicrosecondType>())
            }
        })
    }

    pub(crate) fn is_null(&self, row: usize) -> bool {
        match self {
            Self::Int64(a) => a.is_null(row),
            Self::Float64(a) => a.is_null(row),
            Self::Utf8(a) => a.is_null(row),
            Self::Boolean(a) => a.is_null(row),
            Self::Timestamp(a) => a.is_null(row),
        }
    }
}

/// The tag of a feature in a value body: 0 for null, else its type.
fn tag(value_type: ValueType) -> u8 {
    match value_type {
        ValueType::Int64 => 1,
        ValueType::Float64 => 2,
        ValueType::Utf8 => 3,
        ValueType::Boolean => 4,
        ValueType::Timestamp => 5,
    }
}

const NULL_TAG: u8 = 0;

/// The order prefix of `(event_ts, created_ts)`: 16 lowercase hex digits of each with the
/// sign bit flipped (`(ts as u64) ^ (1 << 63)`), so comparing prefixes as bytes compares
/// the pairs as numbers, negative times included.
pub fn order_prefix(event_ts: i64, created_ts: i64) -> [u8; ORDER_LEN] {
    let mut prefix = [0u8; ORDER_LEN];
    let text = format!(
        "{:016x}{:016x}",
        (event_ts as u64) ^ (1 << 63),
        (created_ts as u64) ^ (1 << 63)
    );
    prefix.copy_from_slice(text.as_bytes());
    prefix
}

/// The `(event_ts, created_ts)` of an order prefix.
fn parse_order(prefix: &[u8]) -> Result<(i64, i64), String> {
    let half = |digits: &[u8]| -> Result<i64, String> {
        let valid = digits
            .iter()
            .all(|d| d.is_ascii_digit() || (b'a'..=b'f').contains(d));
        let text = std::str::from_utf8(digits).ok().filter(|_| valid);
        let bits = text
            .and_then(|text| u64::from_str_radix(text, 16).ok())
            .ok_or_else(|| "the order prefix is not 32 lowercase hex digits".to_owned())?;
        Ok((bits ^ (1 << 63)) as i64)
    };
    Ok((half(&prefix[..16])?, half(&prefix[16..ORDER_LEN])?))
}

/// Encodes row `row` as a value: the order prefix, then the body: the format version, the
/// digest (a present byte, then its 32 raw bytes), the feature count (u16 LE) and each
/// feature as a tag (0 null, else its type) and its value: i64 LE, f64 bits LE (bit-exact,
/// NaN payloads and -0.0 kept), one byte 0/1, u32 LE length and UTF-8 bytes, i64 µs LE.
pub(crate) fn encode_value(
    event_ts: i64,
    created_ts: i64,
    digest: Option<&Digest>,
    features: &[Typed<'_>],
    row: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(ORDER_LEN + 36 + 9 * features.len());
    out.extend_from_slice(&order_prefix(event_ts, created_ts));
    out.push(FORMAT_VERSION);
    match digest {
        Some(digest) => {
            out.push(1);
            out.extend_from_slice(digest.as_bytes());
        }
        None => out.push(0),
    }
    let count = u16::try_from(features.len()).expect("a view has fewer than 65536 features");
    out.extend_from_slice(&count.to_le_bytes());
    for feature in features {
        if feature.is_null(row) {
            out.push(NULL_TAG);
            continue;
        }
        match feature {
            Typed::Int64(a) => {
                out.push(tag(ValueType::Int64));
                out.extend_from_slice(&a.value(row).to_le_bytes());
            }
            Typed::Float64(a) => {
                out.push(tag(ValueType::Float64));
                out.extend_from_slice(&a.value(row).to_bits().to_le_bytes());
            }
            Typed::Utf8(a) => {
                let text = a.value(row);
                out.push(tag(ValueType::Utf8));
                let len = u32::try_from(text.len()).expect("Arrow utf8 values are below 4 GiB");
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(text.as_bytes());
            }
            Typed::Boolean(a) => {
                out.push(tag(ValueType::Boolean));
                out.push(u8::from(a.value(row)));
            }
            Typed::Timestamp(a) => {
                out.push(tag(ValueType::Timestamp));
                out.extend_from_slice(&a.value(row).to_le_bytes());
            }
        }
    }
    out
}

/// What a value says besides its features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub event_ts: i64,
    pub created_ts: i64,
    pub digest: Option<Digest>,
}

/// Decodes `value`, appending its features to `builders` (one per field of `features`, of
/// its type). Fails, with a reason, on anything that is not a value of exactly these
/// features; the builders are then partly appended to and must be discarded.
pub(crate) fn decode_value(
    value: &[u8],
    features: &[FieldSpec],
    builders: &mut [ColumnBuilder],
) -> Result<Header, String> {
    let mut reader = Reader {
        bytes: value,
        at: 0,
    };
    let (event_ts, created_ts) = parse_order(reader.take(ORDER_LEN)?)?;
    let version = reader.byte()?;
    if version != FORMAT_VERSION {
        return Err(format!(
            "format version {version}, this host reads {FORMAT_VERSION}"
        ));
    }
    let digest = match reader.byte()? {
        0 => None,
        1 => Some(Digest::from_bytes(reader.array()?)),
        other => return Err(format!("digest flag {other}")),
    };
    let count = u16::from_le_bytes(reader.array()?);
    if usize::from(count) != features.len() {
        return Err(format!(
            "{count} features stored, the view has {}",
            features.len()
        ));
    }
    for (field, builder) in features.iter().zip(builders.iter_mut()) {
        let tag_byte = reader.byte()?;
        if tag_byte == NULL_TAG {
            builder.null();
            continue;
        }
        if tag_byte != tag(field.value_type) {
            return Err(format!(
                "feature `{}` has tag {tag_byte}, expected {} ({})",
                field.name,
                tag(field.value_type),
                field.value_type
            ));
        }
        match field.value_type {
            ValueType::Int64 | ValueType::Timestamp => {
                builder.int(i64::from_le_bytes(reader.array()?));
            }
            ValueType::Float64 => {
                builder.float(f64::from_bits(u64::from_le_bytes(reader.array()?)));
            }
            ValueType::Boolean => match reader.byte()? {
                0 => builder.boolean(false),
                1 => builder.boolean(true),
                other => return Err(format!("feature `{}` has boolean byte {other}", field.name)),
            },
            ValueType::Utf8 => {
                let len = u32::from_le_bytes(reader.array()?) as usize;
                let text = std::str::from_utf8(reader.take(len)?)
                    .map_err(|_| format!("feature `{}` is not UTF-8", field.name))?;
                builder.text(text);
            }
        }
    }
    if reader.at != value.len() {
        return Err(format!(
            "{} bytes after the last feature",
            value.len() - reader.at
        ));
    }
    Ok(Header {
        event_ts,
        created_ts,
        digest,
    })
}

/// Reads a value front to back, failing instead of reading past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "the value ends at byte {} where {len} more were expected at byte {}",
                    self.bytes.len(),
                    self.at
                )
            })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use crate::model::Classify;

    use arrow::array::{ArrayRef, RecordBatch};

    use super::*;
    use crate::datagen::SplitMix64;
    use crate::model::arrow_schema;

    fn field(name: &str, value_type: ValueType) -> FieldSpec {
        FieldSpec {
            name: name.into(),
            value_type,
            nullable: true,
        }
    }

    fn every_type() -> Vec<FieldSpec> {
        ValueType::ALL
            .iter()
            .map(|&t| field(&format!("f_{t}"), t))
            .collect()
    }

    /// Encodes every row of `columns` and decodes it back into one batch.
    fn round_trip(features: &[FieldSpec], columns: &[ArrayRef]) -> (RecordBatch, Vec<Header>) {
        let typed: Vec<Typed> = features
            .iter()
            .zip(columns)
            .map(|(f, c)| Typed::new(f, c.as_ref()).unwrap())
            .collect();
        let digest = Digest::of(b"transform");
        let mut builders: Vec<ColumnBuilder> = features
            .iter()
            .map(|f| ColumnBuilder::new(f.value_type))
            .collect();
        let mut headers = Vec::new();
        for row in 0..columns[0].len() {
            let digest = row.is_multiple_of(2).then_some(&digest);
            let value = encode_value(row as i64 - 1, -7, digest, &typed, row);
            headers.push(decode_value(&value, features, &mut builders).unwrap());
        }
        let arrays = builders.into_iter().map(ColumnBuilder::finish).collect();
        (
            RecordBatch::try_new(arrow_schema(features), arrays).unwrap(),
            headers,
        )
    }

    #[test]
    fn every_type_round_trips_with_nulls_and_exact_float_bits() {
        let features = every_type();
        let nan_payload = f64::from_bits(0x7ff8_0000_dead_beef);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![
                Some(i64::MIN),
                None,
                Some(i64::MAX),
                Some(0),
            ])),
            Arc::new(Float64Array::from(vec![
                Some(-0.0),
                Some(nan_payload),
                None,
                Some(f64::NEG_INFINITY),
            ])),
            Arc::new(StringArray::from(vec![
                Some(""),
                Some("a:{b},%c ü"),
                None,
                Some("x"),
            ])),
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
                Some(true),
            ])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    Some(-1),
                    None,
                    Some(i64::MAX),
                    Some(i64::MIN),
                ])
                .with_timezone("UTC"),
            ),
        ];
        let (batch, headers) = round_trip(&features, &columns);
        for (index, original) in columns.iter().enumerate() {
            assert_eq!(
                batch.column(index).as_ref(),
                original.as_ref(),
                "{}",
                features[index]
            );
        }
        let floats = batch.column(1).as_primitive::<Float64Type>();
        assert_eq!(floats.value(0).to_bits(), (-0.0f64).to_bits());
        assert_eq!(floats.value(1).to_bits(), nan_payload.to_bits());
        assert_eq!(headers[0].event_ts, -1);
        assert_eq!(headers[3].created_ts, -7);
        assert_eq!(headers[0].digest, Some(Digest::of(b"transform")));
        assert_eq!(headers[1].digest, None);
    }

    #[test]
    fn prefix_byte_order_is_numeric_order() {
        let mut rng = SplitMix64(7);
        let mut interesting = vec![i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
        interesting.extend((0..40).map(|_| rng.next_u64() as i64));
        interesting.extend((0..40).map(|_| (rng.next_u64() % 2000) as i64 - 1000));
        let mut pairs = Vec::new();
        for _ in 0..4000 {
            let pick = |rng: &mut SplitMix64| {
                interesting[(rng.next_u64() % interesting.len() as u64) as usize]
            };
            pairs.push((pick(&mut rng), pick(&mut rng)));
        }
        for window in pairs.windows(2) {
            let (a, b) = (window[0], window[1]);
            let (pa, pb) = (order_prefix(a.0, a.1), order_prefix(b.0, b.1));
            assert_eq!(pa.cmp(&pb), a.cmp(&b), "{a:?} vs {b:?}");
            assert_eq!(parse_order(&pa).unwrap(), a);
            assert!(
                pa.iter()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
            );
        }
    }

    fn view(keys: Vec<FieldSpec>) -> ViewTable {
        ViewTable::new(
            "p",
            "v",
            keys,
            vec![field("x", ValueType::Int64)],
            None,
            None,
        )
    }

    #[test]
    fn tricky_key_values_never_collide() {
        let tricky = [
            "", ",", ":", "{", "}", "%", "%2C", "%25", "a,b", "a%2Cb", "a:b", "{a}", "}{", "a",
            "a ", " a", "ü", "%3A", "%7B", "%7D", "1", "-1", ",,",
        ];
        let table = view(vec![
            field("a", ValueType::Utf8),
            field("b", ValueType::Utf8),
        ]);
        let mut pairs = Vec::new();
        for a in tricky {
            for b in tricky {
                pairs.push((a, b));
            }
        }
        let a: ArrayRef = Arc::new(StringArray::from_iter_values(pairs.iter().map(|p| p.0)));
        let b: ArrayRef = Arc::new(StringArray::from_iter_values(pairs.iter().map(|p| p.1)));
        let keys = entity_keys(&table, &[a.as_ref(), b.as_ref()]).unwrap();
        let distinct: BTreeSet<&Vec<u8>> = keys.iter().collect();
        assert_eq!(distinct.len(), pairs.len());
        for key in &keys {
            let tag = &key[table.name.len() + 1..];
            // One hash tag spanning the whole entity part: `{` first, the only `}` last.
            assert_eq!(tag[0], b'{');
            assert_eq!(tag.iter().position(|&c| c == b'}'), Some(tag.len() - 1));
            assert_eq!(tag.iter().filter(|&&c| c == b':').count(), 0);
        }
        let ints = view(vec![
            field("k", ValueType::Int64),
            field("s", ValueType::Utf8),
        ]);
        let k: ArrayRef = Arc::new(Int64Array::from(vec![-42, 7]));
        let s: ArrayRef = Arc::new(StringArray::from(vec!["x:y", "z"]));
        let keys = entity_keys(&ints, &[k.as_ref(), s.as_ref()]).unwrap();
        assert_eq!(keys[0], format!("{}:{{-42,x%3Ay}}", ints.name).into_bytes());
        assert_eq!(keys[1], format!("{}:{{7,z}}", ints.name).into_bytes());
    }

    #[test]
    fn bad_keys_are_input_errors() {
        let table = view(vec![field("k", ValueType::Int64)]);
        let nulls: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        let error = entity_keys(&table, &[nulls.as_ref()]).unwrap_err();
        assert_eq!(error.code(), "invalid_online_input");
        assert!(error.to_string().contains("null in row 1"), "{error}");
        let strings: ArrayRef = Arc::new(StringArray::from(vec!["1"]));
        let error = entity_keys(&table, &[strings.as_ref()]).unwrap_err();
        assert!(error.to_string().contains("expected Int64"), "{error}");
        let error = entity_keys(&table, &[]).unwrap_err();
        assert!(
            error.to_string().contains("1 join keys, 0 key columns"),
            "{error}"
        );
        let floats = view(vec![field("k", ValueType::Float64)]);
        let values: ArrayRef = Arc::new(Float64Array::from(vec![1.0]));
        let error = entity_keys(&floats, &[values.as_ref()]).unwrap_err();
        assert!(
            error.to_string().contains("must be int64 or utf8"),
            "{error}"
        );
        assert!(check_namespace("lockstep").is_ok());
        for bad in ["", "a:b", "{a}", "a}"] {
            assert!(check_namespace(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn garbage_is_rejected_without_panicking() {
        let features = every_type();
        let columns: Vec<ArrayRef> = features
            .iter()
            .map(|f| arrow::array::new_null_array(&arrow_type(f.value_type), 1))
            .collect();
        let typed: Vec<Typed> = features
            .iter()
            .zip(&columns)
            .map(|(f, c)| Typed::new(f, c.as_ref()).unwrap())
            .collect();
        let good = encode_value(5, 6, Some(&Digest::of(b"d")), &typed, 0);
        let decode = |bytes: &[u8], features: &[FieldSpec]| {
            let mut builders: Vec<ColumnBuilder> = features
                .iter()
                .map(|f| ColumnBuilder::new(f.value_type))
                .collect();
            decode_value(bytes, features, &mut builders)
        };
        assert!(decode(&good, &features).is_ok());
        // Every truncation, and every value with one byte changed, fails or decodes: never panics.
        for len in 0..good.len() {
            assert!(decode(&good[..len], &features).is_err(), "length {len}");
        }
        let mut rng = SplitMix64(11);
        for _ in 0..2000 {
            let mut bytes = good.clone();
            let at = (rng.next_u64() % bytes.len() as u64) as usize;
            bytes[at] = rng.next_u64() as u8;
            let _ = decode(&bytes, &features);
            let noise: Vec<u8> = (0..rng.next_u64() % 80)
                .map(|_| rng.next_u64() as u8)
                .collect();
            assert!(decode(&noise, &features).is_err());
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(
            decode(&trailing, &features)
                .unwrap_err()
                .contains("after the last feature")
        );
        let mut version = good.clone();
        version[ORDER_LEN] = 99;
        assert!(
            decode(&version, &features)
                .unwrap_err()
                .contains("format version 99")
        );
        assert!(
            decode(&good, &features[1..])
                .unwrap_err()
                .contains("5 features stored")
        );
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![3]));
        let one = encode_value(
            1,
            1,
            None,
            &[Typed::new(&features[0], ints.as_ref()).unwrap()],
            0,
        );
        assert!(
            decode(&one, &[field("f", ValueType::Float64)])
                .unwrap_err()
                .contains("tag 1")
        );
        let mut not_hex = good;
        not_hex[3] = b'G';
        assert!(decode(&not_hex, &features).unwrap_err().contains("hex"));
    }
}
