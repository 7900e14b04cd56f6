//! JSON object decoding: a serde visitor that writes straight into the row scratch.
//!
//! Why a visitor instead of `serde_json::Value`: building a map per record (allocating every key
//! and string) costs more than the rest of the pipeline; here keys are borrowed, looked up in
//! the schema, and values land in the scratch row without intermediate allocation.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::json_values::{NumberSeed, StringSeed};
use super::{out_of_range, Row, Slot};
use crate::error::{DecodeError, DecodeErrorKind};
use crate::schema::{FieldType, Schema};

/// Decodes `record` into `row` (already reset). On error the row holds garbage.
pub(super) fn decode(schema: &Schema, row: &mut Row, record: &[u8]) -> Result<(), DecodeError> {
    let mut problem = None;
    let mut current = None;
    let mut de = serde_json::Deserializer::from_slice(record);
    let parsed = de
        .deserialize_any(ObjectVisitor {
            schema,
            row,
            problem: &mut problem,
            current: &mut current,
        })
        .and_then(|()| de.end());
    let Err(error) = parsed else {
        return Ok(());
    };
    // Our visitors put the precise reason aside; serde_json's error only carries a position.
    if let Some(problem) = problem {
        return Err(problem);
    }
    let message = error.to_string();
    let field = current.map(|i| schema.fields()[i].name.as_str());
    match field {
        // serde_json refuses numbers beyond f64 range itself, before our visitor sees them.
        Some(name) if message.starts_with("number out of range") => {
            Err(out_of_range(name, "a number beyond f64 range"))
        }
        // Raw bytes that are not UTF-8. (A \u escape of a lone surrogate stays malformed json:
        // the bytes are fine, the escape is not.)
        _ if message.starts_with("invalid unicode code point") => Err(DecodeError {
            kind: DecodeErrorKind::InvalidUtf8,
            field: field.map(str::to_owned),
            detail: format!("invalid utf-8: {message}"),
        }),
        _ => Err(DecodeError::record(
            DecodeErrorKind::MalformedJson,
            format!("malformed json: {message}"),
        )),
    }
}

/// The JSON type of a value, for "expected a number, got ..." messages.
pub(super) fn json_type(what: de::Unexpected<'_>) -> &'static str {
    match what {
        de::Unexpected::Bool(_) => "a boolean",
        de::Unexpected::Unsigned(_) | de::Unexpected::Signed(_) | de::Unexpected::Float(_) => {
            "a number"
        }
        de::Unexpected::Str(_) => "a string",
        de::Unexpected::Unit => "null",
        de::Unexpected::Seq => "an array",
        de::Unexpected::Map => "an object",
        _ => "an unsupported value",
    }
}

/// Records `error` aside and aborts the parse.
pub(super) fn abort<E: de::Error, T>(
    problem: &mut Option<DecodeError>,
    error: DecodeError,
) -> Result<T, E> {
    *problem = Some(error);
    Err(E::custom("record refused"))
}

struct ObjectVisitor<'a> {
    schema: &'a Schema,
    row: &'a mut Row,
    problem: &'a mut Option<DecodeError>,
    current: &'a mut Option<usize>,
}

