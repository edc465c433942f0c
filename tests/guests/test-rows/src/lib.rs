//! The rows every SDK-built test guest maps: one `x: int64` column in, one `y: int64` out.

use lockstep_sdk::Row;

#[derive(Row)]
pub struct Input {
    pub x: i64,
}

#[derive(Row)]
pub struct Output {
    pub y: i64,
}
