//! Test guest `wrong-output-type` (`x: int64 -> y: float64`), written against
//! the raw bindings: declares `y` as float64 but returns an int64 column.

use lockstep_sdk::{Batch, ColumnBuilder, ColumnType, Guest, Signature, TransformError};

struct WrongOutputType;

impl Guest for WrongOutputType {
    fn signature() -> Signature {
        lockstep_sdk::install_panic_hook();
        Signature {
            name: "wrong_output_type".into(),
            version: "0.1.0".into(),
            inputs: vec![i64::field("x")],
            outputs: vec![f64::field("y")],
        }
    }

    fn transform(input: Batch) -> Result<Batch, TransformError> {
        lockstep_sdk::install_panic_hook();
        let y = i64::view(&input, "x")?.to_vec();
        Ok(Batch {
            num_rows: input.num_rows,
            columns: vec![y.finish("y")?],
        })
    }
}

lockstep_sdk::export!(WrongOutputType);
