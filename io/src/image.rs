//! A quick look at a 2-D field: a PNG image through the viridis colour map (perceptually uniform,
//! readable in grey and by colour-blind readers), scaled from the field's minimum to its maximum.

use std::io::BufWriter;
use std::ops::Range;
use std::path::Path;

use mpi::datatype::PartitionMut;
use mpi::traits::*;
use ndarray::{s, Array2, ArrayView2, Axis};
use rankwise_runtime::Field;

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

/// Collective. Draw `u` at `path` on rank 0 ([`write_png`], the folder made if missing): a 2-D
/// field whole, a 3-D one's middle plane along its first axis. Returns the colour range on rank 0,
/// None elsewhere; an error is rank 0's alone (the others only send).
pub fn write_field_png(u: &Field<f64>, path: &Path) -> Result<Option<(f64, f64)>> {
    let n = u.decomposition().ndim();
    if !(2..=3).contains(&n) {
        return Err(IoError::Picture(n));
    }
    let Some(plane) = gather_plane(u, u.decomposition().global_shape()[0] / 2) else { return Ok(None) };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| IoError::File { path: dir.to_path_buf(), source })?;
    }
    write_png(path, plane.view()).map(Some)
}

/// Collective. The plane the picture shows, on rank 0 (None elsewhere): the whole field in 2-D,
/// the plane `x = mid` in 3-D. Only the ranks that own part of it send, and rank 0 receives one
/// plane, never the whole 3-D field.
fn gather_plane(u: &Field<f64>, mid: usize) -> Option<Array2<f64>> {
    let d = u.decomposition();
    let three = d.ndim() == 3;
    // A rank's part of the plane: its 2-D ranges, or None when it owns none of it.
    let part = |owned: Vec<Range<usize>>| match three {
        false => Some(owned),
        true => owned[0].contains(&mid).then(|| owned[1..].to_vec()),
    };
    let cells = |r: &Option<Vec<Range<usize>>>| r.as_ref().map_or(0, |r| r.iter().map(|x| x.len()).product::<usize>());
    let parts: Vec<Option<Vec<Range<usize>>>> = (0..d.size()).map(|r| part(d.owned_by(r))).collect();
    let counts: Vec<i32> = parts.iter().map(|p| i32::try_from(cells(p)).expect("a plane of fewer than 2^31 cells a rank")).collect();
    let displs: Vec<i32> = counts.iter().scan(0i32, |acc, &c| Some(std::mem::replace(acc, *acc + c))).collect();
    let interior = u.interior();
    let mine: Vec<f64> = match (&parts[d.rank()], three) {
        (None, _) => vec![],
        (Some(_), false) => interior.iter().copied().collect(),
        (Some(_), true) => interior.index_axis(Axis(0), mid - d.owned()[0].start).iter().copied().collect(),
    };
    let root = d.comm().process_at_rank(0);
    if d.rank() != 0 {
        root.gather_varcount_into(&mine[..]);
        return None;
    }
    let global = &d.global_shape()[d.ndim() - 2..];
    let mut all = vec![0.0; global.iter().product()];
    root.gather_varcount_into_root(&mine[..], &mut PartitionMut::new(&mut all[..], &counts[..], &displs[..]));
    let mut plane = Array2::zeros((global[0], global[1]));
    for (r, p) in parts.iter().enumerate() {
        if let Some(p) = p {
            let block = ArrayView2::from_shape((p[0].len(), p[1].len()), &all[displs[r] as usize..][..counts[r] as usize]).expect("counts match the parts");
            plane.slice_mut(s![p[0].clone(), p[1].clone()]).assign(&block);
        }
    }
    Some(plane)
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
