//! Floating-point functions that give the same bits natively and in wasm.
//!
//! Arithmetic (`+ - * /`, `sqrt`, comparisons) is exact IEEE 754 everywhere,
//! but transcendental functions are not: natively `f64::ln_1p` and friends
//! call the platform's C library, while in wasm they are compiled from a
//! portable Rust implementation, and the two can differ in the last bit. A
//! transform run by the host always uses the wasm one, so its outputs never
//! vary; a native unit test or benchmark of the same function can. These are
//! that portable implementation (the [`libm`](https://docs.rs/libm) crate, a
//! port of musl's), so a transform that uses them computes bit-identical
//! results in native tests and in the host. Names follow C's `math.h`.
//!
//! ```
//! use lockstep_sdk::math;
//!
//! assert_eq!(math::log1p(0.0), 0.0);
//! assert_eq!(math::exp(0.0), 1.0);
//! ```

pub use libm::{
    acos, acosh, asin, asinh, atan, atan2, atanh, cbrt, cos, cosh, erf, erfc, exp, exp2, exp10,
    expm1, hypot, log, log1p, log2, log10, pow, sin, sinh, tan, tanh,
};
