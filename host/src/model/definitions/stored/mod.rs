//! The stored form of definition objects: explicit types per format version, decoupled from
//! the in-memory types, so those can change freely while every stored row stays readable.
//!
//! A stored spec names its format in a `format` key; a spec without one is format 1, which
//! predates the key. This build writes format 1, without the key, so that the specs of
//! unchanged objects stay identical to those already stored (the registry compares them to
//! decide what changed). A new format adds a module beside [`v1`], writes its number, and
//! keeps reading the older ones.

mod v1;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The format this build reads and writes.
pub(super) const FORMAT: u64 = 1;

/// An in-memory definition type with a stored form.
pub(super) trait Stored: Sized {
    /// The stored form in format [`FORMAT`].
    type Form: Serialize + DeserializeOwned;

    fn to_form(&self) -> Self::Form;

    /// The object a stored form describes; `Err` says what in it is invalid.
    fn from_form(form: Self::Form) -> Result<Self, String>;
}

/// The stored JSON of `object`: always an object, since every form is a struct.
pub(super) fn encode<T: Stored>(object: &T) -> Map<String, Value> {
    match serde_json::to_value(object.to_form()) {
        Ok(Value::Object(fields)) => fields,
        // Every form is a struct of strings, numbers, booleans, lists and string-keyed
        // maps, which always serializes to a JSON object.
        other => unreachable!("a stored form serialized to {other:?}"),
    }
}

/// The object stored as `spec`, once [`take_format`] took its `format` key out.
pub(super) fn decode<T: Stored>(spec: Value) -> Result<T, String> {
    let form = serde_json::from_value(spec).map_err(|error| error.to_string())?;
    T::from_form(form)
}

/// Takes the `format` key out of a stored spec and checks this build reads that format.
pub(super) fn take_format(spec: &mut Map<String, Value>) -> Result<(), String> {
    match spec.remove("format") {
        None => Ok(()),
        Some(Value::Number(number)) if number.as_u64() == Some(FORMAT) => Ok(()),
        Some(other) => Err(format!(
            "stored format {other}: this build reads format {FORMAT} (a newer Lockstep may \
             have written it)"
        )),
    }
}
