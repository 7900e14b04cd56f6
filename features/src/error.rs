//! Error types: `FeatureError` for set-up problems, `DecodeError` for refused records.

use std::fmt;

/// Errors raised while building schemas, CSV headers and feature sets, or when a batch does not
/// fit the feature set it is handed to. All of them are the caller's (configuration) fault.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// Two schema fields share a name.
    #[error("duplicate field name \"{name}\" in schema")]
    DuplicateField { name: String },
    /// A schema field has an empty name.
    #[error("field names must not be empty")]
    EmptyFieldName,
    /// Two users of a field disagree on its type.
    #[error("field \"{name}\" is used both as {first} and as {second}")]
    TypeConflict {
        name: String,
        first: crate::FieldType,
        second: crate::FieldType,
    },
    /// An operator names a field the schema does not have.
    #[error("unknown field \"{name}\": not in the schema")]
    UnknownField { name: String },
    /// An operator names a field whose type it cannot read.
    #[error("{operator} needs {expected} field \"{name}\", but the schema says {got}")]
    WrongFieldType {
        operator: &'static str,
        name: String,
        expected: crate::FieldType,
        got: crate::FieldType,
    },
    /// A required field has no column in a CSV header.
    #[error("required field \"{name}\" is not a column of the csv header")]
    MissingCsvColumn { name: String },
    /// Two CSV columns map to the same schema field.
    #[error("field \"{name}\" appears twice in the csv header (columns {first} and {second})")]
    DuplicateCsvColumn {
        name: String,
        first: usize,
        second: usize,
    },
    /// Feature configs failed validation; every problem is listed with its path.
    #[error("invalid feature config: {}", .0.join("; "))]
    InvalidConfig(Vec<String>),
    /// The operators would need more input coordinates than a `u32` index can address.
    #[error("feature space too large: {dim} coordinates, at most {max} fit a u32 index")]
    TooManyCoordinates { dim: u64, max: u64 },
    /// Operator state read from an artifact is inconsistent or not finite.
    #[error("invalid feature state: {0}")]
    InvalidState(String),
    /// A batch handed to a feature set does not have the set's schema.
    #[error("batch does not match the feature set's schema: {0}")]
    BatchMismatch(String),
    /// A record was refused by the decoder.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Result alias for this crate.
pub type Result<T, E = FeatureError> = std::result::Result<T, E>;

/// Why a record was refused. `kind` is a stable machine-readable reason, `field` the offending
/// field if any, `detail` the human-readable rest.
#[derive(Clone, Debug, PartialEq, serde::Serialize, thiserror::Error)]
#[error("{}", self.message())]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    pub field: Option<String>,
    pub detail: String,
}

impl DecodeError {
    /// An error about one field.
    pub fn field(kind: DecodeErrorKind, field: &str, detail: impl Into<String>) -> Self {
        DecodeError {
            kind,
            field: Some(field.to_owned()),
            detail: detail.into(),
        }
    }

    /// An error about the whole record.
    pub fn record(kind: DecodeErrorKind, detail: impl Into<String>) -> Self {
        DecodeError {
            kind,
            field: None,
            detail: detail.into(),
        }
    }

    /// A record longer than a reader accepts.
    pub fn too_large(len: usize, max: usize) -> Self {
        DecodeError::record(
            DecodeErrorKind::TooLarge,
            format!("record too large: {len} bytes, at most {max} accepted"),
        )
    }

    /// The full message: "field: detail" when a field is named, else the detail alone.
    pub fn message(&self) -> String {
        match &self.field {
            Some(field) => format!("{field}: {}", self.detail),
            None => self.detail.clone(),
        }
    }
}

/// Stable, machine-readable reasons for refusing a record (used as metric labels and in HTTP
/// error bodies, so never rename a variant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeErrorKind {
    MalformedJson,
    NotAnObject,
    MissingField,
    WrongType,
    NotFinite,
    OutOfRange,
    WrongColumnCount,
    InvalidUtf8,
    TooLarge,
    /// An event older than a window operator's watermark minus its allowed lateness.
    Late,
    /// An event-time field that is not RFC 3339 or an in-range epoch.
    BadTimestamp,
    /// A record in another format (CSV line, Arrow IPC message) that cannot be read at all.
    Malformed,
}

impl DecodeErrorKind {
    /// Every kind, for pre-registering metric labels.
    pub const ALL: [DecodeErrorKind; 12] = [
        DecodeErrorKind::MalformedJson,
        DecodeErrorKind::NotAnObject,
        DecodeErrorKind::MissingField,
        DecodeErrorKind::WrongType,
        DecodeErrorKind::NotFinite,
        DecodeErrorKind::OutOfRange,
        DecodeErrorKind::WrongColumnCount,
        DecodeErrorKind::InvalidUtf8,
        DecodeErrorKind::TooLarge,
        DecodeErrorKind::Late,
        DecodeErrorKind::BadTimestamp,
        DecodeErrorKind::Malformed,
    ];

    /// The snake_case name, identical to the serde form.
    pub fn as_str(&self) -> &'static str {
        match self {
            DecodeErrorKind::MalformedJson => "malformed_json",
            DecodeErrorKind::NotAnObject => "not_an_object",
            DecodeErrorKind::MissingField => "missing_field",
            DecodeErrorKind::WrongType => "wrong_type",
            DecodeErrorKind::NotFinite => "not_finite",
            DecodeErrorKind::OutOfRange => "out_of_range",
            DecodeErrorKind::WrongColumnCount => "wrong_column_count",
            DecodeErrorKind::InvalidUtf8 => "invalid_utf8",
            DecodeErrorKind::TooLarge => "too_large",
            DecodeErrorKind::Malformed => "malformed",
            DecodeErrorKind::Late => "late",
            DecodeErrorKind::BadTimestamp => "bad_timestamp",
        }
    }
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_match_serde() {
        for kind in DecodeErrorKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }

    #[test]
    fn message_names_the_field() {
        let err = DecodeError::field(
            DecodeErrorKind::WrongType,
            "x3",
            "expected a number, got a string",
        );
        assert_eq!(err.to_string(), "x3: expected a number, got a string");
        let err = DecodeError::record(
            DecodeErrorKind::WrongColumnCount,
            "wrong column count: expected 12, got 11",
        );
        assert_eq!(err.to_string(), "wrong column count: expected 12, got 11");
    }

    #[test]
    fn feature_errors_are_lower_case_and_name_the_value() {
        let err = FeatureError::UnknownField { name: "x9".into() };
        assert_eq!(err.to_string(), "unknown field \"x9\": not in the schema");
        let err = FeatureError::InvalidConfig(vec![
            "features[0].fields: empty".into(),
            "features[1].bits: must be in 1..=28, got 30".into(),
        ]);
        assert_eq!(
            err.to_string(),
            "invalid feature config: features[0].fields: empty; features[1].bits: must be in 1..=28, got 30"
        );
    }
}
