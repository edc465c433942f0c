//! Output column builders: what a transform writes, packed for the wire.
//!
//! Non-nullable `int64` and `float64` columns are built in a plain `Vec`,
//! which becomes the wire value without a copy; `boolean` columns in a
//! `Vec<bool>` packed into bits when finished; `timestamp` columns in a
//! `Vec<Timestamp>`. Strings are packed as they arrive ([`Utf8Builder`]) and
//! nullable columns track validity in a bitmap ([`NullableBuilder`]).

use std::fmt;

use crate::{Column, Timestamp, TransformError, Utf8Values, Values};

/// Accumulates the values of one output column.
pub trait ColumnBuilder: Sized + fmt::Debug {
    /// An empty builder with room for `rows` values.
    fn with_capacity(rows: usize) -> Self;

    /// The number of values appended so far.
    fn len(&self) -> usize;

    /// Whether no value was appended yet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the column type's default: `0`, `0.0`, `false`, the empty
    /// string or the Unix epoch, and a null for nullable columns.
    fn append_default(&mut self);

    /// The finished column, named `name`.
    ///
    /// # Errors
    ///
    /// [`TransformError::Failed`] if the values do not fit the wire format
    /// (more than 4 GiB of string data).
    fn finish(self, name: &str) -> Result<Column, TransformError>;
}

/// A [`ColumnBuilder`] that accepts values of type `T`.
pub trait Append<T>: ColumnBuilder {
    /// Appends one value.
    fn append(&mut self, value: T);
}

macro_rules! vec_builder {
    ($($ty:ty => $variant:ident),*) => {$(
        impl ColumnBuilder for Vec<$ty> {
            fn with_capacity(rows: usize) -> Self {
                Vec::with_capacity(rows)
            }

            fn len(&self) -> usize {
                Vec::len(self)
            }

            fn append_default(&mut self) {
                self.push(<$ty>::default());
            }

            fn finish(self, name: &str) -> Result<Column, TransformError> {
                Ok(Column { name: name.to_owned(), values: Values::$variant(self), validity: None })
            }
        }

        impl Append<$ty> for Vec<$ty> {
            #[inline(always)]
            fn append(&mut self, value: $ty) {
                self.push(value);
            }
        }
    )*};
}

vec_builder!(i64 => Int64, f64 => Float64);

impl ColumnBuilder for Vec<bool> {
    fn with_capacity(rows: usize) -> Self {
        Vec::with_capacity(rows)
    }

    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn append_default(&mut self) {
        self.push(false);
    }

    fn finish(self, name: &str) -> Result<Column, TransformError> {
        Ok(Column {
            name: name.to_owned(),
            values: Values::Boolean(pack_bits(&self)),
            validity: None,
        })
    }
}

impl Append<bool> for Vec<bool> {
    #[inline(always)]
    fn append(&mut self, value: bool) {
        self.push(value);
    }
}

/// Packs booleans Arrow-style: value `i` in bit `i % 8` of byte `i / 8`,
/// padding bits zero.
fn pack_bits(values: &[bool]) -> Vec<u8> {
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    let mut bytes: Vec<u8> = chunks
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .fold(0, |byte, (i, &bit)| byte | u8::from(bit) << i)
        })
        .collect();
    if !rest.is_empty() {
        let last = rest
            .iter()
            .enumerate()
            .fold(0, |byte, (i, &bit)| byte | u8::from(bit) << i);
        bytes.push(last);
    }
    bytes
}

impl ColumnBuilder for Vec<Timestamp> {
    fn with_capacity(rows: usize) -> Self {
        Vec::with_capacity(rows)
    }

    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn append_default(&mut self) {
        self.push(Timestamp::UNIX_EPOCH);
    }

    fn finish(self, name: &str) -> Result<Column, TransformError> {
        // Same size and alignment: `collect` reuses the allocation in place.
        let micros = self.into_iter().map(Timestamp::as_micros).collect();
        Ok(Column {
            name: name.to_owned(),
            values: Values::Timestamp(micros),
            validity: None,
        })
    }
}

impl Append<Timestamp> for Vec<Timestamp> {
    #[inline(always)]
    fn append(&mut self, value: Timestamp) {
        self.push(value);
    }
}

