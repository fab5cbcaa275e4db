//! What a checkpoint says about itself: the attributes on the file and on each field, written
//! and read the same way by parallel jobs and by serial tools.

use std::fmt;
use std::path::{Path, PathBuf};

use hdf5::types::{TypeDescriptor, VarLenUnicode};
use hdf5::{H5Type, Location};

use crate::error::{Context, IoError, Result};

/// The checkpoint layout this Rankwise writes; it reads this one and older ones.
pub const FORMAT_VERSION: u32 = 1;
/// The value of the file's `format` attribute.
pub const FORMAT: &str = "rankwise-checkpoint";
/// The group holding the user's scalar parameters, one attribute each.
pub(crate) const PARAMS: &str = "parameters";

/// A user-supplied scalar stored with a checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}
impl From<f64> for Param {
    fn from(v: f64) -> Self {
        Param::Float(v)
    }
}
impl From<bool> for Param {
    fn from(v: bool) -> Self {
        Param::Bool(v)
    }
}
impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Str(v.into())
    }
}
impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Str(v)
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Param::Int(v) => write!(f, "{v}"),
            Param::Float(v) => write!(f, "{v:?}"),
            Param::Bool(v) => write!(f, "{v}"),
            Param::Str(v) => write!(f, "{v:?}"),
        }
    }
}

/// One field (dataset) of a checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldInfo {
    pub name: String,
    /// The global shape.
    pub shape: Vec<usize>,
    /// `f64` or `f32`.
    pub dtype: String,
    /// See [`crate::checksum`].
    pub checksum: u64,
    /// The decomposition it was written with: each writing rank's block as (start, shape).
    pub blocks: Vec<(Vec<usize>, Vec<usize>)>,
}

/// Everything a checkpoint says about itself.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointInfo {
    pub path: PathBuf,
    pub step: u64,
    pub time: f64,
    pub format_version: u32,
    pub rankwise_version: String,
    /// How many ranks wrote it.
    pub ranks: u64,
    pub params: Vec<(String, Param)>,
    pub fields: Vec<FieldInfo>,
}

