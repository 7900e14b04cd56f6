//! Per-frame features of raw RGB24 video: colour histogram, mean brightness and motion energy.
//!
//! A frame is `width * height` pixels of three bytes (red, green, blue), row after row, as
//! `ffmpeg -f rawvideo -pix_fmt rgb24` writes them. Brightness is luma with the BT.601 weights
//! (`0.299 R + 0.587 G + 0.114 B`, scaled to [0, 1]); motion energy is the mean absolute luma
//! difference against the previous frame, so a still picture scores 0 and a cut to a very
//! different picture scores up to 1. Every feature lies in [0, 1], which keeps distances between
//! frames comparable without a scaler.

use crate::error::{DecodeError, DecodeErrorKind};

/// Histogram bins per colour channel; each covers 256 / 8 = 32 byte values.
pub const HISTOGRAM_BINS: usize = 8;

const CHANNELS: [char; 3] = ['r', 'g', 'b'];

/// The features of one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameFeatures {
    /// Mean luma in [0, 1].
    pub brightness: f64,
    /// Mean absolute luma difference against the previous frame; 0 for the first frame.
    pub motion: f64,
    /// Fraction of pixels per bin, by channel (red, green, blue); each channel sums to 1.
    pub histogram: [[f64; HISTOGRAM_BINS]; 3],
}

impl FrameFeatures {
    /// The names of [`values`](Self::values), in the same order: `brightness`, `motion`,
    /// `hist_r0`..`hist_r7`, `hist_g0`..`hist_g7`, `hist_b0`..`hist_b7`.
    pub fn names() -> Vec<String> {
        let mut names = vec!["brightness".to_owned(), "motion".to_owned()];
        for c in CHANNELS {
            names.extend((0..HISTOGRAM_BINS).map(|b| format!("hist_{c}{b}")));
        }
        names
    }

    /// The feature values in the order of [`names`](Self::names).
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        [self.brightness, self.motion]
            .into_iter()
            .chain(self.histogram.iter().flatten().copied())
    }
}

/// The byte length of one RGB24 frame, `None` if it overflows `usize`.
pub fn frame_len(width: usize, height: usize) -> Option<usize> {
    width.checked_mul(height)?.checked_mul(3)
}

/// Computes the features of `rgb` (one RGB24 frame of `width` x `height`) against `previous`
/// (the frame before it, if any). A frame or previous frame of the wrong length is refused as
/// `malformed`, e.g. the truncated last frame of a stream that was cut off.
pub fn frame_features(
    width: usize,
    height: usize,
    rgb: &[u8],
    previous: Option<&[u8]>,
) -> Result<FrameFeatures, DecodeError> {
    let expected = frame_len(width, height).filter(|&n| n > 0).ok_or_else(|| {
        DecodeError::record(
            DecodeErrorKind::Malformed,
            format!("frame size {width}x{height} is empty or too large"),
        )
    })?;
    for (what, len) in [
        ("frame", Some(rgb.len())),
        ("previous frame", previous.map(<[u8]>::len)),
    ] {
        if let Some(len) = len.filter(|&len| len != expected) {
            return Err(DecodeError::record(
                DecodeErrorKind::Malformed,
                format!("{what} has {len} bytes, a {width}x{height} rgb24 frame has {expected}"),
            ));
        }
    }
    let pixels = (width * height) as f64;
    let mut counts = [[0u64; HISTOGRAM_BINS]; 3];
    let mut luma_sum = 0.0;
    let mut motion_sum = 0.0;
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        for (channel, &value) in px.iter().enumerate() {
            counts[channel][usize::from(value) * HISTOGRAM_BINS / 256] += 1;
        }
        let y = luma(px);
        luma_sum += y;
        if let Some(previous) = previous {
            motion_sum += (y - luma(&previous[3 * i..3 * i + 3])).abs();
        }
    }
    let histogram = counts.map(|channel| channel.map(|n| n as f64 / pixels));
    Ok(FrameFeatures {
        brightness: luma_sum / pixels,
        motion: motion_sum / pixels,
        histogram,
    })
}

