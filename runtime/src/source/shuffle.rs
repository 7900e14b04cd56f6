//! A seeded shuffle buffer over a source, for offline training (`shuffle_seed`): records are
//! learned in a random order that depends only on the seed, the input and the buffer size,
//! holding at most `buffer` records (plus one chunk) in memory.
//!
//! The buffer fills with the first `buffer` records; from then on each record pulled in lets one
//! record, drawn uniformly from the buffer, go out; at the end the rest drains in random order.
//! A record therefore moves at most `buffer` plus two chunks places earlier, and anywhere later. Dead
//! letters pass straight through. The order is not the stream's order, so the position reported
//! is [`Location::Shuffled`], from which no run can resume.

use arrow_array::RecordBatch;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{Chunk, Coordinates, Location, Position, Source};
use crate::error::{Result, RuntimeError};

pub(crate) struct Shuffled {
    inner: Box<dyn Source>,
    rng: Xoshiro256PlusPlus,
    buffer: usize,
    /// Batches that still hold buffered rows (a slot is freed when its last row has gone).
    batches: Vec<Option<RecordBatch>>,
    /// Rows waiting: (batch slot, row, sequence number, Kafka coordinates).
    waiting: Vec<(usize, usize, u64, Option<Coordinates>)>,
    /// Rows still waiting per batch slot.
    left: Vec<usize>,
    ended: bool,
    records: u64,
    /// The batches' schema, for a chunk that carries only dead letters.
    schema: Option<arrow_schema::SchemaRef>,
}

impl Shuffled {
    pub(crate) fn new(inner: Box<dyn Source>, seed: u64, buffer: usize) -> Shuffled {
        Shuffled {
            inner,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5_4FF1E),
            buffer: buffer.max(1),
            batches: Vec::new(),
            waiting: Vec::new(),
            left: Vec::new(),
            ended: false,
            records: 0,
            schema: None,
        }
    }

    fn take_in(&mut self, chunk: Chunk) -> Vec<super::DeadLetter> {
        self.schema.get_or_insert_with(|| chunk.batch.schema());
        let rows = chunk.batch.num_rows();
        if rows > 0 {
            let slot = match self.batches.iter().position(Option::is_none) {
                Some(free) => free,
                None => {
                    self.batches.push(None);
                    self.left.push(0);
                    self.batches.len() - 1
                }
            };
            self.batches[slot] = Some(chunk.batch);
            self.left[slot] = rows;
            for (row, seq) in chunk.seqs.iter().enumerate() {
                self.waiting
                    .push((slot, row, *seq, chunk.origins.get(row).cloned()));
            }
        }
        chunk.dead
    }
}

impl Source for Shuffled {
    fn next_chunk(&mut self, max: usize) -> Result<Option<Chunk>> {
        let mut dead = Vec::new();
        // Fill until the buffer holds more than `buffer` rows (or the input ends), so `max`
        // rows can leave while `buffer` stay.
        while !self.ended && self.waiting.len() < self.buffer + max {
            match self.inner.next_chunk(max)? {
                Some(chunk) => dead.extend(self.take_in(chunk)),
                None => self.ended = true,
            }
        }
        let out = if self.ended {
            max.min(self.waiting.len())
        } else {
            max.min(self.waiting.len() - self.buffer)
        };
        if out == 0 && dead.is_empty() {
            return Ok(None);
        }
        let mut picks = Vec::with_capacity(out);
        let (mut seqs, mut origins) = (Vec::with_capacity(out), Vec::new());
        for _ in 0..out {
            let i = self.rng.gen_range(0..self.waiting.len());
            let (slot, row, seq, origin) = self.waiting.swap_remove(i);
            picks.push((slot, row));
            seqs.push(seq);
            origins.extend(origin);
        }
        let batch = if picks.is_empty() {
            let schema = self.schema.clone();
            RecordBatch::new_empty(
                schema.unwrap_or_else(|| std::sync::Arc::new(arrow_schema::Schema::empty())),
            )
        } else {
            let sources: Vec<&RecordBatch> = self.batches.iter().flatten().collect();
            // `interleave` indexes the batches it is given; map slots to that order.
            let mut order = vec![usize::MAX; self.batches.len()];
            let mut k = 0;
            for (slot, b) in self.batches.iter().enumerate() {
                if b.is_some() {
                    order[slot] = k;
                    k += 1;
                }
            }
            let indices: Vec<(usize, usize)> = picks
                .iter()
                .map(|&(slot, row)| (order[slot], row))
                .collect();
            arrow_select::interleave::interleave_record_batch(&sources, &indices)
                .map_err(|e| RuntimeError::Internal(format!("shuffling a batch: {e}")))?
        };
        for &(slot, _) in &picks {
            self.left[slot] -= 1;
            if self.left[slot] == 0 {
                self.batches[slot] = None;
            }
        }
        self.records += (out + dead.len()) as u64;
        Ok(Some(Chunk {
            batch,
            seqs,
            origins: if origins.len() == out {
                origins
            } else {
                Vec::new()
            },
            dead,
            end: self.position(),
        }))
    }