/// Builds a `utf8` column in the packed wire layout: one offsets array and
/// one byte buffer, no allocation per value.
///
/// ```
/// use lockstep_sdk::Utf8Builder;
///
/// let mut genres = Utf8Builder::with_capacity(2);
/// genres.push("drama");
/// genres.push("comédie");
/// assert_eq!(genres.len(), 2);
/// let genres: Utf8Builder = ["a", "b", "c"].into_iter().collect();
/// assert_eq!(genres.len(), 3);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Utf8Builder {
    /// Always starts with `0`; entry `i + 1` ends value `i`.
    offsets: Vec<u32>,
    data: Vec<u8>,
}

impl Utf8Builder {
    /// Bytes reserved per row up front; the buffer grows as needed.
    const BYTES_PER_ROW_HINT: usize = 8;

    /// An empty builder.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty builder with room for `rows` short strings.
    pub fn with_capacity(rows: usize) -> Self {
        Self::with_capacity_and_bytes(rows, rows.saturating_mul(Self::BYTES_PER_ROW_HINT))
    }

    /// An empty builder with room for `rows` strings of `bytes` bytes in total.
    pub fn with_capacity_and_bytes(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows.saturating_add(1));
        offsets.push(0);
        Self {
            offsets,
            data: Vec::with_capacity(bytes),
        }
    }

    /// Appends one string.
    #[inline(always)]
    pub fn push(&mut self, value: &str) {
        self.data.extend_from_slice(value.as_bytes());
        // Truncation is impossible once `finish` has checked that the total
        // length fits in `u32`: every offset is at most the total length.
        self.offsets.push(self.data.len() as u32);
    }

    /// The number of strings appended so far.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether no string was appended yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Utf8Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Utf8Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = self
            .offsets
            .windows(2)
            .map(|pair| String::from_utf8_lossy(&self.data[pair[0] as usize..pair[1] as usize]));
        f.debug_list().entries(values).finish()
    }
}

impl ColumnBuilder for Utf8Builder {
    fn with_capacity(rows: usize) -> Self {
        Utf8Builder::with_capacity(rows)
    }

    fn len(&self) -> usize {
        Utf8Builder::len(self)
    }

    fn append_default(&mut self) {
        self.push("");
    }

    fn finish(self, name: &str) -> Result<Column, TransformError> {
        if u32::try_from(self.data.len()).is_err() {
            return Err(TransformError::Failed(format!(
                "output column `{name}` holds {} bytes of strings, more than the 4 GiB a batch can carry",
                self.data.len()
            )));
        }
        let values = Values::Utf8(Utf8Values {
            offsets: self.offsets,
            data: self.data,
        });
        Ok(Column {
            name: name.to_owned(),
            values,
            validity: None,
        })
    }
}

impl<S: AsRef<str>> Append<S> for Utf8Builder {
    #[inline(always)]
    fn append(&mut self, value: S) {
        self.push(value.as_ref());
    }
}

impl<S: AsRef<str>> Extend<S> for Utf8Builder {
    fn extend<I: IntoIterator<Item = S>>(&mut self, iter: I) {
        let iter = iter.into_iter();
        self.offsets.reserve(iter.size_hint().0);
        for value in iter {
            self.push(value.as_ref());
        }
    }
}

impl<S: AsRef<str>> FromIterator<S> for Utf8Builder {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut builder = Self::with_capacity(iter.size_hint().0);
        builder.extend(iter);
        builder
    }
}

/// Builds a validity bitmap in Arrow layout (bit `i % 8` of byte `i / 8` set
/// when row `i` is valid), one bit per appended row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BitmapBuilder {
    /// Completed bytes.
    bytes: Vec<u8>,
    /// Bits of the byte being filled.
    pending: u8,
    len: usize,
    unset: usize,
}

