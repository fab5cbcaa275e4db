//! Every code block of README.md is checked, so the README cannot drift from the code:
//!
//! - `rust`: the file it shows, verbatim (one of [`PROGRAMS`], each shown exactly once); those
//!   files are built and run by the README's own `$` commands.
//! - `console`: each `$ command` runs (in one bash per block, from a scratch folder holding
//!   `examples/`, after the README's own `export PATH=$PWD/target/release:$PATH`, so with the
//!   release binaries that `cargo build --release --workspace --examples --bins` leaves there:
//!   the test runs that command first). The lines up to the next `$` are what it prints: a line
//!   starting `[rank `, `rankwise: ` or `error: ` (how logs and errors begin) is looked for, in
//!   order, in its standard error, every other line is its standard output, exact, where `[..]`
//!   stands for any text within a line and a line `...` for any number of lines. Each exits 0.
//!   `cargo` commands get this test's profile flags.
//! - `sh`: every command runs too, where the README shows it (between the console blocks, in
//!   their folder), and must exit 0 (`make demo` too); the two that cannot run inside a test
//!   (`make test`, `module load`) name the test or file that runs them in [`COVERED`], and that
//!   is looked up.
//! - `toml`: parsed by the real parsers: `[dependencies]` must name this workspace's packages at
//!   their folders and the workspace's versions of the rest; anything else must load as inputs.
//!
//! Fences of every form count (``` or ~~~, three or more, indented or not); any other kind of
//! block fails, so a new block cannot go unchecked.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::{build_profile, cargo, clean_cargo_env, mpi_env, run_with_timeout, Scratch};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The programs the README shows in full.
const PROGRAMS: [&str; 2] = ["examples/quickstart.rs", "kernels/examples/standalone.rs"];

/// What runs each command of the `sh` blocks that cannot run inside a test: `tests/FILE.rs::test_function`, or a
/// file that runs the very same command.
const COVERED: &[(&str, &str)] = &[
    ("make test", ".ci/run"),
    ("module load openmpi hdf5", "tests/readme.rs::env_sh_keeps_what_module_load_set"),
    ("make install PREFIX=$HOME/rankwise", "tests/capi.rs::c_and_fortran_heat_match_the_rust_example_at_1_to_4_ranks"),
    ("export PKG_CONFIG_PATH=$HOME/rankwise/lib/pkgconfig", "tests/capi.rs::c_and_fortran_heat_match_the_rust_example_at_1_to_4_ranks"),
    ("mpicc -O2 -o heat-c examples/c/heat.c $(pkg-config --cflags --libs rankwise) -lm", "tests/capi.rs::c_and_fortran_heat_match_the_rust_example_at_1_to_4_ranks"),
    ("mpifort -O2 -o heat-f examples/fortran/heat.f90 $(pkg-config --cflags --libs rankwise)", "tests/capi.rs::c_and_fortran_heat_match_the_rust_example_at_1_to_4_ranks"),
    ("rankwise run -n 4 ./heat-c -i examples/inputs/heat.toml --set n=256", "tests/capi.rs::rankwise_run_launches_them_with_the_inputs_file"),
    ("python3 -m venv --system-site-packages $HOME/rankwise-py", "tests/python.rs::a_venv_installs_the_package_with_pip"),
    ("$HOME/rankwise-py/bin/pip install ./python", "tests/python.rs::a_venv_installs_the_package_with_pip"),
    ("rankwise run -n 4 $HOME/rankwise-py/bin/python examples/python/heat.py -i examples/inputs/heat.toml --set n=256", "tests/python.rs::heat_py_through_the_launcher"),
];

/// The README's build command, which leaves the binaries its console blocks use.
const BUILD: &str = "cargo build --release --workspace --examples --bins";

#[derive(Debug)]
struct Block {
    kind: String,
    /// Line of the opening fence, for messages.
    line: usize,
    text: String,
}

/// The fenced blocks of the README.
fn blocks() -> Vec<Block> {
    parse(&std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap())
}