impl CheckpointInfo {
    pub fn field(&self, name: &str) -> Result<&FieldInfo> {
        self.fields.iter().find(|f| f.name == name).ok_or_else(|| IoError::MissingField {
            path: self.path.clone(),
            name: name.into(),
            have: self.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

impl fmt::Display for CheckpointInfo {
    /// The `inspect` view: one `key: value` line each, then one line per field.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "file: {}", self.path.display())?;
        writeln!(f, "step: {}", self.step)?;
        writeln!(f, "time: {:?}", self.time)?;
        writeln!(f, "format: {FORMAT} v{} (rankwise {})", self.format_version, self.rankwise_version)?;
        writeln!(f, "ranks: {}", self.ranks)?;
        for (k, v) in &self.params {
            writeln!(f, "param {k} = {v}")?;
        }
        for fi in &self.fields {
            writeln!(f, "field {} {} {:?} checksum={:016x} written as {} blocks", fi.name, fi.dtype, fi.shape, fi.checksum, fi.blocks.len())?;
        }
        Ok(())
    }
}

pub(crate) fn put<T: H5Type>(loc: &Location, name: &str, v: &T) -> Result<()> {
    loc.new_attr::<T>().create(name).and_then(|a| a.write_scalar(v)).context(|| format!("writing attribute {name}"))
}

pub(crate) fn put_str(loc: &Location, name: &str, v: &str) -> Result<()> {
    let s: VarLenUnicode = v.parse().map_err(|e| IoError::Hdf5 { context: format!("attribute {name}"), source: hdf5::Error::from(format!("{e}")) })?;
    put(loc, name, &s)
}

pub(crate) fn put_vec(loc: &Location, name: &str, v: &[usize]) -> Result<()> {
    let v: Vec<u64> = v.iter().map(|&x| x as u64).collect();
    loc.new_attr_builder().with_data(v.as_slice()).create(name).map(drop).context(|| format!("writing attribute {name}"))
}

pub(crate) fn put_param(loc: &Location, name: &str, v: &Param) -> Result<()> {
    match v {
        Param::Int(x) => put(loc, name, x),
        Param::Float(x) => put(loc, name, x),
        Param::Bool(x) => put(loc, name, x),
        Param::Str(x) => put_str(loc, name, x),
    }
}

/// Reads attributes of one file, turning any absence or damage into [`IoError::Corrupt`].
struct Reader<'a> {
    path: &'a Path,
}

impl Reader<'_> {
    fn corrupt(&self, reason: String) -> IoError {
        IoError::Corrupt { path: self.path.to_path_buf(), reason }
    }
    fn get<T: H5Type>(&self, loc: &Location, name: &str) -> Result<T> {
        loc.attr(name).and_then(|a| a.read_scalar::<T>()).map_err(|e| self.corrupt(format!("attribute `{name}`: {e}")))
    }
    fn get_str(&self, loc: &Location, name: &str) -> Result<String> {
        self.get::<VarLenUnicode>(loc, name).map(|s| s.as_str().to_string())
    }
    fn get_vec(&self, loc: &Location, name: &str) -> Result<Vec<usize>> {
        let v = loc.attr(name).and_then(|a| a.read_raw::<u64>());
        v.map(|v| v.into_iter().map(|x| x as usize).collect()).map_err(|e| self.corrupt(format!("attribute `{name}`: {e}")))
    }
    fn get_param(&self, loc: &Location, name: &str) -> Result<Param> {
        let ty = loc.attr(name).and_then(|a| a.dtype()).and_then(|t| t.to_descriptor());
        match ty.map_err(|e| self.corrupt(format!("parameter `{name}`: {e}")))? {
            TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => self.get::<i64>(loc, name).map(Param::Int),
            TypeDescriptor::Float(_) => self.get::<f64>(loc, name).map(Param::Float),
            TypeDescriptor::Boolean => self.get::<bool>(loc, name).map(Param::Bool),
            _ => self.get_str(loc, name).map(Param::Str),
        }
    }
}

/// Read and check the metadata of an open checkpoint file.
pub(crate) fn read_info(file: &hdf5::File, path: &Path) -> Result<CheckpointInfo> {
    let r = Reader { path };
    let format = r.get_str(file, "format")?;
    if format != FORMAT {
        return Err(r.corrupt(format!("format is {format:?}, not {FORMAT:?}")));
    }
    let format_version = r.get::<u32>(file, "format_version")?;
    if format_version > FORMAT_VERSION || format_version == 0 {
        return Err(IoError::Version { path: path.into(), found: format_version, known: FORMAT_VERSION });
    }
    let algorithm = r.get_str(file, "checksum_algorithm")?;
    if algorithm != crate::checksum::ALGORITHM {
        return Err(r.corrupt(format!("unknown checksum algorithm {algorithm:?}")));
    }
    let params = match file.group(PARAMS) {
        Ok(g) => {
            let names = g.attr_names().map_err(|e| r.corrupt(format!("parameters: {e}")))?;
            names.into_iter().map(|n| Ok((n.clone(), r.get_param(&g, &n)?))).collect::<Result<_>>()?
        }
        Err(_) => return Err(r.corrupt("no parameters group".into())),
    };
    let names = file.member_names().map_err(|e| r.corrupt(format!("listing fields: {e}")))?;
    let mut fields = Vec::new();
    for name in names.into_iter().filter(|n| n != PARAMS) {
        let ds = file.dataset(&name).map_err(|e| r.corrupt(format!("field `{name}`: {e}")))?;
        let dtype = r.get_str(&ds, "dtype")?;
        let size = ds.dtype().map(|t| t.size()).unwrap_or(0);
        if !matches!((dtype.as_str(), size), ("f64", 8) | ("f32", 4)) {
            return Err(r.corrupt(format!("field `{name}`: stored as {size}-byte elements but labelled {dtype}")));
        }
        let shape = ds.shape();
        let blocks = pairs(&r.get_vec(&ds, "blocks")?, shape.len());
        fields.push(FieldInfo { shape, checksum: r.get::<u64>(&ds, "checksum")?, dtype, blocks, name });
    }
    Ok(CheckpointInfo {
        path: path.into(),
        step: r.get(file, "step")?,
        time: r.get(file, "time")?,
        format_version,
        rankwise_version: r.get_str(file, "rankwise_version")?,
        ranks: r.get(file, "ranks")?,
        params,
        fields,
    })
}

/// `[start.., shape.., start.., shape.., ...]` as (start, shape) pairs of `ndim` each.
pub(crate) fn pairs(flat: &[usize], ndim: usize) -> Vec<(Vec<usize>, Vec<usize>)> {
    flat.chunks(2 * ndim.max(1)).map(|c| (c[..ndim].to_vec(), c[ndim..].to_vec())).collect()
}
