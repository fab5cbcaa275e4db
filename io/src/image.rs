//! A quick look at a 2-D field: a PNG image through the viridis colour map (perceptually uniform,
//! readable in grey and by colour-blind readers), scaled from the field's minimum to its maximum.

use std::io::BufWriter;
use std::path::Path;

use ndarray::ArrayView2;

use crate::error::{IoError, Result};

/// Viridis at t = 0, 1/8, ..., 1 (matplotlib's values); colours between are interpolated.
const VIRIDIS: [[u8; 3]; 9] = [
    [0x44, 0x01, 0x54],
    [0x47, 0x2d, 0x7b],
    [0x3b, 0x52, 0x8b],
    [0x2c, 0x72, 0x8e],
    [0x21, 0x91, 0x8c],
    [0x28, 0xae, 0x80],
    [0x5e, 0xc9, 0x62],
    [0xad, 0xdc, 0x30],
    [0xfd, 0xe7, 0x25],
];

/// The colour of `t` in [0, 1] (clamped; NaN is the bottom colour).
pub fn colour(t: f64) -> [u8; 3] {
    let x = if t >= 0.0 { t.min(1.0) * (VIRIDIS.len() - 1) as f64 } else { 0.0 };
    let i = (x as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f64;
    std::array::from_fn(|c| (VIRIDIS[i][c] as f64 * (1.0 - f) + VIRIDIS[i + 1][c] as f64 * f).round() as u8)
}

/// Write `plane` as an RGB PNG, row `i` of the image being `plane[[i, ..]]`, the colours spanning
/// its minimum to its maximum (which it returns). A constant plane is all the bottom colour.
pub fn write_png(path: &Path, plane: ArrayView2<f64>) -> Result<(f64, f64)> {
    let (lo, hi) = plane.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let pixels: Vec<u8> = plane.iter().flat_map(|&v| colour((v - lo) / span)).collect();
    let (rows, cols) = plane.dim();
    let fail = |e: std::io::Error| IoError::File { path: path.to_path_buf(), source: e };
    let file = std::fs::File::create(path).map_err(fail)?;
    let mut png = png::Encoder::new(BufWriter::new(file), cols as u32, rows as u32);
    png.set_color(png::ColorType::Rgb);
    png.set_depth(png::BitDepth::Eight);
    png.write_header()
        .and_then(|mut w| w.write_image_data(&pixels).and_then(|()| w.finish()))
        .map_err(|e| fail(std::io::Error::other(e)))?;
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_runs_from_dark_to_bright_and_ends_on_its_anchors() {
        assert_eq!(colour(0.0), VIRIDIS[0]);
        assert_eq!(colour(0.5), VIRIDIS[4]);
        assert_eq!(colour(1.0), VIRIDIS[8]);
        assert_eq!(colour(-3.0), VIRIDIS[0]);
        assert_eq!(colour(f64::NAN), VIRIDIS[0]);
        assert_eq!(colour(7.0), VIRIDIS[8]);
        // Luma grows with t: the map reads in grey too.
        let luma = |c: [u8; 3]| 0.299 * c[0] as f64 + 0.587 * c[1] as f64 + 0.114 * c[2] as f64;
        let l: Vec<f64> = (0..=100).map(|k| luma(colour(k as f64 / 100.0))).collect();
        assert!(l.windows(2).all(|w| w[1] >= w[0]), "{l:?}");
    }
}
