//! String columns as the operators and the runtime read them: plain `Utf8`, or dictionary-encoded
//! with 32-bit keys, which the columnar source keeps for the fields that only hashers read (see
//! [`FeatureSet::hash_only_fields`](crate::FeatureSet::hash_only_fields)).

use arrow_array::types::Int32Type;
use arrow_array::{Array, DictionaryArray, Int32Array, RecordBatch, StringArray};
use arrow_schema::DataType;

use crate::error::{FeatureError, Result};

/// The type of a dictionary-encoded string column that
/// [`FeatureSet::hash_only_fields`](crate::FeatureSet::hash_only_fields) may have.
pub fn dictionary_strings() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// Row `row` of a string column, plain or dictionary-encoded; `None` when it is null (a null key
/// or a null dictionary value) or the column is not a string column.
pub fn string_value(column: &dyn Array, row: usize) -> Option<&str> {
    Strings::from_array(column)?.get(row)
}

/// A string column, plain or dictionary-encoded.
pub(crate) enum Strings<'b> {
    Plain(&'b StringArray),
    Dictionary {
        array: &'b DictionaryArray<Int32Type>,
        keys: &'b Int32Array,
        values: &'b StringArray,
    },
}

impl<'b> Strings<'b> {
    /// Column `i` of `batch`, which must be a string column.
    pub(crate) fn of(batch: &'b RecordBatch, i: usize) -> Result<Strings<'b>> {
        batch
            .columns()
            .get(i)
            .and_then(|c| Strings::from_array(c.as_ref()))
            .ok_or_else(|| {
                FeatureError::BatchMismatch(format!("column {i} is missing or not a string column"))
            })
    }

    fn from_array(array: &'b dyn Array) -> Option<Strings<'b>> {
        let array = array.as_any();
        if let Some(plain) = array.downcast_ref::<StringArray>() {
            return Some(Strings::Plain(plain));
        }
        let array = array.downcast_ref::<DictionaryArray<Int32Type>>()?;
        let values = array.values().as_any().downcast_ref::<StringArray>()?;
        Some(Strings::Dictionary {
            array,
            keys: array.keys(),
            values,
        })
    }

    /// Row `row`'s value; `None` when it is null.
    #[inline]
    pub(crate) fn get(&self, row: usize) -> Option<&'b str> {
        match self {
            Strings::Plain(a) => a.is_valid(row).then(|| a.value(row)),
            Strings::Dictionary { keys, values, .. } => {
                let k = dictionary_key(keys, row)?;
                (k < values.len() && values.is_valid(k)).then(|| values.value(k))
            }
        }
    }
}

/// The dictionary key of row `row`, `None` when the row is null.
#[inline]
pub(crate) fn dictionary_key(keys: &Int32Array, row: usize) -> Option<usize> {
    usize::try_from(keys.is_valid(row).then(|| keys.value(row))?).ok()
}
