//! Parameter sweeps as one job array: task `i` runs set `i`, in its own folder.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Deserialize;

use crate::script::quote;
use crate::{Error, Result};

/// One parameter set: input names and values, passed to the program as `--set name=value`.
pub type ParamSet = BTreeMap<String, String>;

/// A list of parameter sets run as a job array (`--array=0-N%K`). Task `i` gets set `i` as
/// `--set` arguments after the program's own, runs in `<dir>/<i>` (made for it), and finds its
/// set there in `params.toml`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    pub sets: Vec<ParamSet>,
    /// At most this many tasks at once (`%K`).
    pub max_parallel: Option<u32>,
    /// The folder that holds one output folder per task.
    pub dir: String,
}

impl Sweep {
    /// The sets as given.
    pub fn list(sets: Vec<ParamSet>) -> Sweep {
        Sweep { sets, max_parallel: None, dir: "sweep".into() }
    }

    /// Every combination of the axes' values; the last axis varies fastest.
    pub fn grid<K: Into<String>, V: Into<String>>(axes: impl IntoIterator<Item = (K, Vec<V>)>) -> Sweep {
        let mut sets = vec![ParamSet::new()];
        for (k, vs) in axes {
            let (k, vs): (String, Vec<String>) = (k.into(), vs.into_iter().map(Into::into).collect());
            sets = sets
                .iter()
                .flat_map(|s| vs.iter().map(|v| { let mut s = s.clone(); s.insert(k.clone(), v.clone()); s }))
                .collect();
        }
        Sweep::list(sets)
    }

    pub fn max_parallel(mut self, k: u32) -> Sweep {
        self.max_parallel = Some(k);
        self
    }
    pub fn dir(mut self, dir: impl Into<String>) -> Sweep {
        self.dir = dir.into();
        self
    }

    /// The `[sweep]` section of a TOML document: `grid = { n = [32, 64], solver = ["cg"] }`
    /// (keys in sorted order, the last fastest) or `sets = [{ n = 32 }, { n = 64 }]`, and
    /// optionally `max_parallel` and `dir`.
    pub fn from_toml(text: &str) -> Result<Sweep> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Section {
            grid: Option<BTreeMap<String, Vec<toml::Value>>>,
            sets: Option<Vec<BTreeMap<String, toml::Value>>>,
            max_parallel: Option<u32>,
            dir: Option<String>,
        }
        #[derive(Deserialize)]
        struct Doc {
            sweep: Option<Section>,
        }
        let doc: Doc = toml::from_str(text).map_err(|e| Error::Spec(format!("[sweep]: {}", e.message())))?;
        let s = doc.sweep.ok_or_else(|| Error::Spec("no [sweep] section".into()))?;
        let text = |v: &toml::Value| match v {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut sweep = match (s.grid, s.sets) {
            (Some(g), None) => Sweep::grid(g.into_iter().map(|(k, vs)| (k, vs.iter().map(text).collect::<Vec<_>>()))),
            (None, Some(sets)) => Sweep::list(sets.iter().map(|s| s.iter().map(|(k, v)| (k.clone(), text(v))).collect()).collect()),
            _ => return Err(Error::Spec("[sweep] needs either `grid` or `sets`".into())),
        };
        sweep.max_parallel = s.max_parallel;
        if let Some(d) = s.dir {
            sweep.dir = d;
        }
        sweep.validate()?;
        Ok(sweep)
    }

