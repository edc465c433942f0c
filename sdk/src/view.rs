//! Borrowed, validated, typed views of input columns: what a transform reads.

use std::fmt;

use crate::Timestamp;

/// A typed, read-only view of one input column, `len()` values long.
///
/// Views are cheap to copy (a few pointers) and were validated when they were
/// created (length, type, nulls, UTF-8), so [`value`](Self::value) never fails
/// for `row < len()`.
pub trait ColumnView<'a>: Copy + fmt::Debug {
    /// What [`value`](Self::value) returns: `i64`, `f64`, `bool`, `&'a str`,
    /// [`Timestamp`], or an `Option` of one of them for nullable columns.
    type Item: fmt::Debug;

    /// The number of rows in the column.
    fn len(&self) -> usize;

    /// Whether the column has no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of row `row`.
    ///
    /// # Panics
    ///
    /// If `row >= self.len()`.
    fn value(&self, row: usize) -> Self::Item;
}

macro_rules! slice_view {
    ($($ty:ty),*) => {$(
        impl<'a> ColumnView<'a> for &'a [$ty] {
            type Item = $ty;

            #[inline(always)]
            fn len(&self) -> usize {
                <[$ty]>::len(self)
            }

            #[inline(always)]
            fn value(&self, row: usize) -> $ty {
                self[row]
            }
        }
    )*};
}

slice_view!(i64, f64);

/// A bitmap in Arrow layout: a validity bitmap (bit `i % 8` of byte `i / 8`
/// is set when row `i` is valid, not null), or the values of a `boolean`
/// column, which is packed the same way.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Bitmap<'a> {
    bytes: &'a [u8],
    len: usize,
}

impl<'a> Bitmap<'a> {
    /// Wraps `bytes` as a bitmap of `len` bits, or returns `None` if `bytes`
    /// is shorter than `len.div_ceil(8)`. Longer buffers (padding) are fine.
    pub fn new(bytes: &'a [u8], len: usize) -> Option<Self> {
        (bytes.len() >= len.div_ceil(8)).then_some(Self { bytes, len })
    }

