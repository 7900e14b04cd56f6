//! Reads a byte stream on its own thread, a block at a time and a few blocks ahead: gzip input
//! is decompressed this way, so inflating overlaps with parsing on the source thread.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver};

/// Bytes per block handed across.
const BLOCK_BYTES: usize = 256 * 1024;
/// Blocks waiting at most: with the one being filled and the one being read, the memory bound
/// is `(BLOCKS_AHEAD + 2) * BLOCK_BYTES`, 1.5 MiB.
const BLOCKS_AHEAD: usize = 4;

/// A [`Read`] over another reader that runs on a thread of its own.
pub(crate) struct ReadAhead {
    blocks: Receiver<io::Result<Vec<u8>>>,
    block: Vec<u8>,
    at: usize,
    ended: bool,
}

impl ReadAhead {
    /// Starts reading `input` on a new thread. The thread stops at the end of the input, at its
    /// first error (handed on), or when this reader is dropped.
    pub(crate) fn spawn(mut input: impl Read + Send + 'static) -> io::Result<ReadAhead> {
        let (tx, blocks) = sync_channel(BLOCKS_AHEAD);
        std::thread::Builder::new()
            .name("eddy-inflate".into())
            .spawn(move || loop {
                let mut block = vec![0; BLOCK_BYTES];
                let mut filled = 0;
                let result = loop {
                    match input.read(&mut block[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == block.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                block.truncate(filled);
                // A send fails once the reader is gone, which ends the thread.
                if filled > 0 && tx.send(Ok(block)).is_err() {
                    return;
                }
                if let Err(e) = result {
                    let _ = tx.send(Err(e));
                    return;
                }
                if filled < BLOCK_BYTES {
                    // A short block means the input ended; an empty block says so.
                    let _ = tx.send(Ok(Vec::new()));
                    return;
                }
            })?;
        Ok(ReadAhead {
            blocks,
            block: Vec::new(),
            at: 0,
            ended: false,
        })
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.block.len() {
            if self.ended {
                return Ok(0);
            }
            match self.blocks.recv() {
                Ok(Ok(block)) if block.is_empty() => self.ended = true,
                Ok(Ok(block)) => {
                    self.block = block;
                    self.at = 0;
                }
                Ok(Err(e)) => {
                    self.ended = true;
                    return Err(e);
                }
                Err(_) => {
                    self.ended = true;
                    return Err(io::Error::other("the reading thread stopped early"));
                }
            }
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn gzip_read_ahead_gives_the_same_bytes_and_hands_on_errors() {
        let data: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).expect("compresses");
        let compressed = gz.finish().expect("compresses");

        let mut out = Vec::new();
        ReadAhead::spawn(flate2::read::MultiGzDecoder::new(io::Cursor::new(
            compressed.clone(),
        )))
        .expect("starts")
        .read_to_end(&mut out)
        .expect("reads");
        assert_eq!(out, data);

        // A truncated file is an error, after the bytes that could be read.
        let cut = compressed[..compressed.len() / 2].to_vec();
        let mut partial = Vec::new();
        let err = ReadAhead::spawn(flate2::read::MultiGzDecoder::new(io::Cursor::new(cut)))
            .expect("starts")
            .read_to_end(&mut partial)
            .expect_err("truncated");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        assert!(!partial.is_empty() && data.starts_with(&partial));

        // Dropping the reader early stops the thread instead of blocking it.
        let mut early = ReadAhead::spawn(io::repeat(7)).expect("starts");
        let mut some = [0u8; 10];
        early.read_exact(&mut some).expect("reads");
        drop(early);
    }
}
