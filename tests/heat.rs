//! The heat example: the same bits on any rank count, second-order convergence to the exact decay
//! of a Fourier mode, and restart from a checkpoint on another rank count.

mod common;
use common::{names, Job, Outcome, Scratch, SmallDisk};

fn final_line(o: &Outcome) -> String {
    o.assert_success();
    o.line(0, "final ").to_string()
}

fn field(line: &str, key: &str) -> String {
    line.split(' ').find_map(|kv| kv.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("no {key} in {line}")).to_string()
}

fn heat(np: usize, sets: &[&str]) -> Outcome {
    Job::new(np, "heat").args(sets.iter().flat_map(|s| ["--set", s])).run()
}

#[test]
fn same_bits_at_1_to_4_ranks_in_2d_and_3d() {
    let two_d: Vec<String> = (1..=4).map(|np| final_line(&heat(np, &["n=24", "steps=50"]))).collect();
    assert!(two_d.iter().all(|l| *l == two_d[0]), "{two_d:#?}");
    let three_d: Vec<String> = [1, 3, 4].iter().map(|&np| final_line(&heat(np, &["n=10", "dim=3", "steps=20"]))).collect();
    assert!(three_d.iter().all(|l| *l == three_d[0]), "{three_d:#?}");
}

#[test]
fn error_falls_at_second_order() {
    let err = |n: usize| -> f64 {
        field(&final_line(&heat(2, &[&format!("n={n}"), "t_end=0.01"])), "l2_error").parse().unwrap()
    };
    let (e16, e32, e64) = (err(16), err(32), err(64));
    // Halving h divides the error by 4 (dt follows h^2).
    assert!(e16 / e32 > 3.5 && e32 / e64 > 3.5, "errors {e16:e} {e32:e} {e64:e}");
    assert!(e64 < 1e-4, "{e64:e}");
}

/// A run that completes leaves a checkpoint at its last step: extended with a larger `steps`
/// (on another rank count) it continues from there, and ends as one run of all the steps does.
#[test]
fn a_finished_run_extended_continues_from_its_end() {
    let reference = final_line(&heat(3, &["n=24", "steps=50"]));
    let s = Scratch::new("heat-extend");
    let dir = format!("checkpoint.dir={}", s.path().join("ckpt").display());
    let first = heat(2, &["n=24", "steps=30", &dir]);
    assert!(final_line(&first).starts_with("final step=30 "), "{}", first.show());
    let names = || std::fs::read_dir(s.path().join("ckpt")).map(|d| d.map(|e| e.unwrap().file_name().into_string().unwrap()).filter(|n| n.ends_with(".h5")).collect::<Vec<_>>()).unwrap_or_default();
    assert_eq!(names(), ["ckpt-0000000030.h5"]);
    let o = heat(3, &["n=24", "steps=50", &dir]);
    assert!(o.rank_errs[0].iter().any(|l| l.contains("restarted from step 30 (2 ranks wrote it, 3 now)")), "{}", o.show());
    assert_eq!(final_line(&o), reference);
    let mut after = names();
    after.sort();
    assert_eq!(after, ["ckpt-0000000030.h5", "ckpt-0000000050.h5"]);
    // Turned off, a run with no interval writes none.
    let off = format!("checkpoint.dir={}", s.path().join("off").display());
    final_line(&heat(2, &["n=24", "steps=30", "checkpoint.at_end=false", &off]));
    assert!(!s.path().join("off").join("ckpt-0000000030.h5").exists());
}

#[test]
fn restart_from_a_checkpoint_on_another_rank_count_is_bit_identical() {
    let reference = final_line(&heat(3, &["n=20", "steps=40"]));
    let s = Scratch::new("heat-restart");
    let dir = format!("checkpoint.dir={}", s.path().join("ckpt").display());
    // A first run of 25 steps at 4 ranks leaves checkpoints at steps 10 and 20 (none at its end).
    final_line(&heat(4, &["n=20", "steps=25", "checkpoint.every=10", "checkpoint.at_end=false", &dir]));
    assert!(!s.path().join("ckpt/ckpt-0000000025.h5").exists());
    assert!(s.path().join("ckpt/ckpt-0000000020.h5").exists());
    // The second, at 2 ranks, resumes from step 20 and finishes the 40 steps.
    let o = heat(2, &["n=20", "steps=40", "checkpoint.every=10", &dir]);
    assert!(o.rank_errs[0].iter().any(|l| l.contains("restarted from step 20 (4 ranks wrote it, 2 now)")), "{}", o.show());
    assert_eq!(final_line(&o), reference);
    // Another run's checkpoints (another alpha) are refused in one line, and left where they are.
    let listing = || std::fs::read_dir(s.path().join("ckpt")).unwrap().map(|e| e.unwrap().file_name()).collect::<std::collections::BTreeSet<_>>();
    let before = listing();
    let o = heat(2, &["n=20", "steps=40", "alpha=2", &dir]);
    assert_eq!(o.code, Some(2), "{}", o.show());
    let errors: Vec<&String> = o.rank_errs[0].iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{}", o.show());
    assert!(errors[0].contains("written with alpha = 1.0, this run has alpha = 2.0"), "{}", o.show());
    assert_eq!(listing(), before);
}