impl BitmapBuilder {
    /// An empty bitmap with room for `bits` bits.
    pub fn with_capacity(bits: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bits.div_ceil(8)),
            ..Self::default()
        }
    }

    /// Appends one bit: `true` for a valid row, `false` for a null.
    #[inline(always)]
    pub fn append(&mut self, bit: bool) {
        self.pending |= u8::from(bit) << (self.len % 8);
        self.unset += usize::from(!bit);
        self.len += 1;
        if self.len.is_multiple_of(8) {
            self.bytes.push(self.pending);
            self.pending = 0;
        }
    }

    /// The number of bits appended so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no bit was appended yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of unset bits (nulls) appended so far.
    pub fn unset_count(&self) -> usize {
        self.unset
    }

    /// The packed bitmap, `len().div_ceil(8)` bytes with zeroed padding, or
    /// `None` when every bit is set: the wire encoding of "no nulls".
    pub fn finish(mut self) -> Option<Vec<u8>> {
        if self.unset == 0 {
            return None;
        }
        if !self.len.is_multiple_of(8) {
            self.bytes.push(self.pending);
        }
        Some(self.bytes)
    }
}

/// Builds a nullable column: values in `B` (placeholders at nulls) plus a
/// validity bitmap that is left out when no value is null.
///
/// ```
/// use lockstep_sdk::NullableBuilder;
///
/// let mut ratings = NullableBuilder::<Vec<f64>>::with_capacity(3);
/// ratings.push(Some(4.5));
/// ratings.push_null();
/// ratings.push(Some(3.0));
/// assert_eq!(ratings.len(), 3);
/// let flags: NullableBuilder<Vec<bool>> = [Some(true), None].into_iter().collect();
/// assert_eq!(flags.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NullableBuilder<B> {
    values: B,
    validity: BitmapBuilder,
}

impl<B: ColumnBuilder> NullableBuilder<B> {
    /// An empty builder with room for `rows` values.
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            values: B::with_capacity(rows),
            validity: BitmapBuilder::with_capacity(rows),
        }
    }

    /// Appends a value, or a null for `None`.
    #[inline(always)]
    pub fn push<T>(&mut self, value: Option<T>)
    where
        B: Append<T>,
    {
        match value {
            Some(value) => {
                self.values.append(value);
                self.validity.append(true);
            }
            None => self.push_null(),
        }
    }

    /// Appends a null.
    #[inline(always)]
    pub fn push_null(&mut self) {
        self.values.append_default();
        self.validity.append(false);
    }

    /// The number of values and nulls appended so far.
    pub fn len(&self) -> usize {
        self.validity.len()
    }

    /// Whether nothing was appended yet.
    pub fn is_empty(&self) -> bool {
        self.validity.is_empty()
    }

    /// The number of nulls appended so far.
    pub fn null_count(&self) -> usize {
        self.validity.unset_count()
    }
}

impl<B: ColumnBuilder> ColumnBuilder for NullableBuilder<B> {
    fn with_capacity(rows: usize) -> Self {
        NullableBuilder::with_capacity(rows)
    }

    fn len(&self) -> usize {
        NullableBuilder::len(self)
    }

    fn append_default(&mut self) {
        self.push_null();
    }

    fn finish(self, name: &str) -> Result<Column, TransformError> {
        let mut column = self.values.finish(name)?;
        column.validity = self.validity.finish();
        Ok(column)
    }
}

impl<T, B: Append<T>> Append<Option<T>> for NullableBuilder<B> {
    #[inline(always)]
    fn append(&mut self, value: Option<T>) {
        self.push(value);
    }
}

impl<T, B: Append<T>> Extend<Option<T>> for NullableBuilder<B> {
    fn extend<I: IntoIterator<Item = Option<T>>>(&mut self, iter: I) {
        for value in iter {
            self.push(value);
        }
    }
}

impl<T, B: Append<T>> FromIterator<Option<T>> for NullableBuilder<B> {
    fn from_iter<I: IntoIterator<Item = Option<T>>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut builder = Self::with_capacity(iter.size_hint().0);
        builder.extend(iter);
        builder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitmap(bits: impl IntoIterator<Item = bool>) -> Option<Vec<u8>> {
        let mut builder = BitmapBuilder::default();
        for bit in bits {
            builder.append(bit);
        }
        builder.finish()
    }

    #[test]
    fn bitmap_is_none_without_nulls() {
        assert_eq!(bitmap([]), None);
        assert_eq!(bitmap([true; 8]), None);
        assert_eq!(bitmap([true; 9]), None);
    }

