//! Run configuration: an inputs file (TOML) plus `--set key=value` overrides, with typed lookups
//! and errors that name the key, the file and the line.
//!
//! Keys are dotted paths (`checkpoint.every`); tables in the file are flattened into them.
//! A key that the program never asks for is an error at [`Config::finish`], so a typo such as
//! `chekpoint.every` is caught instead of silently ignored.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mpi::traits::*;

use serde::de::DeserializeOwned;
use thiserror::Error;
use toml::de::{DeTable, DeValue};

/// Errors in the inputs; each one is the user's to fix, and names where.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read inputs file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{message}")]
    Args { message: String },
    #[error("--set {arg:?}: expected key=value")]
    SetSyntax { arg: String },
    #[error("{origin}: `{key}` = {value}: expected {expected}")]
    Type { origin: String, key: String, value: String, expected: String },
    #[error("missing required input `{key}` (give it in the inputs file or with --set {key}=...)")]
    Missing { key: String },
    #[error("{origin}: unknown input `{key}`{hint}")]
    Unknown { origin: String, key: String, hint: String },
    #[error("{origin}: `{key}` = {value}: {message}")]
    Invalid { origin: String, key: String, value: String, message: String },
}

#[derive(Debug)]
struct Entry {
    value: toml::Value,
    origin: String,
    used: Cell<bool>,
}

/// The inputs of one run.
#[derive(Debug, Default)]
pub struct Config {
    entries: BTreeMap<String, Entry>,
}

impl Config {
    /// Read an inputs file (if any) and apply `--set` overrides, given as `key=value` strings.
    /// A value that is not valid TOML (`backend=cuda`) is taken as a string.
    pub fn load(file: Option<&Path>, sets: &[String]) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        if let Some(path) = file {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: name.clone(), source })?;
            cfg.merge_toml(&text, &name)?;
        }
        for arg in sets {
            cfg.set(arg)?;
        }
        Ok(cfg)
    }

    /// The inputs named on a program's command line: `--inputs FILE` (or `-i FILE`) and any number
    /// of `--set key=value`. Anything else is an error, so a mistyped flag never goes unnoticed.
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<Config, ConfigError> {
        let (file, sets) = parse_args(args)?;
        Config::load(file.as_deref(), &sets)
    }

    /// Collective over `comm`. As [`Config::from_args`], but only rank 0 reads the inputs file
    /// and broadcasts its text: one read of the shared filesystem per job instead of one per
    /// rank, and every rank gets the same inputs, or the same error (a rank that alone cannot
    /// read the file cannot leave the others waiting).
    ///
    /// # Errors
    /// As [`Config::from_args`], on every rank alike.
    pub fn from_args_on<C: Communicator, I: IntoIterator<Item = String>>(comm: &C, args: I) -> Result<Config, ConfigError> {
        // The same command line on every rank: a bad one fails everywhere before any message.
        let (file, sets) = parse_args(args)?;
        let mut cfg = Config::default();
        if let Some(path) = file {
            let name = path.display().to_string();
            let text = read_on_root(comm, &path).map_err(|source| ConfigError::Read { path: name.clone(), source })?;
            cfg.merge_toml(&text, &name)?;
        }
        for arg in &sets {
            cfg.set(arg)?;
        }
        Ok(cfg)
    }

    /// Parse TOML text; `name` is how errors refer to it (a file name).
    pub fn from_toml(text: &str, name: &str) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        cfg.merge_toml(text, name)?;
        Ok(cfg)
    }

    fn merge_toml(&mut self, text: &str, name: &str) -> Result<(), ConfigError> {
        let table = DeTable::parse(text).map_err(|e| ConfigError::Parse {
            origin: match e.span() {
                Some(s) => format!("{name} line {}", line_of(text, s.start)),
                None => name.to_string(),
            },
            message: e.message().to_string(),
        })?;
        self.flatten(table.get_ref(), "", text, name);
        Ok(())
    }

    fn flatten(&mut self, table: &DeTable<'_>, prefix: &str, text: &str, name: &str) {
        for (k, v) in table.iter() {
            let key = format!("{prefix}{}", k.get_ref());
            match v.get_ref() {
                DeValue::Table(t) => self.flatten(t, &format!("{key}."), text, name),
                other => {
                    let origin = format!("{name} line {}", line_of(text, k.span().start));
                    self.insert(key, to_value(other), origin);
                }
            }
        }
    }

    fn insert(&mut self, key: String, value: toml::Value, origin: String) {
        self.entries.insert(key, Entry { value, origin, used: Cell::new(false) });
    }

    /// Apply one `key=value` override.
    pub fn set(&mut self, arg: &str) -> Result<(), ConfigError> {
        let (key, raw) = arg.split_once('=').ok_or_else(|| ConfigError::SetSyntax { arg: arg.into() })?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(ConfigError::SetSyntax { arg: arg.into() });
        }
        let raw = raw.trim();
        let value = match DeValue::parse(raw) {
            Ok(v) if !matches!(v.get_ref(), DeValue::Table(_)) => to_value(v.get_ref()),
            _ => toml::Value::String(raw.to_string()),
        };
        self.insert(key.to_string(), value, format!("--set {key}"));
        Ok(())
    }

    /// The value of `key`, if given, converted to `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        let Some(e) = self.entries.get(key) else { return Ok(None) };
        e.used.set(true);
        T::deserialize(e.value.clone()).map(Some).map_err(|_| ConfigError::Type {
            origin: e.origin.clone(),
            key: key.into(),
            value: e.value.to_string(),
            expected: std::any::type_name::<T>().rsplit("::").next().unwrap_or("?").to_string(),
        })
    }

    /// The value of `key`, or `default` when it is not given.
    pub fn get_or<T: DeserializeOwned>(&self, key: &str, default: T) -> Result<T, ConfigError> {
        Ok(self.get(key)?.unwrap_or(default))
    }

    /// The value of `key`, which must be given.
    pub fn require<T: DeserializeOwned>(&self, key: &str) -> Result<T, ConfigError> {
        self.get(key)?.ok_or_else(|| ConfigError::Missing { key: key.into() })
    }

    /// An error for a value that has the right type but is not acceptable, naming where it came from.
    pub fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let (origin, value) = self
            .entries
            .get(key)
            .map_or(("default".to_string(), "?".to_string()), |e| (e.origin.clone(), e.value.to_string()));
        ConfigError::Invalid { origin, key: key.into(), value, message: message.into() }
    }

    /// Whether `key` was given.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Every key with its value, as `key = value` lines (for logs and checkpoint metadata).
    pub fn dump(&self) -> String {
        self.entries.iter().map(|(k, e)| format!("{k} = {}\n", e.value)).collect()
    }

    /// Fail on the first key the program never asked for: most likely a typo.
    pub fn finish(&self) -> Result<(), ConfigError> {
        let Some((key, e)) = self.entries.iter().find(|(_, e)| !e.used.get()) else { return Ok(()) };
        let close = self.entries.keys().filter(|k| self.entries[*k].used.get()).find(|k| similar(k, key));
        Err(ConfigError::Unknown {
            origin: e.origin.clone(),
            key: key.clone(),
            hint: close.map(|k| format!(" (did you mean `{k}`?)")).unwrap_or_default(),
        })
    }
}