#[test]
fn bad_inputs_are_one_line_and_exit_2() {
    for (sets, msg) in [
        (vec!["n=1"], "error: --set n: `n` = 1: need at least 2 cells per side"),
        (vec!["dim=4"], "error: --set dim: `dim` = 4: must be 2 or 3"),
        (vec!["stpes=3"], "error: --set stpes: unknown input `stpes`"),
        (vec!["checkpoint.every=10"], "error: --set checkpoint.every: `checkpoint.every` = 10: needs checkpoint.dir (where to write them)"),
        (vec!["backend=gpu"], "error: --set backend: `backend` = \"gpu\": expected cpu, cuda or auto"),
    ] {
        let o = heat(2, &sets);
        assert_eq!(o.code, Some(2), "{}", o.show());
        assert_eq!(o.rank_errs[0].iter().filter(|l| l.starts_with("error:")).collect::<Vec<_>>(), vec![msg], "{}", o.show());
    }
}

/// A directory named in the inputs that cannot be made (here under a plain file) is one line of
/// bad input before the first step: nothing else is printed, no step runs, nothing is written.
#[test]
fn a_directory_that_cannot_be_used_is_one_line_before_any_step() {
    let s = Scratch::new("heat-dirs");
    let file = s.path().join("file");
    std::fs::write(&file, "not a directory").unwrap();
    let f = file.display();
    for (sets, msg) in [
        (vec![format!("checkpoint.dir={f}/ck")], format!("error: cannot make the checkpoint directory {f}/ck: Not a directory (os error 20)")),
        (
            vec![format!("checkpoint.dir={}", s.path().join("ck").display()), format!("checkpoint.local={f}/local")],
            format!("error: cannot make the node-local checkpoint directory {f}/local: Not a directory (os error 20)"),
        ),
        (vec![format!("output.dir={f}/out")], format!("error: cannot make the output directory {f}/out: Not a directory (os error 20)")),
        (vec![format!("output.png={f}/u.png")], format!("error: cannot make the folder of output.png {f}: File exists (os error 17)")),
    ] {
        let sets: Vec<String> = ["n=16", "steps=10", "progress.every=1"].iter().map(|s| s.to_string()).chain(sets).collect();
        let o = Job::new(2, "heat").args(sets.iter().flat_map(|s| ["--set", s])).run();
        assert_eq!(o.code, Some(2), "{}", o.show());
        assert_eq!(o.rank_errs[0].iter().filter(|l| l.starts_with("error:")).collect::<Vec<_>>(), vec![&msg], "{}", o.show());
        assert!(!o.stdout.contains("final ") && !o.stderr.contains("step 1/10") && !o.stderr.contains("MPI_ABORT"), "{}", o.show());
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory");
}

/// A checkpoint that does not fit on its disk fails the run with the disk's free space in its
/// error, leaves the checkpoints before it valid and no `.partial`; once space is made, the run
/// continues from the last one and ends with the bits of an uninterrupted run.
#[test]
fn a_full_disk_keeps_the_checkpoints_before_it_and_the_run_resumes_once_there_is_room() {
    let s = Scratch::new("heat-full-disk");
    let reference = heat(2, &["n=256", "steps=300"]);
    // Through MPI-IO, and written by each rank straight into the file (RANKWISE_CKPT_DIRECT_RUN).
    for direct in ["262144", "0"] {
        // Two 512 KiB checkpoints fit, a third does not.
        let disk = SmallDisk::mount(s.path().join(format!("small-{direct}")), "1200k");
        let ckpt = format!("checkpoint.dir={}", disk.0.display());
        let sets = ["n=256", "steps=300", "checkpoint.every=100", "checkpoint.keep=2", &ckpt].map(String::from);
        let run = || Job::new(2, "heat").args(sets.iter().flat_map(|s| ["--set", s])).env("RANKWISE_CKPT_DIRECT_RUN", direct).run();
        let o = run();
        assert_eq!(o.code, Some(1), "{}", o.show());
        assert!(o.stderr.contains("(the filesystem of ") && o.stderr.contains(" bytes free)"), "{}", o.show());
        assert_eq!(names(&disk.0), ["ckpt-0000000100.h5", "ckpt-0000000100.xmf", "ckpt-0000000200.h5", "ckpt-0000000200.xmf"]);
        // The user makes room; the run goes on from step 200.
        std::fs::remove_file(disk.0.join("ckpt-0000000100.h5")).unwrap();
        let o = run();
        assert!(o.rank_errs[0].iter().any(|l| l.contains("restarted from step 200")), "{}", o.show());
        assert_eq!(final_line(&o), final_line(&reference), "direct run {direct}");
    }
}

#[test]
fn cuda_without_a_gpu_is_one_line_and_exit_2_and_auto_runs_on_the_cpu() {
    if rankwise::kernels::CudaBackend::new(0).is_ok() {
        eprintln!("skipping: a GPU is usable here (tests/gpu.rs runs heat on it)");
        return;
    }
    let o = heat(2, &["backend=cuda"]);
    assert_eq!(o.code, Some(2), "{}", o.show());
    let errors: Vec<&String> = o.rank_errs[0].iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{}", o.show());
    assert!(errors[0].starts_with("error: --set backend: `backend` = \"cuda\": no usable GPU: "), "{}", o.show());
    let sets = ["n=24", "steps=20"];
    assert_eq!(final_line(&heat(2, &[&sets[..], &["backend=auto"]].concat())), final_line(&heat(2, &sets)));
}

#[test]
fn the_inputs_file_runs() {
    let s = Scratch::new("heat-inputs");
    let o = Job::new(2, "heat")
        .args(["--inputs", concat!(env!("CARGO_MANIFEST_DIR"), "/examples/inputs/heat.toml")])
        .args(["--set", "n=32", "--set", "steps=20", "--set", "checkpoint.every=0"])
        .dir(s.path())
        .run();
    assert!(field(&final_line(&o), "step") == "20", "{}", o.show());
}

/// Decode a PNG into (width, height, RGB bytes).
fn decode_png(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(std::fs::File::open(path).unwrap()).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.color_type, info.bit_depth), (png::ColorType::Rgb, png::BitDepth::Eight));
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// Each pixel's place on the colour map (0 bottom, 1 top), by the nearest of 1024 map colours.
fn colour_positions(rgb: &[u8]) -> Vec<f64> {
    let map: Vec<[u8; 3]> = (0..1024).map(|k| rankwise::io::image::colour(k as f64 / 1023.0)).collect();
    let d = |a: [u8; 3], p: &[u8]| a.iter().zip(p).map(|(&x, &y)| (x as i32 - y as i32).pow(2)).sum::<i32>();
    rgb.chunks(3)
        .map(|p| {
            let (k, best) = map.iter().enumerate().min_by_key(|(_, &c)| d(c, p)).unwrap();
            assert!(d(*best, p) <= 3, "pixel {p:?} is not a colour of the map");
            k as f64 / 1023.0
        })
        .collect()
}

