//! Test guest `wrong-row-count` (`x: int64 -> y: int64`), written against the
//! raw bindings: returns one row more than it was given.

use lockstep_sdk::{Batch, ColumnBuilder, ColumnType, Guest, Signature, TransformError};

struct WrongRowCount;

impl Guest for WrongRowCount {
    fn signature() -> Signature {
        lockstep_sdk::install_panic_hook();
        Signature {
            name: "wrong_row_count".into(),
            version: "0.1.0".into(),
            inputs: vec![i64::field("x")],
            outputs: vec![i64::field("y")],
        }
    }

    fn transform(input: Batch) -> Result<Batch, TransformError> {
        lockstep_sdk::install_panic_hook();
        let mut y = i64::view(&input, "x")?.to_vec();
        y.push(0);
        Ok(Batch {
            num_rows: input.num_rows.wrapping_add(1),
            columns: vec![y.finish("y")?],
        })
    }
}

lockstep_sdk::export!(WrongRowCount);