    /// The number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the bitmap has no bits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether bit `index` is set (row `index` is valid).
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`.
    #[inline(always)]
    pub fn is_set(&self, index: usize) -> bool {
        if index >= self.len {
            bit_out_of_range(index, self.len);
        }
        self.bytes[index / 8] & (1 << (index % 8)) != 0
    }

    /// The number of unset bits (null rows).
    pub fn count_unset(&self) -> usize {
        let full = self.len / 8;
        let mut unset: usize = self.bytes[..full]
            .iter()
            .map(|b| b.count_zeros() as usize)
            .sum();
        let rest = self.len % 8;
        if rest != 0 {
            let mask = (1u8 << rest) - 1;
            unset += (!self.bytes[full] & mask).count_ones() as usize;
        }
        unset
    }

    /// The index of the first unset bit, if any.
    pub fn first_unset(&self) -> Option<usize> {
        let full = self.len / 8;
        if let Some((i, byte)) = self.bytes[..full]
            .iter()
            .enumerate()
            .find(|(_, b)| **b != u8::MAX)
        {
            return Some(i * 8 + byte.trailing_ones() as usize);
        }
        let rest = self.len % 8;
        let mask = (1u8 << rest) - 1;
        (rest != 0 && self.bytes[full] & mask != mask)
            .then(|| full * 8 + self.bytes[full].trailing_ones() as usize)
    }

    /// The underlying bytes, including any padding past `len` bits.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Iterates over the bits, `true` for valid rows.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = bool> + 'a {
        let bytes = self.bytes;
        (0..self.len).map(move |i| bytes[i / 8] & (1 << (i % 8)) != 0)
    }
}

/// Out of line so that the hot path of [`Bitmap::is_set`] carries no
/// formatting code.
#[cold]
#[inline(never)]
#[track_caller]
fn bit_out_of_range(index: usize, len: usize) -> ! {
    panic!("bit {index} out of range for a bitmap of {len} bits")
}

/// A `boolean` column: bit `row` is the value of row `row`.
impl<'a> ColumnView<'a> for Bitmap<'a> {
    type Item = bool;

    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    fn value(&self, row: usize) -> bool {
        self.is_set(row)
    }
}

impl fmt::Debug for Bitmap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(u8::from)).finish()
    }
}

/// A `utf8` column: value `i` is `data[offsets[i]..offsets[i + 1]]`.
#[derive(Clone, Copy)]
pub struct Utf8Column<'a> {
    /// `len() + 1` ascending offsets on character boundaries of `data`, or
    /// empty for an empty column.
    offsets: &'a [u32],
    data: &'a str,
}

impl<'a> Utf8Column<'a> {
    /// Validates packed strings: `offsets` must hold `rows + 1` ascending
    /// entries (or none at all when `rows` is 0), the bytes up to the last
    /// offset must be UTF-8, and every offset must fall on a character boundary.
    pub fn new(offsets: &'a [u32], data: &'a [u8], rows: usize) -> Result<Self, String> {
        if rows == 0 && offsets.is_empty() {
            return Ok(Self { offsets, data: "" });
        }
        if offsets.len() != rows + 1 {
            return Err(format!(
                "has {} utf8 offsets, expected {} for {rows} rows",
                offsets.len(),
                rows + 1
            ));
        }
        if let Some(row) = offsets.windows(2).position(|pair| pair[0] > pair[1]) {
            return Err(format!("has utf8 offsets that decrease at row {row}"));
        }
        let end = offsets[rows] as usize;
        let Some(bytes) = data.get(..end) else {
            return Err(format!(
                "has a last utf8 offset of {end} past the {} bytes of data",
                data.len()
            ));
        };
        let data = std::str::from_utf8(bytes).map_err(|e| format!("has invalid UTF-8: {e}"))?;
        if let Some(row) = offsets
            .iter()
            .position(|&o| !data.is_char_boundary(o as usize))
        {
            return Err(format!(
                "has utf8 offset {} (row {row}) inside a character",
                offsets[row]
            ));
        }
        Ok(Self { offsets, data })
    }

    /// The string of each row, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        let data = self.data;
        self.offsets
            .windows(2)
            .map(move |pair| &data[pair[0] as usize..pair[1] as usize])
    }
}

impl<'a> ColumnView<'a> for Utf8Column<'a> {
    type Item = &'a str;

    #[inline(always)]
    fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    #[inline(always)]
    fn value(&self, row: usize) -> &'a str {
        &self.data[self.offsets[row] as usize..self.offsets[row + 1] as usize]
    }
}

impl fmt::Debug for Utf8Column<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A `timestamp` column: microseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TimestampColumn<'a>(&'a [i64]);

impl<'a> TimestampColumn<'a> {
    /// Wraps raw microsecond values.
    pub fn new(micros: &'a [i64]) -> Self {
        Self(micros)
    }

    /// The raw values, in microseconds since the Unix epoch.
    pub fn as_micros(&self) -> &'a [i64] {
        self.0
    }

    /// The timestamp of each row, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Timestamp> + 'a {
        self.0.iter().map(|&micros| Timestamp::from_micros(micros))
    }
}

impl<'a> ColumnView<'a> for TimestampColumn<'a> {
    type Item = Timestamp;

    #[inline(always)]
    fn len(&self) -> usize {
        self.0.len()
    }

    #[inline(always)]
    fn value(&self, row: usize) -> Timestamp {
        Timestamp::from_micros(self.0[row])
    }
}

impl fmt::Debug for TimestampColumn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A nullable column: the values of a non-nullable view plus a validity
/// bitmap. Null rows hold placeholder values in [`values`](Self::values).
#[derive(Clone, Copy)]
pub struct NullableColumn<'a, V> {
    values: V,
    /// `None` when no row is null.
    validity: Option<Bitmap<'a>>,
}

impl<'a, V: ColumnView<'a>> NullableColumn<'a, V> {
    /// Combines values with their validity bitmap. A bitmap without unset bits
    /// is dropped, so reading rows skips the bitmap entirely.
    ///
    /// # Panics
    ///
    /// If the bitmap and the values differ in length.
    pub fn new(values: V, validity: Option<Bitmap<'a>>) -> Self {
        if let Some(bitmap) = &validity {
            assert_eq!(
                bitmap.len(),
                values.len(),
                "validity bitmap and values differ in length"
            );
        }
        let validity = validity.filter(|bitmap| bitmap.first_unset().is_some());
        Self { values, validity }
    }

    /// The values, with placeholders at null rows.
    pub fn values(&self) -> V {
        self.values
    }

    /// The validity bitmap, or `None` when no row is null.
    pub fn validity(&self) -> Option<Bitmap<'a>> {
        self.validity
    }

    /// Whether row `row` holds a value.
    #[inline(always)]
    pub fn is_valid(&self, row: usize) -> bool {
        self.validity.is_none_or(|bitmap| bitmap.is_set(row))
    }

    /// Whether row `row` is null.
    #[inline(always)]
    pub fn is_null(&self, row: usize) -> bool {
        !self.is_valid(row)
    }

    /// The number of null rows.
    pub fn null_count(&self) -> usize {
        self.validity.map_or(0, |bitmap| bitmap.count_unset())
    }

    /// The value of each row, `None` for nulls.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Option<V::Item>> + use<'a, '_, V> {
        (0..self.values.len()).map(|row| self.value(row))
    }
}

impl<'a, V: ColumnView<'a>> ColumnView<'a> for NullableColumn<'a, V> {
    type Item = Option<V::Item>;

    #[inline(always)]
    fn len(&self) -> usize {
        self.values.len()
    }

    #[inline(always)]
    fn value(&self, row: usize) -> Option<V::Item> {
        if self.is_valid(row) {
            Some(self.values.value(row))
        } else {
            None
        }
    }
}

impl<'a, V: ColumnView<'a>> fmt::Debug for NullableColumn<'a, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_reads_lsb_first() {
        let bitmap = Bitmap::new(&[0b0000_0101, 0b1], 9).unwrap();
        let bits: Vec<bool> = bitmap.iter().collect();
        assert_eq!(
            bits,
            [true, false, true, false, false, false, false, false, true]
        );
        assert_eq!(bitmap.count_unset(), 6);
        assert_eq!(bitmap.first_unset(), Some(1));
    }

    #[test]
    fn bitmap_ignores_padding_bits() {
        let bitmap = Bitmap::new(&[u8::MAX, 0b0000_0011], 10).unwrap();
        assert_eq!(bitmap.count_unset(), 0);
        assert_eq!(bitmap.first_unset(), None);
        let bitmap = Bitmap::new(&[u8::MAX, 0b0000_0001], 10).unwrap();
        assert_eq!(bitmap.first_unset(), Some(9));
        assert_eq!(Bitmap::new(&[0; 4], 8).unwrap().first_unset(), Some(0));
    }

    #[test]
    fn bitmap_rejects_short_buffers() {
        assert!(Bitmap::new(&[], 0).is_some());
        assert!(Bitmap::new(&[0xFF], 9).is_none());
        assert!(Bitmap::new(&[0xFF, 0x01], 9).is_some());
    }

    #[test]
    fn utf8_column_slices_values() {
        let column = Utf8Column::new(&[0, 3, 3, 7], "héllo!".as_bytes(), 3).unwrap();
        assert_eq!(column.iter().collect::<Vec<_>>(), ["hé", "", "llo!"]);
        assert_eq!(column.value(2), "llo!");
        assert_eq!(column.len(), 3);
    }

    #[test]
    fn utf8_column_accepts_empty_offsets_for_no_rows() {
        assert_eq!(Utf8Column::new(&[], &[], 0).unwrap().len(), 0);
        assert_eq!(Utf8Column::new(&[0], &[], 0).unwrap().len(), 0);
    }

    #[test]
    fn utf8_column_rejects_bad_layouts() {
        let data = "héllo".as_bytes();
        let err =
            |offsets: &[u32], data: &[u8], rows| Utf8Column::new(offsets, data, rows).unwrap_err();
        assert_eq!(
            err(&[0, 1], data, 2),
            "has 2 utf8 offsets, expected 3 for 2 rows"
        );
        assert_eq!(
            err(&[0, 3, 1], data, 2),
            "has utf8 offsets that decrease at row 1"
        );
        assert_eq!(
            err(&[0, 9], data, 1),
            "has a last utf8 offset of 9 past the 6 bytes of data"
        );
        assert_eq!(
            err(&[0, 2, 3], data, 2),
            "has utf8 offset 2 (row 1) inside a character"
        );
        assert!(err(&[0, 2], data, 1).starts_with("has invalid UTF-8"));
        assert!(err(&[0, 2], &[0x61, 0xFF], 1).starts_with("has invalid UTF-8"));
    }

    #[test]
    fn nullable_column_drops_all_valid_bitmaps() {
        let values: &[i64] = &[1, 2, 3];
        let all_valid = NullableColumn::new(values, Bitmap::new(&[0b111], 3));
        assert!(all_valid.validity().is_none());
        let with_null = NullableColumn::new(values, Bitmap::new(&[0b101], 3));
        assert_eq!(
            with_null.iter().collect::<Vec<_>>(),
            [Some(1), None, Some(3)]
        );
        assert_eq!(with_null.null_count(), 1);
        assert!(with_null.is_null(1));
    }
}
