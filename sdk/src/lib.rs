//! The guest-side SDK for Lockstep feature transforms: write a plain Rust
//! function over typed rows (or whole columns), get a WebAssembly component
//! the Lockstep host runs identically for training and for serving.
//!
//! # A transform in three items
//!
//! Describe one input row and one output row as structs with
//! `#[derive(Row)]`, and mark the function that maps one to the other with
//! `#[transform]`:
//!
//! ```
//! use lockstep_sdk::Row;
//!
//! /// One watch event of a user on a movie.
//! #[derive(Row)]
//! pub struct WatchEvent {
//!     pub watch_seconds: i64,
//!     /// Movie runtime in minutes.
//!     pub runtime: i64,
//!     /// Null when the user did not rate the movie.
//!     pub rating: Option<f64>,
//! }
//!
//! #[derive(Row)]
//! pub struct WatchFeatures {
//!     pub watch_time_minutes: f64,
//!     pub completion_rate: f64,
//!     pub is_high_rating: Option<bool>,
//! }
//!
//! #[lockstep_sdk::transform(name = "movie_watch_features", version = "1.0.0")]
//! pub fn watch_features(event: WatchEvent) -> WatchFeatures {
//!     let watch_time_minutes = event.watch_seconds as f64 / 60.0;
//!     let completion_rate = if event.runtime > 0 {
//!         (watch_time_minutes / event.runtime as f64).clamp(0.0, 1.0)
//!     } else {
//!         0.0
//!     };
//!     WatchFeatures {
//!         watch_time_minutes,
//!         completion_rate,
//!         is_high_rating: event.rating.map(|rating| rating >= 4.0),
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! Each struct field is a column with the field's name; the supported types
//! are `i64` (`int64`), `f64` (`float64`), `bool` (`boolean`), `String` or
//! `&str` (`utf8`) and [`Timestamp`] (`timestamp`, microseconds since the Unix
//! epoch, UTC), and `Option` of each for a nullable column.
//! `#[row(rename = "…")]` on a field sets a different column name.
//!
//! `#[transform]` leaves the function as it is (call it from tests and
//! benchmarks) and generates the two exports of the `feature-transform` world:
//!
//! * `signature`: the name, the version, and the input and output fields in
//!   declaration order;
//! * `transform`: reads the input columns by name, checking their types (a
//!   missing or mistyped column is [`TransformError::InvalidInput`] naming it),
//!   calls the function once per row and builds the output columns. It is
//!   [`run_rows`], which native code can call on a [`Batch`] directly.
//!
//! The exports exist only when compiling for `wasm32`, so the same crate
//! also builds natively as a normal library. One transform per crate.
//!
//! ## Failing rows
//!
//! A row function may return `Result<Out, E>` for any `E: Display`. If some
//! rows fail, the batch fails with [`TransformError::Rows`], listing every
//! failed row's index and message:
//!
//! ```
//! # use lockstep_sdk::Row;
//! # #[derive(Row)] pub struct Txn { pub amount: f64 }
//! # #[derive(Row)] pub struct TxnFeatures { pub log_amount: f64 }
//! #[lockstep_sdk::transform(name = "txn_features", version = "1.0.0")]
//! pub fn txn_features(txn: Txn) -> Result<TxnFeatures, String> {
//!     if txn.amount < 0.0 {
//!         return Err(format!("amount must not be negative, got {}", txn.amount));
//!     }
//!     Ok(TxnFeatures { log_amount: txn.amount.ln_1p() })
//! }
//! # fn main() {}
//! ```
//!
//! ## Strings without allocation
//!
//! A `String` field costs an allocation per row. A row with a lifetime can
//! borrow its strings from the input batch instead, and an output row can
//! hold `&'static str` (or strings borrowed from the input):
//!
//! ```
//! use lockstep_sdk::Row;
//!
//! #[derive(Row)]
//! pub struct Txn<'a> { pub currency: &'a str, pub amount: f64 }
//! #[derive(Row)]
//! pub struct TxnFeatures { pub size: &'static str, pub is_usd: bool }
//!
//! #[lockstep_sdk::transform(name = "txn_size", version = "1.0.0")]
//! pub fn txn_size(txn: Txn<'_>) -> TxnFeatures {
//!     let size = if txn.amount < 100.0 { "small" } else { "large" };
//!     TxnFeatures { size, is_usd: txn.currency == "USD" }
//! }
//! # fn main() {}
//! ```
//!
//! ## Same bits natively
//!
//! Natively, `f64::ln`, `exp`, `powf` and the like call the platform's C
//! library, which may differ in the last bit from what the same code computes
//! in wasm. Use [`math`] (`math::log1p(x)` for `x.ln_1p()`) for results that
//! are bit-identical in native tests and in the host.
//!
//! ## Whole columns
//!
//! `#[derive(Row)]` on `struct Name` also generates `NameColumns<'a>`, typed
//! views of the input columns ([`RowColumns`]: `&[i64]`, `&[f64]`, [`Bitmap`],
//! [`Utf8Column`], [`TimestampColumn`], [`NullableColumn`]), and `NameBuilder`,
//! one builder per output column ([`RowBuilder`]: `Vec<i64>`, `Vec<f64>`,
//! `Vec<bool>`, [`Utf8Builder`], `Vec<Timestamp>`, [`NullableBuilder`]). Both
//! have one field per row field. `#[transform_columns]` maps whole columns,
//! for vectorized code or to avoid a `String` per value:
//!
//! ```
//! use lockstep_sdk::{ColumnView, Row};
//!
//! #[derive(Row)]
//! pub struct Movie { pub title: String, pub popularity: f64 }
//! #[derive(Row)]
//! pub struct MovieFeatures { pub title_length: i64, pub log_popularity: f64 }
//!
//! #[lockstep_sdk::transform_columns(name = "movie_features", version = "1.0.0")]
//! pub fn movie_features(input: MovieColumns<'_>) -> MovieFeaturesBuilder {
//!     MovieFeaturesBuilder {
//!         title_length: input.title.iter().map(|title| title.chars().count() as i64).collect(),
//!         log_popularity: input.popularity.iter().map(|p| p.max(0.0).ln_1p()).collect(),
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! A columns function must return exactly one row per input row; it may
//! return `Result<NameBuilder, TransformError>` to fail. [`run_columns`] runs
//! it natively.
//!
//! # Building
//!
//! A transform is a library crate built for `wasm32-unknown-unknown`:
//!
//! ```toml
//! [package]
//! name = "movie-watch"
//! version = "1.0.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib", "rlib"]   # cdylib: the wasm module; rlib: native tests
//!
//! [dependencies]
//! lockstep-sdk = "0.1"
//!
//! [profile.release]
//! opt-level = 3
//! lto = true
//! codegen-units = 1
//! panic = "abort"
//! ```
//!
//! `lockstep build path/to/crate` compiles it in release mode and wraps the
//! core module into a component; upload the result with
//! `POST /transforms/{name}`. The component imports nothing but
//! `lockstep:transform/host`: no clock, randomness, files or network, so the
//! same input gives the same output everywhere.
//!
//! # Panics
//!
//! A panic traps the guest and fails the call. The generated exports first
//! [install a hook](install_panic_hook) that sends the panic message and
//! location to the host, which reports it with the error.
//!
//! # Implementing the world by hand
//!
//! The generated bindings are public ([`bindings`], with the types
//! re-exported at the root) for transforms that need full control: implement
//! [`Guest`] and export it with [`export!`]. [`ColumnType::view`] and the
//! builders do the column checks and packing.
//!
//! ```
//! use lockstep_sdk::{Batch, ColumnBuilder, ColumnType, ColumnView, DataType, Field, Guest, Signature, TransformError};
//!
//! struct Doubler;
//!
//! impl Guest for Doubler {
//!     fn signature() -> Signature {
//!         lockstep_sdk::install_panic_hook();
//!         Signature {
//!             name: "doubler".into(),
//!             version: "1.0.0".into(),
//!             inputs: vec![i64::field("x")],
//!             outputs: vec![Field { name: "y".into(), data_type: DataType::Int64, nullable: false }],
//!         }
//!     }
//!
//!     fn transform(input: Batch) -> Result<Batch, TransformError> {
//!         lockstep_sdk::install_panic_hook();
//!         let x = i64::view(&input, "x")?;
//!         let y: Vec<i64> = x.iter().map(|x| x.wrapping_mul(2)).collect();
//!         Ok(Batch { num_rows: input.num_rows, columns: vec![y.finish("y")?] })
//!     }
//! }
//!
//! lockstep_sdk::export!(Doubler);
//! # fn main() {}
//! ```

