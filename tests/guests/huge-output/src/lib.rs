//! Test guest `huge_output` (`x: int64 -> s: utf8`): 8 MiB of text for every row. The host
//! bounds what it keeps: the output size limit, the memory limit, and row comparisons that
//! keep a fingerprint per row rather than the rows.

use lockstep_sdk::Row;
use test_rows::Input;

/// Bytes of text per row.
pub const TEXT_BYTES: usize = 8 << 20;

#[derive(Row)]
pub struct Text {
    pub s: String,
}

#[lockstep_sdk::transform(name = "huge_output", version = "0.1.0")]
pub fn huge(row: Input) -> Text {
    let fill = b'a' + (row.x.rem_euclid(26) as u8);
    Text {
        s: String::from_utf8(vec![fill; TEXT_BYTES]).expect("ASCII"),
    }
}