/// The fenced code blocks of a Markdown text, in every form: ``` or ~~~, three or more, indented
/// by any amount (CommonMark allows three spaces, list items and HTML comments more: a reader's
/// renderer may still show them, so they are checked too). The kind is the info string's first
/// word; a block is closed by a fence of the same character at least as long, with nothing after.
fn parse(markdown: &str) -> Vec<Block> {
    fn fence(body: &str) -> Option<(char, usize)> {
        let c = body.chars().next().filter(|c| *c == '`' || *c == '~')?;
        let n = body.chars().take_while(|&x| x == c).count();
        (n >= 3).then_some((c, n))
    }
    let mut out = Vec::new();
    // The block being read, its fence and its indentation.
    let mut open: Option<(Block, (char, usize), usize)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let body = line.trim_start();
        let indent = line.len() - body.len();
        match open.take() {
            None => {
                if let Some((c, n)) = fence(body) {
                    let kind = body[n..].split_whitespace().next().unwrap_or("").to_string();
                    open = Some((Block { kind, line: i + 1, text: String::new() }, (c, n), indent));
                }
            }
            Some((b, (c, n), _)) if fence(body).is_some_and(|(c2, n2)| c2 == c && n2 >= n) && body.trim_start_matches(c).trim().is_empty() => {
                out.push(b)
            }
            Some((mut b, f, ind)) => {
                // Up to the fence's own indentation is not part of the text.
                let cut = line.len() - line.trim_start().len();
                b.text.push_str(&format!("{}\n", &line[cut.min(ind)..]));
                open = Some((b, f, ind));
            }
        }
    }
    assert!(open.is_none(), "README.md line {}: a code block is never closed", open.unwrap().0.line);
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
    let files: Vec<String> = PROGRAMS.iter().map(|p| std::fs::read_to_string(Path::new(ROOT).join(p)).unwrap()).collect();
    for b in &rust {
        assert!(files.contains(&b.text), "README.md line {}: this rust block is none of {PROGRAMS:?}: copy it into its file (or the file into it)", b.line);
    }
    for (p, f) in PROGRAMS.iter().zip(&files) {
        let lines: Vec<usize> = rust.iter().filter(|b| b.text == *f).map(|b| b.line).collect();
        assert_eq!(lines.len(), 1, "{p} is shown {} times in README.md (lines {lines:?}): show each program once", lines.len());
    }
}

/// The commands of the `sh` blocks, in README order, without their comments.
fn sh_commands() -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for b in of_kind("sh") {
        for line in b.text.lines() {
            let cmd = line.split("  #").next().unwrap().trim();
            if !cmd.is_empty() && !cmd.starts_with('#') {
                out.push((b.line, cmd.to_string()));
            }
        }
    }
    out
}

