//! Every code block of README.md is checked, so the README cannot drift from the code:
//!
//! - `rust`: the file it shows, verbatim (one of [`PROGRAMS`]); those files are built and run by
//!   the README's own `$` commands.
//! - `console`: each `$ command` runs (in one bash per block, from a scratch folder holding
//!   `examples/`, with this test profile's `rankwise` and examples on `PATH`); the lines up to the
//!   next `$` are its standard output: exact, where `[..]` stands for any text within a line and a
//!   line `...` for any number of lines. `cargo` commands get this test's profile flags.
//! - `sh`: not run here; every command names what runs it in [`COVERED`], and that is looked up.
//! - `toml`: parsed by the real parsers: `[dependencies]` must name this workspace's packages at
//!   their folders and the workspace's versions of the rest; anything else must load as inputs.
//!
//! Any other kind of block fails, so a new block cannot go unchecked.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{build_profile, cargo, clean_cargo_env, mpi_env, program, rankwise_bin, run_with_timeout, Scratch};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The programs the README shows in full.
const PROGRAMS: [&str; 2] = ["examples/quickstart.rs", "kernels/examples/standalone.rs"];

/// What runs each command of the `sh` blocks: `tests/FILE.rs::test_function`, or a file that runs
/// the very same command.
const COVERED: &[(&str, &str)] = &[
    ("make demo", "tests/launcher.rs::runs_an_example_by_name_on_4_ranks"),
    ("make test", ".ci/run"),
    ("export PATH=$PWD/target/release:$PATH", "tests/readme.rs::console_blocks_print_what_the_readme_shows"),
    ("rankwise info", "tests/launcher.rs::info_describes_this_machine"),
    ("rankwise run -n 4 --restarts 3 heat -i examples/inputs/heat.toml", "tests/launcher.rs::supervised_heat_killed_twice_ends_with_the_uninterrupted_field"),
    ("rankwise ckpt verify heat-ckpt", "tests/launcher.rs::ckpt_list_verify_and_inspect_describe_checkpoints"),
    ("rankwise ckpt inspect heat-ckpt/ckpt-0000000500.h5", "tests/launcher.rs::ckpt_list_verify_and_inspect_describe_checkpoints"),
    ("module load openmpi hdf5", "tests/readme.rs::env_sh_keeps_what_module_load_set"),
    (". scripts/env.sh", "tests/readme.rs::env_sh_keeps_what_module_load_set"),
    ("cargo build --release --workspace --examples --bins", "Makefile"),
    ("make install PREFIX=$HOME/rankwise", "tests/capi.rs::c_and_fortran_heat_match_the_rust_example_at_1_to_4_ranks"),
    ("export PKG_CONFIG_PATH=$HOME/rankwise/lib/pkgconfig", "tests/capi.rs::c_and_fortran_heat_match_the_rust_example_at_1_to_4_ranks"),
    ("mpicc -O2 -o heat-c examples/c/heat.c $(pkg-config --cflags --libs rankwise) -lm", "tests/capi.rs::c_and_fortran_heat_match_the_rust_example_at_1_to_4_ranks"),
    ("mpifort -O2 -o heat-f examples/fortran/heat.f90 $(pkg-config --cflags --libs rankwise)", "tests/capi.rs::c_and_fortran_heat_match_the_rust_example_at_1_to_4_ranks"),
    ("rankwise run -n 4 ./heat-c -i examples/inputs/heat.toml --set n=256", "tests/capi.rs::rankwise_run_launches_them_with_the_inputs_file"),
];

struct Block {
    kind: String,
    /// Line of the opening fence, for messages.
    line: usize,
    text: String,
}

/// The fenced blocks of the README (fences at the start of a line; indented ones, as in an HTML
/// comment, are text).
fn blocks() -> Vec<Block> {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in readme.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(kind)) => open = Some(Block { kind: kind.trim().to_string(), line: i + 1, text: String::new() }),
            (Some(_), Some("")) => out.push(open.take().unwrap()),
            (Some(b), _) => b.text.push_str(&format!("{line}\n")),
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "README.md: a code block is never closed");
    out
}

fn of_kind(kind: &str) -> Vec<Block> {
    blocks().into_iter().filter(|b| b.kind == kind).collect()
}

#[test]
fn every_block_is_of_a_checked_kind() {
    let all = blocks();
    for b in &all {
        assert!(["rust", "console", "sh", "toml"].contains(&b.kind.as_str()), "README.md line {}: a ```{} block: tests/readme.rs checks rust, console, sh and toml blocks only", b.line, b.kind);
    }
    assert!(all.iter().any(|b| b.kind == "console"), "no blocks found: is the fence syntax still ```KIND?");
}