/// `--inputs FILE` (or `-i FILE`) and the `--set key=value` arguments of a command line.
fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<(Option<PathBuf>, Vec<String>), ConfigError> {
    let mut file = None;
    let mut sets = Vec::new();
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next()).ok_or_else(|| ConfigError::Args {
            message: format!("{flag} needs a value"),
        });
        match flag.as_str() {
            "--inputs" | "-i" => file = Some(std::path::PathBuf::from(value()?)),
            "--set" | "-s" => sets.push(value()?),
            _ => return Err(ConfigError::Args { message: format!("unexpected argument {a:?} (expected --inputs FILE or --set key=value)") }),
        }
    }
    Ok((file, sets))
}

/// Collective over `comm`. The bytes of `path`, read on rank 0 only.
fn read_on_root<C: Communicator>(comm: &C, path: &Path) -> std::io::Result<String> {
    let root = comm.process_at_rank(0);
    let read = if comm.rank() == 0 {
        // MPI counts are 32-bit: an inputs file is far smaller, or a mistake.
        std::fs::read(path).and_then(|b| match i32::try_from(b.len()) {
            Ok(_) => Ok(b),
            Err(_) => Err(std::io::Error::other(format!("{} bytes: not an inputs file", b.len()))),
        })
    } else {
        Ok(Vec::new())
    };
    // Rank 0's verdict first (1 = read, 0 = the error's text follows), then the bytes.
    let (ok, mut bytes) = match read {
        Ok(b) => (1u64, b),
        Err(e) => (0, e.to_string().into_bytes()),
    };
    let mut head = [ok, bytes.len() as u64];
    root.broadcast_into(&mut head[..]);
    bytes.resize(head[1] as usize, 0);
    if head[1] > 0 {
        // Open MPI rejects a broadcast of nothing (an empty inputs file).
        root.broadcast_into(&mut bytes[..]);
    }
    let text = String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()));
    match (head[0], text) {
        (1, text) => text,
        (_, Ok(message)) => Err(std::io::Error::other(message)),
        (_, Err(e)) => Err(e),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

fn to_value(v: &DeValue<'_>) -> toml::Value {
    match v {
        DeValue::String(s) => toml::Value::String(s.to_string()),
        DeValue::Integer(i) => i
            .to_string()
            .replace('_', "")
            .parse::<i64>()
            .map(toml::Value::Integer)
            .unwrap_or_else(|_| toml::Value::String(i.to_string())),
        DeValue::Float(f) => f
            .to_string()
            .replace('_', "")
            .parse::<f64>()
            .map(toml::Value::Float)
            .unwrap_or_else(|_| toml::Value::String(f.to_string())),
        DeValue::Boolean(b) => toml::Value::Boolean(*b),
        DeValue::Datetime(d) => toml::Value::Datetime(*d),
        DeValue::Array(a) => toml::Value::Array(a.iter().map(|x| to_value(x.get_ref())).collect()),
        DeValue::Table(t) => {
            toml::Value::Table(t.iter().map(|(k, v)| (k.get_ref().to_string(), to_value(v.get_ref()))).collect())
        }
    }
}

/// Same key up to one edit, or the same last segment: enough to suggest a fix for a typo.
fn similar(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + usize::from(a[i - 1] != b[j - 1]));
        }
        prev = cur;
    }
    prev[b.len()] <= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "n = 64\nsteps = 100\n\n[checkpoint]\ndir = \"ckpt\"\nevery = 10\n";

    #[test]
    fn typed_lookups_and_defaults() {
        let c = Config::from_toml(GOOD, "heat.toml").unwrap();
        assert_eq!(c.require::<usize>("n").unwrap(), 64);
        assert_eq!(c.get_or::<f64>("steps", 0.0).unwrap(), 100.0);
        assert_eq!(c.get::<String>("checkpoint.dir").unwrap().as_deref(), Some("ckpt"));
        assert_eq!(c.get_or::<u64>("checkpoint.every", 1).unwrap(), 10);
        assert_eq!(c.get_or::<f64>("alpha", 0.25).unwrap(), 0.25);
        c.finish().unwrap();
    }

    #[test]
    fn overrides_win_and_parse_as_toml() {
        let mut c = Config::from_toml(GOOD, "heat.toml").unwrap();
        c.set("n=128").unwrap();
        c.set("backend=cuda").unwrap();
        c.set("checkpoint.every = 5").unwrap();
        c.set("shape=[4, 8]").unwrap();
        assert_eq!(c.require::<usize>("n").unwrap(), 128);
        assert_eq!(c.require::<String>("backend").unwrap(), "cuda");
        assert_eq!(c.require::<u32>("checkpoint.every").unwrap(), 5);
        assert_eq!(c.require::<Vec<usize>>("shape").unwrap(), vec![4, 8]);
        assert!(matches!(c.set("novalue"), Err(ConfigError::SetSyntax { .. })));
        assert!(matches!(c.set("=3"), Err(ConfigError::SetSyntax { .. })));
    }

    #[test]
    fn command_line_flags() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = Config::from_args(args(&["--set", "n=8", "--set=steps=3", "-s", "dim=3"])).unwrap();
        assert_eq!(c.require::<usize>("n").unwrap() * c.require::<usize>("steps").unwrap(), 24);
        assert_eq!(c.require::<usize>("dim").unwrap(), 3);
        let e = Config::from_args(args(&["--bogus"])).unwrap_err().to_string();
        assert!(e.contains("unexpected argument \"--bogus\""), "{e}");
        let e = Config::from_args(args(&["--set"])).unwrap_err().to_string();
        assert_eq!(e, "--set needs a value");
    }

    #[test]
    fn malformed_file_names_file_and_line() {
        let e = Config::from_toml("n = 64\nsteps = = 3\n", "bad.toml").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("bad.toml line 2:"), "{msg}");
    }

    #[test]
    fn wrong_type_names_key_file_and_line() {
        let c = Config::from_toml(GOOD.replace("every = 10", "every = \"often\"").as_str(), "heat.toml").unwrap();
        let msg = c.require::<u64>("checkpoint.every").unwrap_err().to_string();
        assert!(msg.contains("heat.toml line 6"), "{msg}");
        assert!(msg.contains("checkpoint.every"), "{msg}");
        assert!(msg.contains("u64"), "{msg}");
    }

    #[test]
    fn unknown_key_is_reported_with_a_hint() {
        let c = Config::from_toml("n = 64\nstesp = 3\n", "heat.toml").unwrap();
        c.get_or::<usize>("n", 0).unwrap();
        c.get_or::<usize>("steps", 0).unwrap();
        let msg = c.finish().unwrap_err().to_string();
        assert_eq!(msg, "heat.toml line 2: unknown input `stesp`");
        let c = Config::from_toml("n = 64\nsteps = 3\n", "heat.toml").unwrap();
        c.get_or::<usize>("n", 0).unwrap();
        let msg = c.finish().unwrap_err().to_string();
        assert!(msg.contains("unknown input `steps`"), "{msg}");
    }

    #[test]
    fn missing_required_and_missing_file() {
        let c = Config::default();
        assert!(c.require::<usize>("n").unwrap_err().to_string().contains("missing required input `n`"));
        let e = Config::load(Some(Path::new("/nonexistent/inputs.toml")), &[]).unwrap_err();
        assert!(e.to_string().starts_with("cannot read inputs file /nonexistent/inputs.toml"), "{e}");
    }
}
