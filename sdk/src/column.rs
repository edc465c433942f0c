//! The mapping between Rust field types and column types, and the checks that
//! turn an untrusted input column into a typed view.
//!
//! | Rust type | column type | view | builder |
//! |---|---|---|---|
//! | `i64` | `int64` | `&[i64]` | `Vec<i64>` |
//! | `f64` | `float64` | `&[f64]` | `Vec<f64>` |
//! | `bool` | `boolean` | [`Bitmap`] | `Vec<bool>` |
//! | `String`, `&str` | `utf8` | [`Utf8Column`] | [`Utf8Builder`] |
//! | [`Timestamp`] | `timestamp` | [`TimestampColumn`] | `Vec<Timestamp>` |
//! | `Option<T>` | nullable column of `T` | [`NullableColumn`] | [`NullableBuilder`] |

use std::fmt;

use crate::builder::{Append, NullableBuilder, Utf8Builder};
use crate::view::{Bitmap, ColumnView, NullableColumn, TimestampColumn, Utf8Column};
use crate::{Batch, Column, DataType, Field, Timestamp, TransformError, Values};

/// A Rust type that can be a field of a [`Row`](crate::Row): one column of a
/// batch. Implemented for `i64`, `f64`, `bool`, `String`, `&str`,
/// [`Timestamp`] and `Option` of each (a nullable column).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a Lockstep column",
    note = "fields must be i64, f64, bool, String, &str, lockstep_sdk::Timestamp, or an Option of one of them"
)]
pub trait ColumnType: Sized {
    /// The column's data type.
    const DATA_TYPE: DataType;
    /// Whether the column may hold nulls.
    const NULLABLE: bool;

    /// The typed view an input column of this type is read through.
    type View<'a>: ColumnView<'a>;
    /// The builder an output column of this type is written with.
    type Builder: Append<Self>;

    /// Finds column `name` in `batch` and checks it: present once, of type
    /// [`DATA_TYPE`](Self::DATA_TYPE), `num_rows` values long, well-formed,
    /// and without nulls unless the type is nullable.
    ///
    /// # Errors
    ///
    /// [`TransformError::InvalidInput`] naming the column and what is wrong.
    fn view<'a>(batch: &'a Batch, name: &str) -> Result<Self::View<'a>, TransformError>;

    /// The schema field of a column of this type named `name`.
    fn field(name: &str) -> Field {
        Field {
            name: name.to_owned(),
            data_type: Self::DATA_TYPE,
            nullable: Self::NULLABLE,
        }
    }
}

/// A [`ColumnType`] whose values can be read out of a view that borrows the
/// batch for `'a`: all of them, except `&str` (and `Option<&str>`) with a
/// lifetime longer than `'a`, such as `&'static str`, which are output-only.
pub trait FromColumn<'a>: ColumnType {
    /// The value of row `row` of `view`.
    ///
    /// # Panics
    ///
    /// If `row >= view.len()`.
    fn get(view: &Self::View<'a>, row: usize) -> Self;
}

mod sealed {
    pub trait Sealed {}
}

/// A non-nullable column type; `Option<T>` is the nullable column of `T`.
/// Sealed: the wire format has exactly these value types.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a Lockstep column",
    note = "fields must be i64, f64, bool, String, &str, lockstep_sdk::Timestamp, or an Option of one of them"
)]
pub trait Primitive: Sized + sealed::Sealed {
    /// The column's data type.
    const DATA_TYPE: DataType;
    /// The typed view of a column of this type.
    type Values<'a>: ColumnView<'a>;
    /// The builder of a column of this type.
    type Builder: Append<Self>;

    /// Checks that `values` are `rows` well-formed values of this type and
    /// returns a view of them.
    ///
    /// # Errors
    ///
    /// Why the values are not a well-formed column of this type, as a phrase
    /// completing "input column `x` …".
    fn values_view(values: &Values, rows: usize) -> Result<Self::Values<'_>, String>;
}

impl<T: Primitive> ColumnType for T {
    const DATA_TYPE: DataType = T::DATA_TYPE;
    const NULLABLE: bool = false;
    type View<'a> = T::Values<'a>;
    type Builder = T::Builder;

    fn view<'a>(batch: &'a Batch, name: &str) -> Result<Self::View<'a>, TransformError> {
        let (column, rows) = find::<Self>(batch, name)?;
        let view = T::values_view(&column.values, rows).map_err(|why| invalid(name, &why))?;
        if let Some(bytes) = &column.validity
            && let Some(row) = bitmap(name, bytes, rows)?.first_unset()
        {
            return Err(invalid(
                name,
                &format!("is not nullable but row {row} is null"),
            ));
        }
        Ok(view)
    }
}

impl<T: Primitive> ColumnType for Option<T> {
    const DATA_TYPE: DataType = T::DATA_TYPE;
    const NULLABLE: bool = true;
    type View<'a> = NullableColumn<'a, T::Values<'a>>;
    type Builder = NullableBuilder<T::Builder>;

    fn view<'a>(batch: &'a Batch, name: &str) -> Result<Self::View<'a>, TransformError> {
        let (column, rows) = find::<Self>(batch, name)?;
        let values = T::values_view(&column.values, rows).map_err(|why| invalid(name, &why))?;
        let validity = column
            .validity
            .as_deref()
            .map(|bytes| bitmap(name, bytes, rows))
            .transpose()?;
        Ok(NullableColumn::new(values, validity))
    }
}

impl<'a, T> FromColumn<'a> for Option<T>
where
    T: Primitive + FromColumn<'a, View<'a> = <T as Primitive>::Values<'a>>,
{
    #[inline(always)]
    fn get(view: &Self::View<'a>, row: usize) -> Self {
        if view.is_valid(row) {
            Some(T::get(&view.values(), row))
        } else {
            None
        }
    }
}