#[test]
fn final_state_as_png_and_xdmf_that_paraview_and_h5py_open() {
    let s = Scratch::new("heat-output");
    let n = 24;
    let out = format!("output.dir={}", s.path().join("out").display());
    let line = final_line(&heat(3, &[&format!("n={n}"), "steps=30", &out]));
    // The field stays the initial mode times a decay factor (the mode is an eigenvector of the
    // discrete step), so its picture scaled min..max is the mode's: sin(2 pi x) sin(2 pi y).
    let (w, h, rgb) = decode_png(&s.path().join("out/heat-final.png"));
    assert_eq!((w, h), (n as u32, n as u32));
    let m = |k: usize| (2.0 * std::f64::consts::PI * (k as f64 + 0.5) / n as f64).sin();
    let mode: Vec<f64> = (0..n * n).map(|c| m(c / n) * m(c % n)).collect();
    let (lo, hi) = mode.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let t = colour_positions(&rgb);
    for (c, (got, v)) in t.iter().zip(&mode).enumerate() {
        let want = (v - lo) / (hi - lo);
        assert!((got - want).abs() < 0.01, "pixel ({}, {}): colour at {got:.3} of the map, field at {want:.3}", c / n, c % n);
    }
    assert!(t.iter().any(|&x| x == 0.0) && t.iter().any(|&x| x == 1.0), "the colours span the whole map");

    // h5py opens the dataset the XDMF names: the right shape and exactly the final field's bits.
    let xmf = s.path().join("out/heat-final.xmf");
    let py = std::process::Command::new("/usr/bin/python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/heat_xdmf.py"))
        .arg(&xmf)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&py.stdout);
    assert!(py.status.success(), "{text}{}", String::from_utf8_lossy(&py.stderr));
    assert_eq!(text.trim(), format!("u shape={n}x{n} checksum={}", field(&line, "checksum")));

    // 3-D: the PNG is the middle plane, at a path of its own.
    let png = s.path().join("pics/mid.png");
    final_line(&heat(2, &["n=10", "dim=3", "steps=5", &format!("output.png={}", png.display())]));
    let (w, h, rgb) = decode_png(&png);
    assert_eq!((w, h), (10, 10));
    // Plane x = 5 (cell centre 0.55): the profile is a negative multiple of sin(2 pi y) sin(2 pi z).
    let t = colour_positions(&rgb);
    assert!(t[2 * 10 + 7] == 1.0 && t[2 * 10 + 2] == 0.0, "{t:?}");
    let o = heat(2, &["n=8", "steps=2", "output.png=3"]);
    assert_eq!(o.code, Some(2), "{}", o.show());
    assert!(o.rank_errs[0].iter().any(|l| l == "error: --set output.png: `output.png` = 3: expected true, false or a file name"), "{}", o.show());
}