impl ObjectVisitor<'_> {
    fn not_an_object<E: de::Error>(self, what: de::Unexpected<'_>) -> Result<(), E> {
        abort(
            self.problem,
            DecodeError::record(
                DecodeErrorKind::NotAnObject,
                format!("expected a json object, got {}", json_type(what)),
            ),
        )
    }
}

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let fields = self.schema.fields();
        // Records usually list keys in schema order, so the field after the last match is tried
        // before the hash map.
        let mut hint = 0;
        let mut position = 0;
        while let Some(key) = map.next_key_seed(KeySeed {
            schema: self.schema,
            hint,
            seen: &mut self.row.keys,
            position,
        })? {
            position += 1;
            let Some(i) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            hint = i + 1;
            *self.current = Some(i);
            let field = &fields[i];
            let slot = match field.ty {
                FieldType::Number => match map.next_value_seed(NumberSeed {
                    field,
                    problem: self.problem,
                })? {
                    Some(x) => Slot::Number(x),
                    None => Slot::Missing,
                },
                FieldType::String => map.next_value_seed(StringSeed {
                    field,
                    row: self.row,
                    problem: self.problem,
                })?,
            };
            self.row.slots[i] = slot;
            *self.current = None;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<(), A::Error> {
        self.not_an_object(de::Unexpected::Seq)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.not_an_object(de::Unexpected::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.not_an_object(de::Unexpected::Signed(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.not_an_object(de::Unexpected::Unsigned(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.not_an_object(de::Unexpected::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.not_an_object(de::Unexpected::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.not_an_object(de::Unexpected::Unit)
    }
}

/// Keys remembered by their place in the record, at most this many.
const REMEMBERED_KEYS: usize = 64;

/// Resolves a key to a field index (`None` for keys the schema does not know).
///
/// Records of one stream usually repeat the same keys in the same order, so the key met at each
/// place of the previous records is remembered with its answer (why: a short string compare
/// beats hashing the key, which cost a tenth of the time of a decode-bound pipeline).
struct KeySeed<'a> {
    schema: &'a Schema,
    hint: usize,
    seen: &'a mut Vec<(Box<str>, Option<usize>)>,
    position: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    // serde_json hands unescaped keys over borrowed from the input and escaped ones from its
    // scratch buffer; both arrive here as a plain &str, so neither allocates.
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        if let Some((name, found)) = self.seen.get(self.position) {
            if **name == *key {
                return Ok(*found);
            }
        }
        let fields = self.schema.fields();
        let found = if fields.get(self.hint).is_some_and(|f| f.name == key) {
            Some(self.hint)
        } else {
            self.schema.index_of(key)
        };
        if let Some(entry) = self.seen.get_mut(self.position) {
            *entry = (key.into(), found);
        } else if self.position == self.seen.len() && self.position < REMEMBERED_KEYS {
            self.seen.push((key.into(), found));
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, Float64Array, StringArray};

    use super::super::BatchBuilder;
    use crate::error::DecodeErrorKind as K;
    use crate::schema::{Field, Schema};

    fn column<T: 'static>(batch: &arrow_array::RecordBatch, i: usize) -> &T {
        batch
            .column(i)
            .as_any()
            .downcast_ref::<T>()
            .expect("the column has the schema's type")
    }

    fn builder() -> BatchBuilder {
        let schema = Schema::new(vec![
            Field::number("x"),
            Field::number("y").required(false),
            Field::string("site"),
            Field::string("app").required(true),
        ])
        .unwrap();
        BatchBuilder::new(Arc::new(schema))
    }

    fn refuse(record: &str) -> (K, Option<String>, String) {
        let mut b = builder();
        let e = b.push_json(record.as_bytes()).unwrap_err();
        assert_eq!(b.len(), 0, "a refused record must leave no row: {record}");
        let message = e.to_string();
        (e.kind, e.field, message)
    }

    #[test]
    fn keys_remembered_by_place_follow_records_that_change_their_keys() {
        let mut b = builder();
        let records: [&[u8]; 5] = [
            br#"{"x": 1, "app": "a", "site": "s"}"#,
            br#"{"x": 2, "app": "b", "site": "t"}"#,
            br#"{"app": "c", "x": 3, "nope": 9}"#,
            br#"{"site": "v", "app": "d"}"#,
            br#"{"x": 5, "app": "e", "site": "u"}"#,
        ];
        let mut refused = Vec::new();
        for (i, r) in records.iter().enumerate() {
            if let Err(e) = b.push_json(r) {
                refused.push((i, e.kind, e.field));
            }
        }
        // The fourth has no "x", which is required.
        assert_eq!(refused, [(3, K::MissingField, Some("x".to_owned()))]);
        let batch = b.finish();
        let x = column::<Float64Array>(&batch, 0);
        let site = column::<StringArray>(&batch, 2);
        let app = column::<StringArray>(&batch, 3);
        assert_eq!(x.values().as_ref(), &[1.0, 2.0, 3.0, 5.0]);
        let apps: Vec<&str> = (0..4).map(|i| app.value(i)).collect();
        assert_eq!(apps, ["a", "b", "c", "e"]);
        let sites: Vec<Option<&str>> = (0..4)
            .map(|i| site.is_valid(i).then(|| site.value(i)))
            .collect();
        assert_eq!(sites, [Some("s"), Some("t"), None, Some("u")]);
    }

    #[test]
    fn decodes_values_nulls_bools_and_unknown_keys() {
        let mut b = builder();
        b.push_json(br#"{"x": 1.5, "y": null, "site": "a", "app": "b", "extra": {"deep": [1, {"z": null}]}}"#)
            .unwrap();
        b.push_json(br#" {"app": "\u00e9t\u00e9", "x": true, "y": -3} "#)
            .unwrap();
        b.push_json(br#"{"x": false, "app": "", "x": 7, "site": "first", "site": "last"}"#)
            .unwrap();
        let batch = b.finish();
        assert_eq!(batch.num_rows(), 3);
        let x = column::<Float64Array>(&batch, 0);
        let y = column::<Float64Array>(&batch, 1);
        let site = column::<StringArray>(&batch, 2);
        let app = column::<StringArray>(&batch, 3);
        assert_eq!(x.values().as_ref(), &[1.5, 1.0, 7.0]);
        assert!(y.is_null(0));
        assert_eq!(y.value(1), -3.0);
        assert!(y.is_null(2));
        assert_eq!(site.value(0), "a");
        assert!(site.is_null(1));
        assert_eq!(site.value(2), "last", "duplicate keys: the last wins");
        assert_eq!(app.value(1), "été");
        assert_eq!(app.value(2), "");
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn escaped_keys_are_found() {
        let mut b = builder();
        b.push_json(br#"{"\u0078": 2, "app": "a"}"#).unwrap();
        let batch = b.finish();
        let x = column::<Float64Array>(&batch, 0);
        assert_eq!(x.value(0), 2.0);
    }

    #[test]
    fn every_refusal_kind_names_the_field() {
        let cases: &[(&str, K, Option<&str>, &str)] = &[
            (
                r#"{"x": 1, "app": "a""#,
                K::MalformedJson,
                None,
                "malformed json: EOF while parsing an object at line 1 column 19",
            ),
            (
                r#"{"x": 1, "app": "a"} x"#,
                K::MalformedJson,
                None,
                "malformed json: trailing characters at line 1 column 22",
            ),
            (
                "",
                K::MalformedJson,
                None,
                "malformed json: EOF while parsing a value at line 1 column 0",
            ),
            (
                r#"[1, 2]"#,
                K::NotAnObject,
                None,
                "expected a json object, got an array",
            ),
            (
                r#""x""#,
                K::NotAnObject,
                None,
                "expected a json object, got a string",
            ),
            (
                r#"3"#,
                K::NotAnObject,
                None,
                "expected a json object, got a number",
            ),
            (
                r#"{"app": "a"}"#,
                K::MissingField,
                Some("x"),
                "x: missing required value",
            ),
            (
                r#"{"x": null, "app": "a"}"#,
                K::MissingField,
                Some("x"),
                "x: missing required value",
            ),
            (
                r#"{"x": 1, "app": null}"#,
                K::MissingField,
                Some("app"),
                "app: missing required value",
            ),
            (
                r#"{"x": "1", "app": "a"}"#,
                K::WrongType,
                Some("x"),
                "x: expected a number, got a string",
            ),
            (
                r#"{"x": [1], "app": "a"}"#,
                K::WrongType,
                Some("x"),
                "x: expected a number, got an array",
            ),
            (
                r#"{"x": 1, "y": {}, "app": "a"}"#,
                K::WrongType,
                Some("y"),
                "y: expected a number, got an object",
            ),
            (
                r#"{"x": 1, "app": 3.5}"#,
                K::WrongType,
                Some("app"),
                "app: expected a string, got a number",
            ),
            (
                r#"{"x": 1, "app": "a", "site": true}"#,
                K::WrongType,
                Some("site"),
                "site: expected a string, got a boolean",
            ),
            (
                r#"{"x": 1e101, "app": "a"}"#,
                K::OutOfRange,
                Some("x"),
                "x: magnitude must be <= 1e100, got 1e101",
            ),
            (
                r#"{"x": -2e100, "app": "a"}"#,
                K::OutOfRange,
                Some("x"),
                "x: magnitude must be <= 1e100, got -2e100",
            ),
            (
                r#"{"x": 1e400, "app": "a"}"#,
                K::OutOfRange,
                Some("x"),
                "x: magnitude must be <= 1e100, got a number beyond f64 range",
            ),
            (
                r#"{"x": NaN, "app": "a"}"#,
                K::MalformedJson,
                None,
                "malformed json: expected value at line 1 column 7",
            ),
        ];
        for &(record, kind, field, message) in cases {
            let (k, f, m) = refuse(record);
            assert_eq!(
                (k, f.as_deref(), m.as_str()),
                (kind, field, message),
                "record {record}"
            );
        }
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let mut b = builder();
        let e = b.push_json(b"{\"x\": 1, \"app\": \"\xff\"}").unwrap_err();
        assert_eq!(e.kind, K::InvalidUtf8);
        assert_eq!(e.field.as_deref(), Some("app"));
        assert_eq!(
            e.to_string(),
            "app: invalid utf-8: invalid unicode code point at line 1 column 18"
        );
        let e = b
            .push_json(br#"{"x": 1, "app": "a", "site": "\udc00"}"#)
            .unwrap_err();
        assert_eq!(e.kind, K::MalformedJson);
        assert_eq!(
            e.detail,
            "malformed json: lone leading surrogate in hex escape at line 1 column 36"
        );
        // In a key no field is known yet.
        let e = b
            .push_json(b"{\"\xfe\": 1, \"x\": 1, \"app\": \"a\"}")
            .unwrap_err();
        assert_eq!((e.kind, e.field), (K::InvalidUtf8, None));
        assert_eq!(b.len(), 0);
    }
}