/// BT.601 luma of one pixel, in [0, 1].
fn luma(px: &[u8]) -> f64 {
    (0.299 * f64::from(px[0]) + 0.587 * f64::from(px[1]) + 0.114 * f64::from(px[2])) / 255.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame whose pixels are the given colours in order.
    fn frame(pixels: &[[u8; 3]]) -> Vec<u8> {
        pixels.iter().flatten().copied().collect()
    }

    #[test]
    fn histogram_and_brightness_of_a_hand_made_frame() {
        // 2x2: black, white, pure red, and grey 100 (bin 100 / 32 = 3).
        let rgb = frame(&[[0, 0, 0], [255, 255, 255], [255, 0, 0], [100, 100, 100]]);
        let f = frame_features(2, 2, &rgb, None).unwrap();
        // Red: 0 (bin 0), 255 (bin 7), 255 (bin 7), 100 (bin 3).
        assert_eq!(f.histogram[0], [0.25, 0.0, 0.0, 0.25, 0.0, 0.0, 0.0, 0.5]);
        // Green and blue: 0, 255, 0, 100.
        for channel in [1, 2] {
            assert_eq!(
                f.histogram[channel],
                [0.5, 0.0, 0.0, 0.25, 0.0, 0.0, 0.0, 0.25]
            );
        }
        // Luma: 0, 1, 0.299, 100/255 (the weights sum to 1).
        let expected = (0.0 + 1.0 + 0.299 + 100.0 / 255.0) / 4.0;
        assert!((f.brightness - expected).abs() < 1e-12, "{}", f.brightness);
        assert_eq!(f.motion, 0.0);
    }

    #[test]
    fn bin_edges_fall_every_32_values() {
        let rgb = frame(&[[31, 32, 63], [64, 223, 224]]);
        let f = frame_features(2, 1, &rgb, None).unwrap();
        assert_eq!(f.histogram[0][0], 0.5); // 31
        assert_eq!(f.histogram[0][2], 0.5); // 64
        assert_eq!(f.histogram[1][1], 0.5); // 32
        assert_eq!(f.histogram[1][6], 0.5); // 223
        assert_eq!(f.histogram[2][1], 0.5); // 63
        assert_eq!(f.histogram[2][7], 0.5); // 224
    }

    #[test]
    fn motion_is_the_mean_absolute_luma_change() {
        let before = frame(&[[0, 0, 0], [255, 255, 255], [10, 20, 30]]);
        // Pixel 0 turns white (+1), pixel 1 turns green (1 - 0.587), pixel 2 stays.
        let after = frame(&[[255, 255, 255], [0, 255, 0], [10, 20, 30]]);
        let f = frame_features(3, 1, &after, Some(&before)).unwrap();
        let expected = (1.0 + (1.0 - 0.587)) / 3.0;
        assert!((f.motion - expected).abs() < 1e-12, "{}", f.motion);
        let still = frame_features(3, 1, &after, Some(&after)).unwrap();
        assert_eq!(still.motion, 0.0);
    }

    #[test]
    fn names_match_values() {
        let rgb = frame(&[[200, 100, 0]]);
        let f = frame_features(1, 1, &rgb, None).unwrap();
        let names = FrameFeatures::names();
        let values: Vec<f64> = f.values().collect();
        assert_eq!(names.len(), 2 + 3 * HISTOGRAM_BINS);
        assert_eq!(values.len(), names.len());
        assert_eq!(names[2], "hist_r0");
        assert_eq!(names[25], "hist_b7");
        // 200 is red bin 6, 100 green bin 3, 0 blue bin 0.
        for (name, value) in names.iter().zip(&values).skip(2) {
            let hot = matches!(name.as_str(), "hist_r6" | "hist_g3" | "hist_b0");
            assert_eq!(*value, if hot { 1.0 } else { 0.0 }, "{name}");
        }
    }

    #[test]
    fn a_truncated_frame_is_malformed_not_a_panic() {
        let err = frame_features(2, 2, &[0; 11], None).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::Malformed);
        assert_eq!(
            err.to_string(),
            "frame has 11 bytes, a 2x2 rgb24 frame has 12"
        );
        let err = frame_features(2, 2, &[0; 12], Some(&[0; 3])).unwrap_err();
        assert!(
            err.to_string().starts_with("previous frame has 3 bytes"),
            "{err}"
        );
        assert!(frame_features(0, 2, &[], None).is_err());
    }
}