    #[test]
    fn bitmap_packs_lsb_first_with_zero_padding() {
        assert_eq!(bitmap([false]), Some(vec![0]));
        assert_eq!(bitmap([true, false, true]), Some(vec![0b101]));
        let mut bits = [true; 9];
        bits[7] = false;
        assert_eq!(bitmap(bits), Some(vec![0b0111_1111, 0b1]));
        let mut bits = [true; 10];
        bits[9] = false;
        assert_eq!(bitmap(bits), Some(vec![0xFF, 0b01]));
        assert_eq!(bitmap([false; 8]), Some(vec![0]));
    }

    #[test]
    fn bitmap_matches_bit_formula_for_many_rows() {
        let bits: Vec<bool> = (0..10_000).map(|i| i % 3 != 0).collect();
        let bytes = bitmap(bits.iter().copied()).unwrap();
        assert_eq!(bytes.len(), 1250);
        for (i, bit) in bits.iter().enumerate() {
            assert_eq!(bytes[i / 8] >> (i % 8) & 1 == 1, *bit, "bit {i}");
        }
    }

    #[test]
    fn utf8_builder_packs_offsets_and_data() {
        let mut builder = Utf8Builder::new();
        builder.push("é");
        builder.append_default();
        builder.append(String::from("ab"));
        let column = ColumnBuilder::finish(builder, "s").unwrap();
        assert_eq!(
            column.values,
            Values::Utf8(Utf8Values {
                offsets: vec![0, 2, 2, 4],
                data: "éab".into()
            })
        );
        assert_eq!(column.validity, None);
    }

    #[test]
    fn empty_utf8_column_has_one_offset() {
        let column = ColumnBuilder::finish(Utf8Builder::new(), "s").unwrap();
        assert_eq!(
            column.values,
            Values::Utf8(Utf8Values {
                offsets: vec![0],
                data: vec![]
            })
        );
    }

    #[test]
    fn nullable_builder_keeps_placeholders_under_nulls() {
        let builder: NullableBuilder<Utf8Builder> =
            [Some("a"), None, Some("bc")].into_iter().collect();
        assert_eq!(builder.null_count(), 1);
        let column = ColumnBuilder::finish(builder, "s").unwrap();
        assert_eq!(
            column.values,
            Values::Utf8(Utf8Values {
                offsets: vec![0, 1, 1, 3],
                data: "abc".into()
            })
        );
        assert_eq!(column.validity, Some(vec![0b101]));

        let builder: NullableBuilder<Vec<bool>> =
            [Some(true), None, Some(false)].into_iter().collect();
        let column = ColumnBuilder::finish(builder, "b").unwrap();
        assert_eq!(column.values, Values::Boolean(vec![0b001]));
        assert_eq!(column.validity, Some(vec![0b101]));

        let builder: NullableBuilder<Vec<i64>> = [Some(7), None].into_iter().collect();
        let column = ColumnBuilder::finish(builder, "n").unwrap();
        assert_eq!(column.values, Values::Int64(vec![7, 0]));
        assert_eq!(column.validity, Some(vec![0b01]));
    }

    #[test]
    fn booleans_pack_lsb_first_with_zero_padding() {
        let values: Vec<bool> = (0..19).map(|i| i % 3 == 0).collect();
        let column = ColumnBuilder::finish(values.clone(), "b").unwrap();
        let Values::Boolean(bytes) = column.values else {
            panic!("a boolean column");
        };
        assert_eq!(bytes, [0b0100_1001, 0b1001_0010, 0b0000_0100]);
        for (i, value) in values.iter().enumerate() {
            assert_eq!(bytes[i / 8] >> (i % 8) & 1 == 1, *value, "bit {i}");
        }
        assert_eq!(pack_bits(&[]), Vec::<u8>::new());
        assert_eq!(pack_bits(&[true; 8]), [0xFF]);
    }

    #[test]
    fn timestamps_finish_as_micros() {
        let builder = vec![Timestamp::from_micros(-1), Timestamp::from_micros(5)];
        let column = ColumnBuilder::finish(builder, "t").unwrap();
        assert_eq!(column.values, Values::Timestamp(vec![-1, 5]));
    }
}
