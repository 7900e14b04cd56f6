//! Value seeds of the JSON decoder: one per field type, each refusing the other JSON types.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::json::{abort, json_type};
use super::{check_number, Row, Slot};
use crate::error::{DecodeError, DecodeErrorKind};
use crate::schema::Field;

/// Reads the value of a Number field: `Some(x)`, or `None` for null.
pub(super) struct NumberSeed<'a> {
    pub(super) field: &'a Field,
    pub(super) problem: &'a mut Option<DecodeError>,
}

impl NumberSeed<'_> {
    fn wrong_type<E: de::Error>(self, what: de::Unexpected<'_>) -> Result<Option<f64>, E> {
        let error = DecodeError::field(
            DecodeErrorKind::WrongType,
            &self.field.name,
            format!("expected a number, got {}", json_type(what)),
        );
        abort(self.problem, error)
    }

    fn number<E: de::Error>(self, x: f64) -> Result<Option<f64>, E> {
        match check_number(&self.field.name, x) {
            Ok(x) => Ok(Some(x)),
            Err(error) => abort(self.problem, error),
        }
    }
}

impl<'de> DeserializeSeed<'de> for NumberSeed<'_> {
    type Value = Option<f64>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<f64>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NumberSeed<'_> {
    type Value = Option<f64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<f64>, E> {
        self.number(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<f64>, E> {
        self.number(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<f64>, E> {
        self.number(v as f64)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<f64>, E> {
        Ok(Some(if v { 1.0 } else { 0.0 }))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<f64>, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<f64>, E> {
        self.wrong_type(de::Unexpected::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<Option<f64>, A::Error> {
        self.wrong_type(de::Unexpected::Seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<Option<f64>, A::Error> {
        self.wrong_type(de::Unexpected::Map)
    }
}

/// Reads the value of a String field into the row's text: its slot, `Missing` for null.
pub(super) struct StringSeed<'a> {
    pub(super) field: &'a Field,
    pub(super) row: &'a mut Row,
    pub(super) problem: &'a mut Option<DecodeError>,
}

impl StringSeed<'_> {
    fn wrong_type<E: de::Error>(self, what: de::Unexpected<'_>) -> Result<Slot, E> {
        let error = DecodeError::field(
            DecodeErrorKind::WrongType,
            &self.field.name,
            format!("expected a string, got {}", json_type(what)),
        );
        abort(self.problem, error)
    }
}

impl<'de> DeserializeSeed<'de> for StringSeed<'_> {
    type Value = Slot;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Slot, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StringSeed<'_> {
    type Value = Slot;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Slot, E> {
        Ok(self.row.push_str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Slot, E> {
        Ok(Slot::Missing)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Slot, E> {
        self.wrong_type(de::Unexpected::Float(v))
    }
    // Integers are categories too (class labels, ids, zip codes): they read as their decimal
    // text, so `3` and `"3"` are the same value. Fractions and booleans stay errors.
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Slot, E> {
        Ok(self.row.push_str(&v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Slot, E> {
        Ok(self.row.push_str(&v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Slot, E> {
        self.wrong_type(de::Unexpected::Bool(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<Slot, A::Error> {
        self.wrong_type(de::Unexpected::Seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<Slot, A::Error> {
        self.wrong_type(de::Unexpected::Map)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::Float64Array;

    use crate::decode::BatchBuilder;
    use crate::schema::{Field, Schema};

    #[test]
    fn boundary_magnitude_is_accepted() {
        let schema = Schema::new(vec![Field::number("x"), Field::number("y")]).unwrap();
        let mut b = BatchBuilder::new(Arc::new(schema));
        b.push_json(br#"{"x": 1e100, "y": -1e100}"#).unwrap();
        b.push_json(br#"{"x": 18446744073709551615, "y": -9223372036854775808}"#)
            .unwrap();
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn integers_read_as_text_in_string_fields() {
        let schema = Schema::new(vec![Field::string("label")]).unwrap();
        let mut b = BatchBuilder::new(Arc::new(schema));
        b.push_json(br#"{"label": 3}"#).unwrap();
        b.push_json(br#"{"label": "3"}"#).unwrap();
        b.push_json(br#"{"label": -12}"#).unwrap();
        assert!(b.push_json(br#"{"label": 0.5}"#).is_err());
        let batch = b.finish();
        let labels = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        assert_eq!(
            labels.iter().collect::<Vec<_>>(),
            [Some("3"), Some("3"), Some("-12")]
        );
    }

    #[test]
    fn booleans_and_integers_become_numbers() {
        let schema = Schema::new(vec![Field::number("x"), Field::number("y")]).unwrap();
        let mut b = BatchBuilder::new(Arc::new(schema));
        b.push_json(br#"{"x": true, "y": -7}"#).unwrap();
        b.push_json(br#"{"x": false, "y": 12345678901}"#).unwrap();
        let batch = b.finish();
        let x = batch
            .column(0)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        let y = batch
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(x.values().as_ref(), &[1.0, 0.0]);
        assert_eq!(y.values().as_ref(), &[-7.0, 12345678901.0]);
    }
}