macro_rules! primitive {
    ($(@$lt:lifetime)? $ty:ty, $data_type:ident, $values:ty, $builder:ty, $make_view:expr) => {
        impl$(<$lt>)? sealed::Sealed for $ty {}

        impl$(<$lt>)? Primitive for $ty {
            const DATA_TYPE: DataType = DataType::$data_type;
            type Values<'a> = $values;
            type Builder = $builder;

            fn values_view(values: &Values, rows: usize) -> Result<Self::Values<'_>, String> {
                let make_view: fn(&Values, usize) -> Option<Result<Self::Values<'_>, String>> =
                    $make_view;
                make_view(values, rows)
                    .unwrap_or_else(|| Err(mismatch(values, DataType::$data_type)))
            }
        }
    };
}

primitive!(
    i64,
    Int64,
    &'a [i64],
    Vec<i64>,
    |values, rows| match values {
        Values::Int64(values) => Some(sized(values, rows)),
        _ => None,
    }
);
primitive!(
    f64,
    Float64,
    &'a [f64],
    Vec<f64>,
    |values, rows| match values {
        Values::Float64(values) => Some(sized(values, rows)),
        _ => None,
    }
);
primitive!(
    bool,
    Boolean,
    Bitmap<'a>,
    Vec<bool>,
    |values, rows| match values {
        Values::Boolean(bits) if bits.len() == rows.div_ceil(8) => {
            Some(Ok(Bitmap::new(bits, rows).expect("long enough")))
        }
        Values::Boolean(bits) => Some(Err(format!(
            "has {} bytes of booleans but the batch has {rows} rows ({} bytes)",
            bits.len(),
            rows.div_ceil(8)
        ))),
        _ => None,
    }
);
primitive!(
    Timestamp,
    Timestamp,
    TimestampColumn<'a>,
    Vec<Timestamp>,
    |values, rows| {
        match values {
            Values::Timestamp(values) => Some(sized(values, rows).map(TimestampColumn::new)),
            _ => None,
        }
    }
);
primitive!(String, Utf8, Utf8Column<'a>, Utf8Builder, utf8_view);
primitive!(@'s &'s str, Utf8, Utf8Column<'a>, Utf8Builder, utf8_view);

fn utf8_view(values: &Values, rows: usize) -> Option<Result<Utf8Column<'_>, String>> {
    match values {
        Values::Utf8(values) => Some(Utf8Column::new(&values.offsets, &values.data, rows)),
        _ => None,
    }
}

macro_rules! from_column {
    ($($ty:ty => |$view:ident, $row:ident| $get:expr;)*) => {$(
        impl<'a> FromColumn<'a> for $ty {
            #[inline(always)]
            fn get($view: &Self::View<'a>, $row: usize) -> Self {
                $get
            }
        }
    )*};
}

from_column! {
    i64 => |view, row| view[row];
    f64 => |view, row| view[row];
    bool => |view, row| view.is_set(row);
    Timestamp => |view, row| view.value(row);
    String => |view, row| view.value(row).to_owned();
    &'a str => |view, row| view.value(row);
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataType::Int64 => "int64",
            DataType::Float64 => "float64",
            DataType::Utf8 => "utf8",
            DataType::Boolean => "boolean",
            DataType::Timestamp => "timestamp",
        })
    }
}

impl Values {
    /// The data type of these values.
    pub fn data_type(&self) -> DataType {
        match self {
            Values::Int64(_) => DataType::Int64,
            Values::Float64(_) => DataType::Float64,
            Values::Utf8(_) => DataType::Utf8,
            Values::Boolean(_) => DataType::Boolean,
            Values::Timestamp(_) => DataType::Timestamp,
        }
    }

    /// The number of values. Booleans are packed eight to a byte, so for them
    /// it is the number of bits: the row count rounded up to a multiple of 8.
    pub fn len(&self) -> usize {
        match self {
            Values::Int64(values) | Values::Timestamp(values) => values.len(),
            Values::Float64(values) => values.len(),
            Values::Boolean(bits) => bits.len() * 8,
            Values::Utf8(values) => values.offsets.len().saturating_sub(1),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Finds the only column named `name` and returns it with the batch's row count.
fn find<'a, T: ColumnType>(
    batch: &'a Batch,
    name: &str,
) -> Result<(&'a Column, usize), TransformError> {
    let mut matches = batch.columns.iter().filter(|column| column.name == name);
    let Some(column) = matches.next() else {
        let null = if T::NULLABLE { ", nullable" } else { "" };
        return Err(TransformError::InvalidInput(format!(
            "missing input column `{name}` ({}{null})",
            T::DATA_TYPE
        )));
    };
    if matches.next().is_some() {
        return Err(invalid(name, "appears more than once"));
    }
    Ok((column, batch.num_rows as usize))
}

fn sized<T>(values: &[T], rows: usize) -> Result<&[T], String> {
    if values.len() == rows {
        Ok(values)
    } else {
        Err(format!(
            "has {} values but the batch has {rows} rows",
            values.len()
        ))
    }
}

fn mismatch(values: &Values, expected: DataType) -> String {
    format!("has type {}, expected {expected}", values.data_type())
}

fn bitmap<'a>(name: &str, bytes: &'a [u8], rows: usize) -> Result<Bitmap<'a>, TransformError> {
    Bitmap::new(bytes, rows).ok_or_else(|| {
        invalid(
            name,
            &format!(
                "has a validity bitmap of {} bytes, {} needed for {rows} rows",
                bytes.len(),
                rows.div_ceil(8)
            ),
        )
    })
}

fn invalid(name: &str, why: &str) -> TransformError {
    TransformError::InvalidInput(format!("input column `{name}` {why}"))
}