#[test]
fn rust_blocks_are_the_programs_verbatim() {
    let rust = of_kind("rust");
    for b in &rust {
        assert!(
            PROGRAMS.iter().any(|p| std::fs::read_to_string(Path::new(ROOT).join(p)).unwrap() == b.text),
            "README.md line {}: this rust block is none of {PROGRAMS:?}: copy it into its file (or the file into it)",
            b.line
        );
    }
    assert_eq!(rust.len(), PROGRAMS.len(), "every program in PROGRAMS is shown once");
}

#[test]
fn sh_commands_name_what_runs_them() {
    for b in of_kind("sh") {
        for line in b.text.lines() {
            // The command without its trailing comment.
            let cmd = line.split("  #").next().unwrap().trim();
            if cmd.is_empty() || cmd.starts_with('#') {
                continue;
            }
            let (_, by) = COVERED.iter().find(|(c, _)| *c == cmd).unwrap_or_else(|| panic!("README.md line {}: `{cmd}` is neither run nor covered: add it to COVERED in tests/readme.rs with what runs it", b.line));
            match by.split_once("::") {
                Some((file, test)) => {
                    let src = std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
                    assert!(src.contains(&format!("#[test]\nfn {test}(")), "`{cmd}` is covered by {by}, which is not a test");
                }
                None => {
                    let src = std::fs::read_to_string(Path::new(ROOT).join(by)).unwrap_or_else(|e| panic!("{by}: {e}"));
                    assert!(src.contains(cmd), "`{cmd}` is covered by {by}, which does not run it");
                }
            }
        }
    }
}