    fn position(&self) -> Position {
        Position {
            records: self.records,
            location: Location::Shuffled,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, Float64Array};
    use eddy_features::{BatchBuilder, Field, Schema};

    use super::*;
    use crate::source::ChunkParts;

    /// Records 0..n with `x` = the record's number, in chunks of `chunk`.
    struct Counting {
        builder: BatchBuilder,
        next: u64,
        n: u64,
        chunk: u64,
    }

    impl Source for Counting {
        fn next_chunk(&mut self, max: usize) -> Result<Option<Chunk>> {
            let take = (max as u64).min(self.chunk).min(self.n - self.next);
            if take == 0 {
                return Ok(None);
            }
            let mut parts = ChunkParts::new();
            for i in self.next..self.next + take {
                self.builder.push_values(&[Some(i as f64)], &[]).unwrap();
                parts.seqs.push(i);
            }
            self.next += take;
            let end = self.position();
            Ok(Some(parts.finish(&mut self.builder, end)))
        }

        fn position(&self) -> Position {
            Position {
                records: self.next,
                location: Location::Generator,
            }
        }
    }

    /// (output index, record) in the order the shuffled source hands records on.
    fn shuffled(seed: u64, buffer: usize, n: u64) -> Vec<u64> {
        let schema = Arc::new(Schema::new(vec![Field::number("x").required(true)]).unwrap());
        let inner = Counting {
            builder: BatchBuilder::new(schema),
            next: 0,
            n,
            chunk: 64,
        };
        let mut source = Shuffled::new(Box::new(inner), seed, buffer);
        let mut out = Vec::new();
        while let Some(chunk) = source.next_chunk(100).unwrap() {
            let x = chunk
                .batch
                .column(0)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap();
            for (row, seq) in chunk.seqs.iter().enumerate() {
                assert_eq!(
                    x.value(row),
                    *seq as f64,
                    "a row and its sequence number part"
                );
                out.push(*seq);
            }
            assert_eq!(chunk.end.location, Location::Shuffled);
        }
        out
    }

    #[test]
    fn every_record_once_in_a_seeded_order_moving_at_most_a_buffer_earlier() {
        let order = shuffled(1, 500, 5_000);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..5_000).collect::<Vec<_>>());
        assert_ne!(order, sorted);
        assert_eq!(order, shuffled(1, 500, 5_000));
        assert_ne!(order, shuffled(2, 500, 5_000));
        // Record `r` is pulled in once at most the buffer (500), one outgoing chunk (100) and
        // one incoming chunk (64) are ahead of what has left: its place is at least r - 664.
        let mut earliest = 0;
        for (place, &r) in order.iter().enumerate() {
            assert!(place as u64 + 664 > r, "record {r} left at {place}");
            earliest = earliest.max(r - r.min(place as u64));
        }
        assert!(
            earliest > 500,
            "the buffer mixes as far as it can: {earliest}"
        );
    }
}
