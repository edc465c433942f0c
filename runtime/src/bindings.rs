//! Bindings generated from `wit/` (the batch types and the `feature-transform` world), and
//! the one mapping between the contract's types and the model's.

use lockstep_model::{FieldSpec, ValueType};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "feature-transform",
    additional_derives: [PartialEq],
});

pub use lockstep::transform::types::{Column, DataType, Field, Utf8Values, Values};

/// The imports a transform may have, as the component model names them: the `host`
/// functions and the `types` interface (types only, no functions).
pub const ALLOWED_IMPORTS: [&str; 2] = [
    "lockstep:transform/host@0.1.0",
    "lockstep:transform/types@0.1.0",
];

/// The value type of a contract type.
pub fn value_type(data_type: DataType) -> ValueType {
    match data_type {
        DataType::Int64 => ValueType::Int64,
        DataType::Float64 => ValueType::Float64,
        DataType::Utf8 => ValueType::Utf8,
        DataType::Boolean => ValueType::Boolean,
        DataType::Timestamp => ValueType::Timestamp,
    }
}

/// A checked guest signature in the model's terms.
pub fn signature(signature: Signature) -> crate::Signature {
    let fields = |fields: Vec<Field>| -> Vec<FieldSpec> {
        fields
            .into_iter()
            .map(|field| FieldSpec {
                name: field.name,
                value_type: value_type(field.data_type),
                nullable: field.nullable,
            })
            .collect()
    };
    crate::Signature {
        name: signature.name,
        version: signature.version,
        inputs: fields(signature.inputs),
        outputs: fields(signature.outputs),
    }
}
