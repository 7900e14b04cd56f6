//! `AlignedF64s`: a `Vec<f64>` whose first element sits on a 32-byte boundary.

use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Alignment of the first element, in bytes: a 4-number (32-byte) coordinate of the adaptive
/// optimizers then fills half a cache line and never straddles two.
const ALIGN: usize = 32;

/// `f64`s starting on an [`ALIGN`]-byte boundary. The allocator only promises 16 bytes (large
/// blocks come from `mmap` at a page plus 16), which left every other FTRL or Adam coordinate on
/// two cache lines, so the buffer holds a few spare numbers in front and starts past them.
///
/// Serialises exactly as the `Vec<f64>` it replaces (a sequence of its numbers), and dereferences
/// to the slice of them.
#[derive(Debug)]
pub(crate) struct AlignedF64s {
    buf: Vec<f64>,
    start: usize,
    len: usize,
}

impl AlignedF64s {
    pub(crate) fn zeros(len: usize) -> Self {
        if len == 0 {
            return Self::from_vec(Vec::new());
        }
        // zeroed memory straight from the allocator (calloc), on huge pages when large
        let (buf, start) = crate::pages::zeroed_span(len, ALIGN);
        Self { buf, start, len }
    }

    /// Keeps `v` if it happens to be aligned and small enough for normal pages (see
    /// [`crate::pages`]), else copies it into a fresh buffer.
    pub(crate) fn from_vec(v: Vec<f64>) -> Self {
        let keep = v.as_ptr().align_offset(ALIGN) == 0 && !crate::pages::wants_huge(&v);
        if keep || v.is_empty() {
            let len = v.len();
            return Self {
                buf: v,
                start: 0,
                len,
            };
        }
        Self::copy_of(&v)
    }

    fn copy_of(values: &[f64]) -> Self {
        let mut aligned = Self::zeros(values.len());
        aligned.copy_from_slice(values);
        aligned
    }
}

impl Deref for AlignedF64s {
    type Target = [f64];

    #[inline]
    fn deref(&self) -> &[f64] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl DerefMut for AlignedF64s {
    #[inline]
    fn deref_mut(&mut self) -> &mut [f64] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

/// A clone lands at another address, so it is laid out afresh.
impl Clone for AlignedF64s {
    fn clone(&self) -> Self {
        if self.is_empty() {
            return Self::from_vec(Vec::new());
        }
        Self::copy_of(self)
    }
}

impl PartialEq for AlignedF64s {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Serialize for AlignedF64s {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AlignedF64s {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<f64>::deserialize(deserializer).map(Self::from_vec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_aligned(a: &AlignedF64s) -> bool {
        a.as_ptr().align_offset(ALIGN) == 0
    }

    #[test]
    fn zeros_clones_and_loads_start_aligned() {
        for len in [1usize, 5, 4 << 20] {
            let mut a = AlignedF64s::zeros(len);
            assert!(is_aligned(&a) && a.len() == len && a.iter().all(|&v| v == 0.0));
            a[len - 1] = 2.5;
            let b = a.clone();
            assert!(is_aligned(&b) && b == a);
            let c = AlignedF64s::from_vec(a.to_vec());
            assert!(is_aligned(&c) && c == a);
        }
        assert!(AlignedF64s::zeros(0).is_empty());
    }

    /// The serialised bytes are the `Vec<f64>`'s, in the binary formats of artifacts and in JSON,
    /// so artifacts written before this type existed load unchanged.
    #[test]
    fn serialises_as_the_vec_it_replaces() {
        let v = vec![1.0, -0.0, 3.5, f64::MAX, 1e-300];
        let mut a = AlignedF64s::zeros(v.len());
        a.copy_from_slice(&v);
        assert_eq!(
            postcard::to_stdvec(&a).unwrap(),
            postcard::to_stdvec(&v).unwrap()
        );
        assert_eq!(
            rmp_serde::to_vec_named(&a).unwrap(),
            rmp_serde::to_vec_named(&v).unwrap()
        );
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&v).unwrap()
        );
        let bytes = postcard::to_stdvec(&v).unwrap();
        let back: AlignedF64s = postcard::from_bytes(&bytes).unwrap();
        assert!(is_aligned(&back));
        assert_eq!(
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
}
