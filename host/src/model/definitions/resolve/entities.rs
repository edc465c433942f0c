//! Entities: a join key, of a type a key can have.

use super::super::Entity;
use super::collect::Errors;
use crate::model::ValueType;

pub(super) fn check(name: &str, entity: &Entity, errors: &mut Errors<'_>) {
    let path = format!("entities.{name}");
    if entity.join_key.is_empty() {
        errors.push(format!("{path}.join_key"), "must not be empty");
    }
    if !matches!(entity.value_type, ValueType::Int64 | ValueType::Utf8) {
        errors.push(
            format!("{path}.type"),
            format!("join keys must be int64 or utf8, not {}", entity.value_type),
        );
    }
}