pub mod bindings {
    //! Bindings generated from `wit/transform.wit` (world `feature-transform`).
    //!
    //! The only unsafe code of the SDK lives here, written by `wit-bindgen`:
    //! lifting and lowering values across the component boundary.
    #![allow(unsafe_code, unused_qualifications, missing_docs)]

    wit_bindgen::generate!({
        path: "wit",
        world: "feature-transform",
        pub_export_macro: true,
        default_bindings_module: "lockstep_sdk::bindings",
        runtime_path: "lockstep_sdk::__private::wit_bindgen::rt",
        additional_derives: [PartialEq],
    });
}

mod builder;
mod column;
pub mod math;
mod panic;
mod row;
mod timestamp;
mod view;

// The generated code refers to the runtime as `lockstep_sdk::…` so that user
// crates need no direct `wit-bindgen` dependency; this makes that path
// resolve inside the SDK too.
extern crate self as lockstep_sdk;

pub use bindings::Guest;
pub use bindings::lockstep::transform::types::{
    Batch, Column, DataType, Field, RowError, Signature, TransformError, Utf8Values, Values,
};
pub use builder::{Append, BitmapBuilder, ColumnBuilder, NullableBuilder, Utf8Builder};
pub use column::{ColumnType, FromColumn, Primitive};
/// Derives [`Row`](trait@Row) for a struct with named fields, plus its
/// `{Name}Columns<'a>` views and `{Name}Builder` builders. See the
/// [crate docs](crate).
pub use lockstep_sdk_macros::Row;
/// Turns `fn(In) -> Out` (or `-> Result<Out, E: Display>`) into the
/// transform's exports. Arguments: `name = "…"`, `version = "…"`. See the
/// [crate docs](crate).
pub use lockstep_sdk_macros::transform;
/// Turns `fn(InColumns<'_>) -> OutBuilder` (or
/// `-> Result<OutBuilder, TransformError>`) into the transform's exports.
/// Arguments: `name = "…"`, `version = "…"`. See the [crate docs](crate).
pub use lockstep_sdk_macros::transform_columns;
pub use panic::{MAX_PANIC_MESSAGE_BYTES, install_panic_hook};
pub use row::{
    ColumnsOutput, Row, RowBuilder, RowColumns, RowOutput, run_columns, run_rows, signature,
};
pub use timestamp::Timestamp;
pub use view::{Bitmap, ColumnView, NullableColumn, TimestampColumn, Utf8Column};

/// Exports a type implementing [`Guest`] as the transform's `signature` and
/// `transform` functions. Expands to nothing unless compiling for `wasm32`.
#[macro_export]
macro_rules! export {
    ($ty:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::export!($ty with_types_in $crate::bindings);
        // Elsewhere, still check the impl and count the type as used.
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            let _ = <$ty as $crate::Guest>::transform;
        };
    };
}

/// Support for the code the macros generate; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    pub use crate::row::common_len;
    use crate::{ColumnsOutput, RowColumns, RowOutput, Signature};

    /// The signature of the row function `_f`.
    pub fn row_signature<In, R, F>(name: &str, version: &str, _f: F) -> Signature
    where
        In: crate::Row,
        R: RowOutput,
        F: FnMut(In) -> R,
    {
        crate::signature::<In, R::Row>(name, version)
    }

    /// The signature of the columns function `_f`.
    pub fn columns_signature<'a, C, R, F>(name: &str, version: &str, _f: F) -> Signature
    where
        C: RowColumns<'a>,
        R: ColumnsOutput,
        F: FnOnce(C) -> R,
    {
        crate::signature::<C::Row, <R::Builder as crate::RowBuilder>::Row>(name, version)
    }
}