#[test]
fn sh_commands_that_cannot_run_here_name_what_runs_them() {
    for (_, by) in COVERED {
        match by.split_once("::") {
            Some((file, test)) => {
                let src = std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
                assert!(src.contains(&format!("#[test]\nfn {test}(")), "{by} is not a test");
            }
            None => {
                let cmd = COVERED.iter().find(|(_, b)| b == by).unwrap().0;
                let src = std::fs::read_to_string(Path::new(ROOT).join(by)).unwrap_or_else(|e| panic!("{by}: {e}"));
                assert!(src.contains(cmd), "`{cmd}` is covered by {by}, which does not run it");
            }
        }
    }
    let cmds = sh_commands();
    for (c, _) in COVERED {
        assert!(cmds.iter().any(|(_, x)| x == c), "COVERED names `{c}`, which the README no longer shows: remove it");
    }
    assert!(cmds.iter().any(|(_, c)| c == BUILD), "the README no longer shows `{BUILD}`: the console blocks' binaries come from it");
    assert!(cmds.iter().any(|(_, c)| c.starts_with("export PATH=")), "the README no longer puts its binaries on PATH");
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

/// The target folder this test was built in (`target`, or `target/mpich` for an MPICH build),
/// after the README's own build command has left the release binaries in its `release`.
fn release_built() -> PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !*built {
        let mut c = cargo();
        c.args(BUILD.split_whitespace().skip(1));
        assert!(c.status().unwrap().success(), "`{BUILD}` failed");
        *built = true;
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().parent().unwrap().to_path_buf() // target/<profile>/deps/x
}

/// How a README output line that a log or an error line begins with: those are on stderr.
fn is_stderr(line: &str) -> bool {
    ["[rank ", "rankwise: ", "error: "].iter().any(|p| line.starts_with(p))
}

/// Run `cmds` in one bash in `dir` (the README's `export PATH=...` first); each command's stdout
/// and stderr, and its exit code.
fn run_in(dir: &Path, what: String, cmds: &[String]) -> Vec<(Vec<String>, Vec<String>, String)> {
    let export = sh_commands().into_iter().map(|(_, c)| c).find(|c| c.starts_with("export PATH=")).expect("the README puts its binaries on PATH");
    let errs = dir.with_extension("stderr");
    std::fs::create_dir_all(&errs).unwrap();
    let mut script = format!("{export}\n");
    for (k, cmd) in cmds.iter().enumerate() {
        script.push_str(&format!("{{ {cmd}\n}} 2>'{}/{k}'\necho \"@@rc=$?@@\"\n", errs.display()));
    }
    let mut bash = Command::new("bash");
    bash.arg("-c").arg(&script).current_dir(dir);
    mpi_env(&mut bash);
    clean_cargo_env(&mut bash);
    let o = run_with_timeout(bash, what, Duration::from_secs(300), 0);
    assert!(!o.timed_out, "{}", o.show());
    // Split stdout at the markers: one output and exit code per command.
    let mut outputs = vec![];
    let mut current = vec![];
    for line in o.stdout.lines() {
        match line.find("@@rc=") {
            Some(i) => {
                if i > 0 {
                    current.push(line[..i].to_string());
                }
                let err = std::fs::read_to_string(errs.join(outputs.len().to_string())).unwrap_or_default();
                outputs.push((std::mem::take(&mut current), err.lines().map(String::from).collect(), line[i + 5..].trim_end_matches("@@").to_string()));
            }
            None => current.push(line.to_string()),
        }
    }
    assert_eq!(outputs.len(), cmds.len(), "{}", o.show());
    outputs
}

#[test]
fn console_and_sh_blocks_run_as_the_readme_shows() {
    let target = release_built();
    let s = Scratch::new("readme");
    // `$PWD/target` in the README's `export PATH=...` is this build's target folder.
    std::os::unix::fs::symlink(&target, s.path().join("target")).unwrap();
    for d in ["examples", "scripts", "Makefile"] {
        std::os::unix::fs::symlink(Path::new(ROOT).join(d), s.path().join(d)).unwrap();
    }
    for b in &blocks() {
        if b.kind == "sh" {
            run_sh(s.path(), b);
            continue;
        } else if b.kind != "console" {
            continue;
        }
        // (command, expected output lines)
        let mut cmds: Vec<(String, Vec<&str>)> = Vec::new();
        for line in b.text.lines() {
            match line.strip_prefix("$ ") {
                Some(cmd) => cmds.push((cmd.to_string(), vec![])),
                None => cmds.last_mut().unwrap_or_else(|| panic!("README.md line {}: a console block starts with `$ command`", b.line)).1.push(line),
            }
        }
        let run: Vec<String> = cmds
            .iter()
            .map(|(cmd, _)| if cmd.starts_with("cargo ") { format!("{cmd} {}", build_profile().join(" ")) } else { cmd.clone() })
            .collect();
        let outputs = run_in(s.path(), format!("README.md line {}", b.line), &run);
        for ((cmd, want), (out, err, rc)) in cmds.iter().zip(&outputs) {
            let (want_err, want_out): (Vec<&str>, Vec<&str>) = want.iter().partition(|l| is_stderr(l));
            // The stderr lines shown, in order, among whatever else it logged.
            let want_err: Vec<&str> = std::iter::once("...").chain(want_err.iter().flat_map(|l| [*l, "..."])).collect();
            let (out, err): (Vec<&str>, Vec<&str>) = (out.iter().map(String::as_str).collect(), err.iter().map(String::as_str).collect());
            assert!(
                rc == "0" && fits(&want_out, &out) && fits(&want_err, &err),
                "README.md line {}: `{cmd}` exited {rc} and printed\n{}\n--- on stderr ---\n{}\n--- the README shows ---\n{}",
                b.line,
                out.join("\n"),
                err.join("\n"),
                want.join("\n"),
            );
        }
    }
}

/// Run the commands of an `sh` block that can run here ([`COVERED`] names the others): each
/// must exit 0.
fn run_sh(dir: &Path, b: &Block) {
    let sh: Vec<String> = sh_commands().into_iter().filter(|(l, c)| *l == b.line && !COVERED.iter().any(|(x, _)| x == c)).map(|(_, c)| c).collect();
    for (cmd, (out, err, rc)) in sh.iter().zip(run_in(dir, format!("README.md line {}", b.line), &sh)) {
        assert_eq!(rc, "0", "README.md line {}: `{cmd}` exited {rc}\n{}\n--- stderr ---\n{}", b.line, out.join("\n"), err.join("\n"));
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
fn fences_of_every_form_are_found() {
    let md = "text\n```sh\na\n```\n  ~~~console\n  $ b\n  ~~~\n<!--\n    ````rust extra\n    ```\n    c\n    ````\n-->\n```\nd\n```\n";
    let b = parse(md);
    let got: Vec<(&str, &str)> = b.iter().map(|b| (b.kind.as_str(), b.text.as_str())).collect();
    assert_eq!(got, [("sh", "a\n"), ("console", "$ b\n"), ("rust", "```\nc\n"), ("", "d\n")]);
    let unclosed = std::panic::catch_unwind(|| parse("~~~sh\na\n```\n"));
    assert!(unclosed.is_err(), "a ~~~ block closed by ```");
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
