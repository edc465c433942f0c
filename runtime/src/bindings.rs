//! Bindings generated from `wit/` (the batch types and the `feature-transform` world), the
//! borrowed input batch the host lowers into guest memory, and the one mapping between the
//! contract's types and the model's.

use lockstep_model::{FieldSpec, ValueType};
use wasmtime::component::{ComponentType, Lower};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "feature-transform",
    additional_derives: [PartialEq],
});

pub use lockstep::transform::types::{Column, DataType, Field, Utf8Values, Values};

/// The contract version this host speaks (the WIT package's).
pub const CONTRACT_VERSION: &str = "0.2.0";

/// The imports a transform may have, as the component model names them: the `host`
/// functions and the `types` interface (types only, no functions).
pub const ALLOWED_IMPORTS: [&str; 2] = [
    "lockstep:transform/host@0.2.0",
    "lockstep:transform/types@0.2.0",
];

/// The contract version an import of the `lockstep:transform` package names, when it names
/// one other than [`CONTRACT_VERSION`]: the component was built against another SDK.
pub fn other_contract_version(import: &str) -> Option<&str> {
    let (_, version) = import
        .strip_prefix("lockstep:transform/")?
        .split_once('@')?;
    (version != CONTRACT_VERSION).then_some(version)
}

/// The contract's `batch`, borrowing its buffers (from Arrow arrays, or from an owned
/// [`Batch`]): lowering it copies each buffer into guest memory once, as it is.
#[derive(ComponentType, Lower, Debug, Clone)]
#[component(record)]
pub struct BatchIn<'a> {
    #[component(name = "num-rows")]
    pub num_rows: u32,
    pub columns: Vec<ColumnIn<'a>>,
}

/// The contract's `column`, borrowed.
#[derive(ComponentType, Lower, Debug, Clone)]
#[component(record)]
pub struct ColumnIn<'a> {
    pub name: &'a str,
    pub values: ValuesIn<'a>,
    pub validity: Option<&'a [u8]>,
}

/// The contract's `values`, borrowed.
#[derive(ComponentType, Lower, Debug, Clone, Copy)]
#[component(variant)]
pub enum ValuesIn<'a> {
    #[component(name = "int64")]
    Int64(&'a [i64]),
    #[component(name = "float64")]
    Float64(&'a [f64]),
    #[component(name = "utf8")]
    Utf8(Utf8In<'a>),
    #[component(name = "boolean")]
    Boolean(&'a [u8]),
    #[component(name = "timestamp")]
    Timestamp(&'a [i64]),
}

/// The contract's `utf8-values`, borrowed.
#[derive(ComponentType, Lower, Debug, Clone, Copy)]
#[component(record)]
pub struct Utf8In<'a> {
    pub offsets: &'a [u32],
    pub data: &'a [u8],
}

impl Batch {
    /// This batch as an input batch, borrowed.
    pub fn borrow(&self) -> BatchIn<'_> {
        BatchIn {
            num_rows: self.num_rows,
            columns: self
                .columns
                .iter()
                .map(|column| ColumnIn {
                    name: &column.name,
                    values: match &column.values {
                        Values::Int64(v) => ValuesIn::Int64(v),
                        Values::Float64(v) => ValuesIn::Float64(v),
                        Values::Utf8(v) => ValuesIn::Utf8(Utf8In {
                            offsets: &v.offsets,
                            data: &v.data,
                        }),
                        Values::Boolean(v) => ValuesIn::Boolean(v),
                        Values::Timestamp(v) => ValuesIn::Timestamp(v),
                    },
                    validity: column.validity.as_deref(),
                })
                .collect(),
        }
    }
}

impl BatchIn<'_> {
    /// An owned copy.
    pub fn to_owned(&self) -> Batch {
        Batch {
            num_rows: self.num_rows,
            columns: self
                .columns
                .iter()
                .map(|column| Column {
                    name: column.name.to_owned(),
                    values: match column.values {
                        ValuesIn::Int64(v) => Values::Int64(v.to_vec()),
                        ValuesIn::Float64(v) => Values::Float64(v.to_vec()),
                        ValuesIn::Utf8(v) => Values::Utf8(Utf8Values {
                            offsets: v.offsets.to_vec(),
                            data: v.data.to_vec(),
                        }),
                        ValuesIn::Boolean(v) => Values::Boolean(v.to_vec()),
                        ValuesIn::Timestamp(v) => Values::Timestamp(v.to_vec()),
                    },
                    validity: column.validity.map(<[u8]>::to_vec),
                })
                .collect(),
        }
    }
}

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
