//! What a checkpoint says about itself: the attributes on the file and on each field, written
//! and read the same way by parallel jobs and by serial tools.

use std::fmt;
use std::path::{Path, PathBuf};

use hdf5::types::{TypeDescriptor, VarLenUnicode};
use hdf5::{H5Type, Location};

use crate::checksum::{self, fmix64, Digest};
use crate::error::{Context, IoError, Result};

/// The checkpoint layout this Rankwise writes; it reads this one and older ones.
///
/// 2: a metadata checksum over every attribute (`meta_checksum`), a check value beside the
/// version (`version_check`) so that a damaged version number is not taken for a newer format,
/// and each field's blocks as a table in the group `rankwise` (any rank count) instead of an
/// attribute (at most 64 KiB). 1: neither.
pub const FORMAT_VERSION: u32 = 2;
/// The value of the file's `format` attribute.
pub const FORMAT: &str = "rankwise-checkpoint";
/// The group holding the user's scalar parameters, one attribute each.
pub(crate) const PARAMS: &str = "parameters";
/// The group holding each field's block table (format 2): `rankwise/<field>`, one row per rank.
pub(crate) const TABLES: &str = "rankwise";

/// The `version_check` attribute of a file of format `version` (2 and later).
pub(crate) fn version_check(version: u32) -> u64 {
    fmix64(u64::from(version) ^ 0x7261_6e6b_7769_7365) // "rankwise"
}

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
    /// How many blocks (one per writing rank) the decomposition it was written with had.
    pub blocks: usize,
    /// The checksum of the block table (format 2; 0 in format 1).
    pub(crate) blocks_checksum: u64,
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
            writeln!(f, "field {} {} {:?} checksum={:016x} written as {} blocks", fi.name, fi.dtype, fi.shape, fi.checksum, fi.blocks)?;
        }
        Ok(())
    }
}

/// The metadata checksum: every attribute of the file and its fields, in a fixed order.
pub(crate) fn digest(info: &CheckpointInfo) -> u64 {
    let mut d = Digest::new();
    d.str(FORMAT).word(info.format_version.into()).str(&info.rankwise_version).str(checksum::ALGORITHM);
    d.word(info.step).word(info.time.to_bits()).word(info.ranks);
    let mut params: Vec<_> = info.params.iter().collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    d.word(params.len() as u64);
    for (k, v) in params {
        d.str(k);
        match v {
            Param::Int(x) => d.word(0).word(*x as u64),
            Param::Float(x) => d.word(1).word(x.to_bits()),
            Param::Bool(x) => d.word(2).word(*x as u64),
            Param::Str(x) => d.word(3).str(x),
        };
    }
    let mut fields: Vec<_> = info.fields.iter().collect();
    fields.sort_by(|a, b| a.name.cmp(&b.name));
    d.word(fields.len() as u64);
    for f in fields {
        d.str(&f.name).str(&f.dtype).word(f.shape.len() as u64);
        for &n in &f.shape {
            d.word(n as u64);
        }
        d.word(f.checksum).word(f.blocks as u64).word(f.blocks_checksum);
    }
    d.finish()
}

pub(crate) fn put<T: H5Type>(loc: &Location, name: &str, v: &T) -> Result<()> {
    loc.new_attr::<T>().create(name).and_then(|a| a.write_scalar(v)).context(|| format!("writing attribute {name}"))
}

pub(crate) fn put_str(loc: &Location, name: &str, v: &str) -> Result<()> {
    let s: VarLenUnicode = v.parse().map_err(|e| IoError::Hdf5 { context: format!("attribute {name}"), source: hdf5::Error::from(format!("{e}")) })?;
    put(loc, name, &s)
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
    /// A string attribute, whose bytes must be UTF-8 (HDF5 does not check them).
    fn get_str(&self, loc: &Location, name: &str) -> Result<String> {
        let s = self.get::<VarLenUnicode>(loc, name)?;
        String::from_utf8(s.as_bytes().to_vec()).map_err(|_| self.corrupt(format!("attribute `{name}`: not UTF-8")))
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

/// Read and check the metadata of an open checkpoint file: damage to any attribute (format 2) is
/// [`IoError::Corrupt`], never a value taken for true.
pub(crate) fn read_info(file: &hdf5::File, path: &Path) -> Result<CheckpointInfo> {
    let r = Reader { path };
    let format = r.get_str(file, "format")?;
    if format != FORMAT {
        return Err(r.corrupt(format!("format is {format:?}, not {FORMAT:?}")));
    }
    let format_version = r.get::<u32>(file, "format_version")?;
    let attrs = file.attr_names().map_err(|e| r.corrupt(format!("listing attributes: {e}")))?;
    // Format 1 had no check values; every later format has them.
    let legacy = format_version == 1 && !attrs.iter().any(|a| a == "version_check");
    if !legacy {
        if r.get::<u64>(file, "version_check")? != version_check(format_version) || format_version < 2 {
            return Err(r.corrupt(format!("attribute `format_version` is damaged (it reads {format_version})")));
        }
        if format_version > FORMAT_VERSION {
            return Err(IoError::Version { path: path.into(), found: format_version, known: FORMAT_VERSION });
        }
    }
    let algorithm = r.get_str(file, "checksum_algorithm")?;
    if algorithm != checksum::ALGORITHM {
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
    if legacy == names.iter().any(|n| n == TABLES) {
        return Err(r.corrupt(format!("format {format_version} and the `{TABLES}` group disagree")));
    }
    let mut fields = Vec::new();
    for name in names.into_iter().filter(|n| n != PARAMS && n != TABLES) {
        let ds = file.dataset(&name).map_err(|e| r.corrupt(format!("field `{name}`: {e}")))?;
        let dtype = r.get_str(&ds, "dtype")?;
        let size = ds.dtype().map(|t| t.size()).unwrap_or(0);
        if !matches!((dtype.as_str(), size), ("f64", 8) | ("f32", 4)) {
            return Err(r.corrupt(format!("field `{name}`: stored as {size}-byte elements but labelled {dtype}")));
        }
        let shape = ds.shape();
        let width = 2 * shape.len().max(1);
        let (blocks, blocks_checksum) = if legacy {
            let flat = r.get_vec(&ds, "blocks")?;
            if flat.len() % width != 0 {
                return Err(r.corrupt(format!("field `{name}`: attribute `blocks` has {} entries", flat.len())));
            }
            (flat.len() / width, 0)
        } else {
            let table = file.dataset(&format!("{TABLES}/{name}")).map_err(|e| r.corrupt(format!("block table of `{name}`: {e}")))?;
            match table.shape()[..] {
                [rows, w] if w == width => (rows, r.get::<u64>(&table, "checksum")?),
                ref s => return Err(r.corrupt(format!("block table of `{name}` has shape {s:?}"))),
            }
        };
        fields.push(FieldInfo { shape, checksum: r.get::<u64>(&ds, "checksum")?, dtype, blocks, blocks_checksum, name });
    }
    let info = CheckpointInfo {
        path: path.into(),
        step: r.get(file, "step")?,
        time: r.get(file, "time")?,
        format_version,
        rankwise_version: r.get_str(file, "rankwise_version")?,
        ranks: r.get(file, "ranks")?,
        params,
        fields,
    };
    if !legacy {
        let (stored, computed) = (r.get::<u64>(file, "meta_checksum")?, digest(&info));
        if stored != computed {
            return Err(r.corrupt(format!("metadata checksum {computed:016x}, the file says {stored:016x}: damaged attributes")));
        }
    }
    Ok(info)
}