    fn validate(&self) -> Result<()> {
        if self.sets.is_empty() {
            return Err(Error::Spec("the sweep has no parameter sets".into()));
        }
        if self.dir.is_empty() || self.dir.contains('\\') {
            // A backslash turns off sbatch's %a in the output file name.
            return Err(Error::Spec(format!("dir {:?}: must be a folder name without backslashes", self.dir)));
        }
        if self.max_parallel == Some(0) {
            return Err(Error::Spec("max_parallel must be at least 1".into()));
        }
        for k in self.sets.iter().flat_map(|s| s.keys()) {
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
                return Err(Error::Spec(format!("`{k}` is not an input name")));
            }
        }
        Ok(())
    }

    /// Where task `i`'s output goes unless the job names a file: `<dir>/<i>/slurm-<job>_<i>.out`,
    /// beside its results, as an sbatch filename pattern (relative to the job's working folder).
    /// Slurm does not make the folders: [`Sweep::task_dirs`] are made before submitting.
    pub fn output_pattern(&self) -> String {
        format!("{}/%a/slurm-%A_%a.out", self.dir.replace('%', "%%"))
    }

    /// The folder of each task, relative to the job's working folder.
    pub fn task_dirs(&self) -> impl Iterator<Item = std::path::PathBuf> + '_ {
        (0..self.sets.len()).map(|i| std::path::Path::new(&self.dir).join(i.to_string()))
    }

    /// `0-N` or `0-N%K`.
    pub(crate) fn array_range(&self) -> String {
        let last = self.sets.len().saturating_sub(1);
        match self.max_parallel {
            Some(k) => format!("0-{last}%{k}"),
            None => format!("0-{last}"),
        }
    }

    /// The script lines that pick this task's set into `params` and enter its folder.
    pub(crate) fn selection(&self) -> Result<String> {
        self.validate()?;
        let mut s = String::from("\n# Each array task runs its own parameter set, in its own folder.\ncase \"$SLURM_ARRAY_TASK_ID\" in\n");
        for (i, set) in self.sets.iter().enumerate() {
            let args: Vec<String> = set.iter().map(|(k, v)| format!("--set {}", quote(&format!("{k}={v}")))).collect();
            let toml: String = set.iter().map(|(k, v)| format!("\"{k}\" = {}\n", toml::Value::String(v.clone()))).collect();
            writeln!(s, "  {i}) params=({}); params_toml={} ;;", args.join(" "), quote(&toml)).unwrap();
        }
        let dir = format!("{}/\"$SLURM_ARRAY_TASK_ID\"", quote(&self.dir));
        write!(
            s,
            "  *) echo \"rankwise: no parameter set for array task ${{SLURM_ARRAY_TASK_ID:-(none)}}\" >&2; exit 2 ;;\nesac\n\
             mkdir -p {dir} && cd {dir} || exit 1\nprintf '%s' \"$params_toml\" > params.toml\n"
        )
        .unwrap();
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_and_ranges() {
        let g = Sweep::grid([("a", vec!["1", "2"]), ("b", vec!["x", "y", "z"])]).max_parallel(2);
        assert_eq!(g.sets.len(), 6);
        assert_eq!(g.sets[1], ParamSet::from([("a".into(), "1".into()), ("b".into(), "y".into())]));
        assert_eq!(g.array_range(), "0-5%2");
        assert_eq!(g.clone().dir("runs/100%").output_pattern(), "runs/100%%/%a/slurm-%A_%a.out");
        let dirs: Vec<_> = g.dir("runs").task_dirs().collect();
        assert_eq!((dirs.len(), dirs[5].to_str()), (6, Some("runs/5")));
    }

    #[test]
    fn from_toml() {
        let s = Sweep::from_toml("[sweep]\ngrid = { n = [32, 64], dt = [0.5] }\nmax_parallel = 1\ndir = \"out\"\n").unwrap();
        assert_eq!(s.sets[1]["n"], "64");
        assert_eq!(s.sets[1]["dt"], "0.5");
        assert_eq!((s.array_range().as_str(), s.dir.as_str()), ("0-1%1", "out"));
        let s = Sweep::from_toml("[sweep]\nsets = [{ name = \"a b\" }, { name = \"c\", k = true }]\n").unwrap();
        assert_eq!((s.sets[0]["name"].as_str(), s.sets[1]["k"].as_str()), ("a b", "true"));
        for bad in ["[sweep]\n", "[sweep]\ngrid = { n = [1] }\ndir = 'a\\b'\n", "[sweep]\nsets = []\n", "[sweep]\nsets=[{ \"a b\" = 1 }]\n", "[sweep]\ngrid = { n = [1] }\nmax_parallel = 0\n"] {
            assert!(Sweep::from_toml(bad).is_err(), "{bad}");
        }
    }
}