#[test]
fn toml_blocks_parse_and_name_what_exists() {
    let manifest = |dir: &str| -> toml::Table { std::fs::read_to_string(Path::new(ROOT).join(dir).join("Cargo.toml")).unwrap().parse().unwrap() };
    let root = manifest("");
    let members: Vec<String> = root["workspace"]["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect();
    // package name -> folder
    let packages: Vec<(String, String)> = std::iter::once(String::new())
        .chain(members)
        .map(|dir| (manifest(&dir)["package"]["name"].as_str().unwrap().to_string(), dir))
        .collect();
    let versions = root["workspace"]["dependencies"].as_table().unwrap();
    for b in of_kind("toml") {
        let t: toml::Table = b.text.parse().unwrap_or_else(|e| panic!("README.md line {}: {e}", b.line));
        let Some(deps) = t.get("dependencies") else {
            rankwise::runtime::Config::from_toml(&b.text, "README block").unwrap();
            continue;
        };
        for (name, spec) in deps.as_table().unwrap() {
            if let Some((_, dir)) = packages.iter().find(|(p, _)| p == name) {
                let want = if dir.is_empty() { "../rankwise".to_string() } else { format!("../rankwise/{dir}") };
                assert_eq!(spec.get("path").and_then(|p| p.as_str()), Some(want.as_str()), "README.md line {}: {name}", b.line);
            } else {
                let ours = versions.get(name).unwrap_or_else(|| panic!("README.md line {}: the workspace does not use {name}", b.line));
                let ours = ours.as_str().or_else(|| ours.get("version").and_then(|v| v.as_str()));
                assert_eq!(spec.as_str(), ours, "README.md line {}: {name} at the workspace's version", b.line);
            }
        }
    }
}

/// Whether `actual` fits `expected`, whose `[..]` stand for any text in a line and whose `...`
/// lines stand for any number of lines.
fn fits(expected: &[&str], actual: &[&str]) -> bool {
    fn line_fits(e: &str, a: &str) -> bool {
        let parts: Vec<&str> = e.split("[..]").collect();
        let (first, rest) = parts.split_first().unwrap();
        let Some(mut a) = a.strip_prefix(first) else { return false };
        for (k, p) in rest.iter().enumerate() {
            if k == rest.len() - 1 {
                return a.ends_with(p);
            }
            match a.find(p) {
                Some(i) => a = &a[i + p.len()..],
                None => return false,
            }
        }
        a.is_empty()
    }
    match expected.split_first() {
        None => actual.is_empty(),
        Some((&"...", rest)) => (0..=actual.len()).any(|k| fits(rest, &actual[k..])),
        Some((e, rest)) => actual.split_first().is_some_and(|(a, more)| line_fits(e, a) && fits(rest, more)),
    }
}

#[test]
fn console_blocks_print_what_the_readme_shows() {
    let blocks = of_kind("console");
    let dir = rankwise_bin().parent().unwrap().to_path_buf();
    let s = Scratch::new("readme");
    std::os::unix::fs::symlink(Path::new(ROOT).join("examples"), s.path().join("examples")).unwrap();
    for b in &blocks {
        // (command, expected output lines)
        let mut cmds: Vec<(String, Vec<&str>)> = Vec::new();
        for line in b.text.lines() {
            match line.strip_prefix("$ ") {
                Some(cmd) => cmds.push((cmd.to_string(), vec![])),
                None => cmds.last_mut().unwrap_or_else(|| panic!("README.md line {}: a console block starts with `$ command`", b.line)).1.push(line),
            }
        }
        let mut script = String::new();
        for (cmd, _) in &cmds {
            let words: Vec<&str> = cmd.split_whitespace().collect();
            // Build the examples a `rankwise` command names.
            for w in words.iter().filter(|w| words[0] == "rankwise" && Path::new(ROOT).join(format!("examples/{w}.rs")).exists()) {
                program(w);
            }
            let cmd = if words[0] == "cargo" { format!("{cmd} {}", build_profile().join(" ")) } else { cmd.clone() };
            script.push_str(&format!("{cmd}\necho \"@@rc=$?@@\"\n"));
        }
        let mut bash = Command::new("bash");
        bash.arg("-c").arg(&script).current_dir(s.path());
        mpi_env(&mut bash);
        bash.env("PATH", format!("{}:{}", dir.display(), std::env::var("PATH").unwrap()));
        clean_cargo_env(&mut bash);
        let o = run_with_timeout(bash, format!("README.md line {}", b.line), Duration::from_secs(300), 0);
        assert!(!o.timed_out, "{}", o.show());
        // Split stdout at the markers: one output and exit code per command.
        let mut outputs: Vec<(Vec<&str>, String)> = vec![];
        let mut current = vec![];
        for line in o.stdout.lines() {
            match line.find("@@rc=") {
                Some(i) => {
                    if i > 0 {
                        current.push(&line[..i]);
                    }
                    outputs.push((std::mem::take(&mut current), line[i + 5..].trim_end_matches("@@").to_string()));
                }
                None => current.push(line),
            }
        }
        assert_eq!(outputs.len(), cmds.len(), "{}", o.show());
        for ((cmd, want), (got, rc)) in cmds.iter().zip(&outputs) {
            assert!(
                rc == "0" && fits(want, got),
                "README.md line {}: `{cmd}` exited {rc} and printed\n{}\n--- the README shows ---\n{}\n--- stderr of the block ---\n{}",
                b.line,
                got.join("\n"),
                want.join("\n"),
                o.stderr
            );
        }
    }
}

#[test]
fn the_kernels_alone_need_no_mpi_nor_hdf5() {
    let out = cargo().args(["tree", "-p", "rankwise-kernels", "-e", "normal,build", "--prefix", "none"]).output().unwrap();
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && tree.contains("ndarray v0.17"), "{tree}{}", String::from_utf8_lossy(&out.stderr));
    for line in tree.lines() {
        let name = line.split(' ').next().unwrap();
        assert!(!name.contains("mpi") && !name.contains("hdf5"), "rankwise-kernels depends on {line}");
    }
}

#[test]
fn env_sh_keeps_what_module_load_set() {
    // What `module load openmpi hdf5` typically exports on a cluster.
    let site = [("MPICC", "/opt/site/openmpi/bin/mpicc"), ("MPI_PKG_CONFIG", "ompi-site"), ("HDF5_DIR", "/opt/site/hdf5"), ("PKG_CONFIG_PATH", "/opt/site/lib/pkgconfig")];
    let mut bash = Command::new("bash");
    bash.arg("-c").arg(". scripts/env.sh && echo \"$MPICC|$MPI_PKG_CONFIG|$HDF5_DIR|$PKG_CONFIG_PATH\"").current_dir(ROOT).env_remove("RANKWISE_MPI");
    for (k, v) in site {
        bash.env(k, v);
    }
    let out = bash.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want: Vec<&str> = site.iter().map(|(_, v)| *v).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want.join("|"));
}

#[test]
fn patterns_fit_what_they_should() {
    assert!(fits(&["a [..] c"], &["a b c"]));
    assert!(fits(&["[..]mpirun -np 4 [..]/hello"], &["X=1 /usr/bin/mpirun -np 4 --x /t/hello"]));
    assert!(!fits(&["a [..] c"], &["a b d"]));
    assert!(fits(&["x", "...", "z"], &["x", "1", "2", "z"]));
    assert!(fits(&["x", "...", "z"], &["x", "z"]));
    assert!(!fits(&["x"], &["x", "y"]));
    assert!(!fits(&["x", "y"], &["x"]));
}
