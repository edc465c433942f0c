//! Format 1 of stored definition objects, exactly as the first versions of Lockstep wrote
//! them (`tests/definitions/stored/v1.json` holds an example). Never change these types:
//! add a format instead.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Stored;
use crate::model::aggregation::{Aggregate, AggregateFunction, AggregationSpec};
use crate::model::definitions::{
    ColumnType, Entity, FeatureLogging, InputBinding, Provider, ResolvedFeatureService,
    ResolvedFeatureView, ResolvedOnDemandView, SampleRate, Source, SourceKind, TransformPin,
};
use crate::model::{FieldSpec, ValueType};

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityV1 {
    join_key: String,
    #[serde(rename = "type")]
    value_type: TypeV1,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl Stored for Entity {
    type Form = EntityV1;

    fn to_form(&self) -> EntityV1 {
        EntityV1 {
            join_key: self.join_key.clone(),
            value_type: self.value_type.into(),
            description: self.description.clone(),
        }
    }

    fn from_form(form: EntityV1) -> Result<Self, String> {
        Ok(Entity {
            join_key: form.join_key,
            value_type: form.value_type.into(),
            description: form.description,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceV1 {
    kind: SourceKindV1,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    table: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timestamp_field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_timestamp_field: Option<String>,
    /// Column types as written in files: `float64?`.
    schema: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl Stored for Source {
    type Form = SourceV1;

    fn to_form(&self) -> SourceV1 {
        SourceV1 {
            kind: self.kind.into(),
            path: self.path.clone(),
            table: self.table.clone(),
            query: self.query.clone(),
            timestamp_field: self.timestamp_field.clone(),
            created_timestamp_field: self.created_timestamp_field.clone(),
            schema: self
                .schema
                .iter()
                .map(|(name, column)| (name.clone(), column.to_string()))
                .collect(),
            description: self.description.clone(),
        }
    }

    fn from_form(form: SourceV1) -> Result<Self, String> {
        let schema = form
            .schema
            .into_iter()
            .map(|(name, column)| Ok((name, column.parse::<ColumnType>()?)))
            .collect::<Result<_, String>>()?;
        Ok(Source {
            kind: form.kind.into(),
            path: form.path,
            table: form.table,
            query: form.query,
            timestamp_field: form.timestamp_field,
            created_timestamp_field: form.created_timestamp_field,
            schema,
            description: form.description,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureViewV1 {
    entities: Vec<String>,
    source: String,
    transform: Option<TransformPinV1>,
    join_keys: Vec<FieldV1>,
    features: Vec<FieldV1>,
    ttl_seconds: Option<u64>,
    online: bool,
    offline: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aggregation: Option<AggregationV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl Stored for ResolvedFeatureView {
    type Form = FeatureViewV1;

    fn to_form(&self) -> FeatureViewV1 {
        FeatureViewV1 {
            entities: self.entities.clone(),
            source: self.source.clone(),
            transform: self.transform.as_ref().map(Stored::to_form),
            join_keys: fields_to_form(&self.join_keys),
            features: fields_to_form(&self.features),
            ttl_seconds: self.ttl_seconds,
            online: self.online,
            offline: self.offline,
            aggregation: self.aggregation.as_ref().map(Stored::to_form),
            description: self.description.clone(),
        }
    }

    fn from_form(form: FeatureViewV1) -> Result<Self, String> {
        Ok(ResolvedFeatureView {
            entities: form.entities,
            source: form.source,
            transform: form.transform.map(TransformPin::from_form).transpose()?,
            join_keys: fields_from_form(form.join_keys),
            features: fields_from_form(form.features),
            ttl_seconds: form.ttl_seconds,
            online: form.online,
            offline: form.offline,
            aggregation: form
                .aggregation
                .map(AggregationSpec::from_form)
                .transpose()?,
            description: form.description,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnDemandViewV1 {
    request_source: Option<String>,
    views: Vec<String>,
    transform: TransformPinV1,
    inputs: Vec<InputBindingV1>,
    join_keys: Vec<FieldV1>,
    features: Vec<FieldV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl Stored for ResolvedOnDemandView {
    type Form = OnDemandViewV1;

    fn to_form(&self) -> OnDemandViewV1 {
        OnDemandViewV1 {
            request_source: self.request_source.clone(),
            views: self.views.clone(),
            transform: self.transform.to_form(),
            inputs: self
                .inputs
                .iter()
                .map(|binding| InputBindingV1 {
                    input: (&binding.input).into(),
                    provider: (&binding.provider).into(),
                })
                .collect(),
            join_keys: fields_to_form(&self.join_keys),
            features: fields_to_form(&self.features),
            description: self.description.clone(),
        }
    }

    fn from_form(form: OnDemandViewV1) -> Result<Self, String> {
        Ok(ResolvedOnDemandView {
            request_source: form.request_source,
            views: form.views,
            transform: TransformPin::from_form(form.transform)?,
            inputs: form
                .inputs
                .into_iter()
                .map(|binding| InputBinding {
                    input: binding.input.into(),
                    provider: binding.provider.into(),
                })
                .collect(),
            join_keys: fields_from_form(form.join_keys),
            features: fields_from_form(form.features),
            description: form.description,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureServiceV1 {
    /// `[view, feature]` pairs.
    features: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    logging: Option<LoggingV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl Stored for ResolvedFeatureService {
    type Form = FeatureServiceV1;

    fn to_form(&self) -> FeatureServiceV1 {
        FeatureServiceV1 {
            features: self.features.clone(),
            logging: self.logging.map(|logging| LoggingV1 {
                sample_rate: logging.sample_rate.0,
            }),
            description: self.description.clone(),
        }
    }

    fn from_form(form: FeatureServiceV1) -> Result<Self, String> {
        Ok(ResolvedFeatureService {
            features: form.features,
            logging: form.logging.map(|logging| FeatureLogging {
                sample_rate: SampleRate(logging.sample_rate),
            }),
            description: form.description,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformPinV1 {
    reference: String,
    name: String,
    version: u32,
    /// `sha256:<64 hex>`.
    digest: String,
}

impl Stored for TransformPin {
    type Form = TransformPinV1;

    fn to_form(&self) -> TransformPinV1 {
        TransformPinV1 {
            reference: self.reference.clone(),
            name: self.name.clone(),
            version: self.version,
            digest: self.digest.to_string(),
        }
    }

    fn from_form(form: TransformPinV1) -> Result<Self, String> {
        Ok(TransformPin {
            reference: form.reference,
            name: form.name,
            version: form.version,
            digest: form.digest.parse().map_err(|error| format!("{error}"))?,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregationV1 {
    granularity_seconds: u64,
    allowed_lateness_seconds: u64,
    aggregates: Vec<AggregateV1>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregateV1 {
    name: String,
    function: FunctionV1,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    column: Option<FieldV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window_seconds: Option<u64>,
}

impl Stored for AggregationSpec {
    type Form = AggregationV1;

    fn to_form(&self) -> AggregationV1 {
        AggregationV1 {
            granularity_seconds: self.granularity_seconds,
            allowed_lateness_seconds: self.allowed_lateness_seconds,
            aggregates: self
                .aggregates
                .iter()
                .map(|aggregate| AggregateV1 {
                    name: aggregate.name.clone(),
                    function: aggregate.function.into(),
                    column: aggregate.column.as_ref().map(FieldV1::from),
                    window_seconds: aggregate.window_seconds,
                })
                .collect(),
        }
    }

    fn from_form(form: AggregationV1) -> Result<Self, String> {
        Ok(AggregationSpec {
            granularity_seconds: form.granularity_seconds,
            allowed_lateness_seconds: form.allowed_lateness_seconds,
            aggregates: form
                .aggregates
                .into_iter()
                .map(|aggregate| Aggregate {
                    name: aggregate.name,
                    function: aggregate.function.into(),
                    column: aggregate.column.map(FieldSpec::from),
                    window_seconds: aggregate.window_seconds,
                })
                .collect(),
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoggingV1 {
    sample_rate: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputBindingV1 {
    input: FieldV1,
    provider: ProviderV1,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ProviderV1 {
    Request,
    JoinKey,
    View(String),
}

impl From<&Provider> for ProviderV1 {
    fn from(provider: &Provider) -> Self {
        match provider {
            Provider::Request => ProviderV1::Request,
            Provider::JoinKey => ProviderV1::JoinKey,
            Provider::View(view) => ProviderV1::View(view.clone()),
        }
    }
}

impl From<ProviderV1> for Provider {
    fn from(provider: ProviderV1) -> Self {
        match provider {
            ProviderV1::Request => Provider::Request,
            ProviderV1::JoinKey => Provider::JoinKey,
            ProviderV1::View(view) => Provider::View(view),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldV1 {
    name: String,
    #[serde(rename = "type")]
    value_type: TypeV1,
    nullable: bool,
}

impl From<&FieldSpec> for FieldV1 {
    fn from(field: &FieldSpec) -> Self {
        FieldV1 {
            name: field.name.clone(),
            value_type: field.value_type.into(),
            nullable: field.nullable,
        }
    }
}

impl From<FieldV1> for FieldSpec {
    fn from(field: FieldV1) -> Self {
        FieldSpec {
            name: field.name,
            value_type: field.value_type.into(),
            nullable: field.nullable,
        }
    }
}

fn fields_to_form(fields: &[FieldSpec]) -> Vec<FieldV1> {
    fields.iter().map(FieldV1::from).collect()
}

fn fields_from_form(fields: Vec<FieldV1>) -> Vec<FieldSpec> {
    fields.into_iter().map(FieldSpec::from).collect()
}

/// Declares a format-1 enum written as snake_case names, mirroring an in-memory enum
/// variant for variant, with conversions both ways: a variant added to the in-memory enum
/// does not compile until a format stores it.
macro_rules! mirror {
    ($form:ident <=> $type:ident { $($variant:ident),+ $(,)? }) => {
        #[derive(Clone, Copy, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum $form {
            $($variant),+
        }

        impl From<$type> for $form {
            fn from(value: $type) -> Self {
                match value {
                    $($type::$variant => $form::$variant),+
                }
            }
        }

        impl From<$form> for $type {
            fn from(value: $form) -> Self {
                match value {
                    $($form::$variant => $type::$variant),+
                }
            }
        }
    };
}

mirror!(TypeV1 <=> ValueType { Int64, Float64, Utf8, Boolean, Timestamp });
mirror!(SourceKindV1 <=> SourceKind { Parquet, Csv, Postgres, Push, Request });
mirror!(FunctionV1 <=> AggregateFunction { Count, Sum, Mean, Min, Max, Last, CountDistinct });
