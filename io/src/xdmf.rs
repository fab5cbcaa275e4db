//! XDMF descriptions that let ParaView and VisIt open a checkpoint's fields directly: one uniform
//! grid per distinct field shape, on unit spacing, with the fields as node-centred attributes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{IoError, Result};
use crate::meta::FieldInfo;

/// Write `<h5 stem>.xmf` beside the HDF5 file `h5` (through a temporary name and a rename).
pub fn write(h5: &Path, step: u64, time: f64, fields: &[FieldInfo]) -> Result<PathBuf> {
    let xmf = h5.with_extension("xmf");
    let file = h5.file_name().unwrap_or_default().to_string_lossy();
    let tmp = h5.with_extension("xmf.partial");
    std::fs::write(&tmp, document(&file, step, time, fields))
        .and_then(|()| std::fs::rename(&tmp, &xmf))
        .map_err(|source| {
            // A full disk is not left fuller.
            let _ = std::fs::remove_file(&tmp);
            IoError::File { path: xmf.clone(), source }
        })?;
    Ok(xmf)
}

/// The XDMF 3 text for `fields` stored in the HDF5 file named `file` (relative to the .xmf).
pub fn document(file: &str, step: u64, time: f64, fields: &[FieldInfo]) -> String {
    let mut shapes: Vec<&[usize]> = fields.iter().map(|f| f.shape.as_slice()).collect();
    shapes.sort();
    shapes.dedup();
    let mut x = String::from("<?xml version=\"1.0\" ?>\n<Xdmf Version=\"3.0\">\n <Domain>\n");
    for shape in shapes {
        // XDMF structured meshes are 2-D or 3-D: a 1-D field is a 1 x n sheet.
        let mesh: Vec<usize> = if shape.len() == 1 { vec![1, shape[0]] } else { shape.to_vec() };
        let dims = join(&mesh);
        let (topo, geo) = if mesh.len() == 3 { ("3DCoRectMesh", "ORIGIN_DXDYDZ") } else { ("2DCoRectMesh", "ORIGIN_DXDY") };
        let zeros = join(&vec![0; mesh.len()]);
        let ones = join(&vec![1; mesh.len()]);
        let _ = write!(
            x,
            "  <Grid Name=\"step{step}_{}\" GridType=\"Uniform\">\n   <Time Value=\"{time:?}\"/>\n   <Topology TopologyType=\"{topo}\" Dimensions=\"{dims}\"/>\n   <Geometry GeometryType=\"{geo}\">\n    <DataItem Dimensions=\"{n}\" Format=\"XML\">{zeros}</DataItem>\n    <DataItem Dimensions=\"{n}\" Format=\"XML\">{ones}</DataItem>\n   </Geometry>\n",
            mesh.iter().map(ToString::to_string).collect::<Vec<_>>().join("x"),
            n = mesh.len(),
        );
        for f in fields.iter().filter(|f| f.shape == shape) {
            let precision = if f.dtype == "f32" { 4 } else { 8 };
            let _ = write!(
                x,
                "   <Attribute Name=\"{name}\" AttributeType=\"Scalar\" Center=\"Node\">\n    <DataItem Dimensions=\"{dims}\" NumberType=\"Float\" Precision=\"{precision}\" Format=\"HDF\">{file}:/{name}</DataItem>\n   </Attribute>\n",
                name = f.name,
            );
        }
        x.push_str("  </Grid>\n");
    }
    x.push_str(" </Domain>\n</Xdmf>\n");
    x
}

fn join(v: &[usize]) -> String {
    v.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_grid_per_shape_and_one_attribute_per_field() {
        let f = |name: &str, shape: &[usize], dtype: &str| FieldInfo { name: name.into(), shape: shape.to_vec(), dtype: dtype.into(), checksum: 0, blocks: 1, blocks_checksum: 0 };
        let x = document("ckpt-0000000007.h5", 7, 0.5, &[f("u", &[4, 5, 6], "f64"), f("v", &[4, 5, 6], "f32"), f("h", &[9], "f64")]);
        assert_eq!(x.matches("<Grid ").count(), 2, "{x}");
        assert!(x.contains("TopologyType=\"3DCoRectMesh\" Dimensions=\"4 5 6\""), "{x}");
        assert!(x.contains("TopologyType=\"2DCoRectMesh\" Dimensions=\"1 9\""), "{x}");
        assert!(x.contains("Precision=\"4\" Format=\"HDF\">ckpt-0000000007.h5:/v</DataItem>"), "{x}");
        assert!(x.contains("<Time Value=\"0.5\"/>"), "{x}");
    }
}
