//! The record schema: named, typed fields in order, and their Arrow form.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType, SchemaRef};
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use crate::error::{FeatureError, Result};

/// The type of a record field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// A finite `f64` (JSON numbers and booleans), Arrow `Float64`.
    Number,
    /// A UTF-8 string, Arrow `Utf8`.
    String,
}

impl FieldType {
    /// The Arrow type a column of this field has.
    pub fn data_type(self) -> DataType {
        match self {
            FieldType::Number => DataType::Float64,
            FieldType::String => DataType::Utf8,
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldType::Number => "number",
            FieldType::String => "string",
        })
    }
}

/// One named, typed field of a record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
    /// A missing value (null or absent) is a decode error when true, a null otherwise.
    pub required: bool,
}

impl Field {
    /// A required number field.
    pub fn number(name: impl Into<String>) -> Field {
        Field {
            name: name.into(),
            ty: FieldType::Number,
            required: true,
        }
    }

    /// An optional string field.
    pub fn string(name: impl Into<String>) -> Field {
        Field {
            name: name.into(),
            ty: FieldType::String,
            required: false,
        }
    }

    /// The same field with `required` set.
    pub fn required(mut self, required: bool) -> Field {
        self.required = required;
        self
    }
}

/// Fields in order plus a name -> index map. Only the fields are serialized; the map is rebuilt
/// (and duplicates refused) on deserialization.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "SchemaDef", into = "SchemaDef")]
pub struct Schema {
    fields: Vec<Field>,
    // xxh3 rather than SipHash: the JSON decoder falls back to this map for keys that arrive
    // out of schema order, once per key per record.
    index: HashMap<String, usize, Xxh3DefaultBuilder>,
    // Built once: every decoded batch (one per HTTP request when serving) carries this schema,
    // and building it anew costs an allocation per field.
    arrow: SchemaRef,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaDef {
    fields: Vec<Field>,
}

impl TryFrom<SchemaDef> for Schema {
    type Error = FeatureError;

    fn try_from(def: SchemaDef) -> Result<Schema> {
        Schema::new(def.fields)
    }
}

impl From<Schema> for SchemaDef {
    fn from(schema: Schema) -> SchemaDef {
        SchemaDef {
            fields: schema.fields,
        }
    }
}

impl Schema {
    /// A schema from fields in order; duplicate or empty names are an error.
    pub fn new(fields: Vec<Field>) -> Result<Schema> {
        let mut index = HashMap::with_capacity_and_hasher(fields.len(), Xxh3DefaultBuilder::new());
        for (i, field) in fields.iter().enumerate() {
            if field.name.is_empty() {
                return Err(FeatureError::EmptyFieldName);
            }
            if index.insert(field.name.clone(), i).is_some() {
                return Err(FeatureError::DuplicateField {
                    name: field.name.clone(),
                });
            }
        }
        let arrow = Arc::new(arrow_schema::Schema::new(
            fields
                .iter()
                .map(|f| arrow_schema::Field::new(&f.name, f.ty.data_type(), true))
                .collect::<Vec<_>>(),
        ));
        Ok(Schema {
            fields,
            index,
            arrow,
        })
    }

    /// Merges fields asked for by several users (features, target, key): the same name twice is
    /// fine when the types agree (required if either asks for it); a type conflict is an error.
    /// Fields keep the order of their first mention.
    pub fn merge(fields: impl IntoIterator<Item = Field>) -> Result<Schema> {
        let mut merged: Vec<Field> = Vec::new();
        for field in fields {
            match merged.iter_mut().find(|f| f.name == field.name) {
                Some(existing) if existing.ty != field.ty => {
                    return Err(FeatureError::TypeConflict {
                        name: field.name,
                        first: existing.ty,
                        second: field.ty,
                    });
                }
                Some(existing) => existing.required |= field.required,
                None => merged.push(field),
            }
        }
        Schema::new(merged)
    }

    /// The fields in order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when the schema has no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Position of the field called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.index_of(name).map(|i| &self.fields[i])
    }

    /// The Arrow schema of decoded batches: Number -> Float64, String -> Utf8, all nullable
    /// (required-ness is enforced by the decoder, and serving makes every field optional).
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::clone(&self.arrow)
    }

    /// The same schema with every field made optional (used for serving, where the target is
    /// absent).
    pub fn with_all_optional(&self) -> Schema {
        let mut schema = self.clone();
        for field in &mut schema.fields {
            field.required = false;
        }
        schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Schema {
        Schema::new(vec![Field::number("x"), Field::string("site")]).unwrap()
    }

    #[test]
    fn lookup_and_arrow_types() {
        let schema = two();
        assert_eq!(schema.index_of("site"), Some(1));
        assert_eq!(schema.index_of("nope"), None);
        let arrow = schema.arrow_schema();
        assert_eq!(arrow.field(0).data_type(), &DataType::Float64);
        assert_eq!(arrow.field(1).data_type(), &DataType::Utf8);
        assert!(arrow.fields().iter().all(|f| f.is_nullable()));
    }

    #[test]
    fn duplicate_and_empty_names_are_refused() {
        let err = Schema::new(vec![Field::number("x"), Field::string("x")]).unwrap_err();
        assert_eq!(err.to_string(), "duplicate field name \"x\" in schema");
        let err = Schema::new(vec![Field::number("")]).unwrap_err();
        assert!(matches!(err, FeatureError::EmptyFieldName));
    }

    #[test]
    fn merge_ors_required_and_refuses_type_conflicts() {
        let schema = Schema::merge([
            Field::number("x").required(false),
            Field::string("s"),
            Field::number("x").required(true),
            Field::number("y").required(false),
        ])
        .unwrap();
        assert_eq!(
            schema.fields(),
            &[
                Field::number("x"),
                Field::string("s"),
                Field::number("y").required(false)
            ]
        );
        let err = Schema::merge([Field::number("x"), Field::string("x")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field \"x\" is used both as number and as string"
        );
    }

    #[test]
    fn all_optional_keeps_names_and_types() {
        let schema = two().with_all_optional();
        assert!(schema.fields().iter().all(|f| !f.required));
        assert_eq!(schema.index_of("site"), Some(1));
        assert_eq!(schema.arrow_schema(), two().arrow_schema());
    }

    #[test]
    fn serde_round_trip_rebuilds_the_index() {
        let schema = two();
        let json = serde_json::to_string(&schema).unwrap();
        assert_eq!(
            json,
            r#"{"fields":[{"name":"x","ty":"number","required":true},{"name":"site","ty":"string","required":false}]}"#
        );
        let back: Schema = serde_json::from_str(&json).unwrap();
        assert_eq!(back, schema);
        assert_eq!(back.index_of("site"), Some(1));
        let bytes = postcard::to_allocvec(&schema).unwrap();
        let back: Schema = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, schema);
        let dup = r#"{"fields":[{"name":"x","ty":"number","required":true},{"name":"x","ty":"number","required":true}]}"#;
        assert!(serde_json::from_str::<Schema>(dup).is_err());
    }
}
