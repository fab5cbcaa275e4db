//! Decompositions, fields and reductions under real mpirun at 1-4 ranks, some at 8 too
//! (oversubscribed) (program: tests/programs/fields.rs).

mod common;
use common::Job;

/// SHAPE:PERIODIC:GHOST:STENCIL. Uneven sizes, ghost layers wider than a block (`3:1:2`), ranks
/// with no cells (`2:1:3` and `3:1:2` at 3-4 ranks), periodic images of a rank's own cells.
const HALO_SPECS: &[&str] = &[
    "13:0:1:star", "13:1:2:star", "3:1:2:box", "2:1:3:box",
    "12x10:00:1:star", "11x7:10:2:box", "9x13:11:2:star", "6x5:01:1:box", "8x8:11:1:box",
    "6x5x4:000:1:box", "7x6x5:101:2:star", "5x4x3:111:2:box", "4x4x4:111:1:star",
];

#[test]
fn halo_exchange_fills_every_ghost_cell_for_every_rank_grid() {
    for np in 1..=4 {
        let o = Job::new(np, "fields").args(["halo"]).args(HALO_SPECS).run();
        o.assert_success();
        for r in 0..np {
            // Each spec runs on the automatic grid and on every other grid that fits.
            let l = o.line(r, "rank=");
            assert!(l.ends_with(" bad=0"), "{l}\n{}", o.show());
            let runs: usize = l.split("runs=").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
            assert!(runs >= HALO_SPECS.len(), "{l}");
        }
    }
}

/// A field keeps its exchange's message buffers: exchanges in a row (one field, split phase,
/// two at once; values changing between them; periodic images of a rank's own cells, corners,
/// a 2 x 2 grid) fill exactly the ghosts a fresh field's exchange fills, and once each kind has
/// run, none allocates a message-sized buffer.
#[test]
fn repeated_exchanges_reuse_their_buffers_and_fill_the_same_ghosts() {
    for np in 2..=4 {
        let o = Job::new(np, "fields").args(["reuse", "400x64:11:2:box", "96x96:00:1:star", "96x96:11:1:star"]).run();
        o.assert_success();
        for r in 0..np {
            let lines: Vec<_> = o.ranks[r].iter().filter(|l| l.starts_with("rank=")).collect();
            assert_eq!(lines.len(), 3, "{}", o.show());
            assert!(lines.iter().all(|l| l.ends_with(" bad=0 allocs=0")), "{}", o.show());
        }
    }
}

/// Each exchange draws its own tag: two in flight finish in either order. A finish on other
/// fields, or on the same in another order, is refused with an error and fills nothing.
#[test]
fn split_phase_exchanges_know_their_fields() {
    for np in [1, 2, 3, 4, 8] {
        let o = Job::new(np, "fields").args(["mismatch"]).run();
        o.assert_success();
        for r in 0..np {
            assert_eq!(o.line(r, "rank="), format!("rank={r} bad=0 untouched=true"), "{}", o.show());
            let swapped = o.line(r, &format!("rank={r} swapped:"));
            assert!(swapped.ends_with("began on fields #3, #4 but finish was given fields #4, #3: finish needs the same fields in the same order"), "{swapped}");
            let other = o.line(r, &format!("rank={r} other:"));
            assert!(other.contains("began on field #3 but finish was given field #1"), "{other}");
            assert_eq!(o.line(r, &format!("rank={r} after=")), format!("rank={r} after=0"));
        }
    }
}

#[test]
fn gather_scatter_round_trip_is_exact() {
    for np in [1, 2, 3, 4, 8] {
        let o = Job::new(np, "fields").args(["gather", "7x5x3", "10x3", "2"]).run();
        o.assert_success();
        for r in 0..np {
            let lines: Vec<_> = o.ranks[r].iter().filter(|l| l.starts_with("rank=")).collect();
            assert_eq!(lines.len(), 3, "{}", o.show());
            assert!(lines.iter().all(|l| l.ends_with(" roundtrip=exact")), "{}", o.show());
        }
    }
}

#[test]
fn reproducible_sum_has_the_same_bits_at_any_rank_count() {
    let field = |l: &str, k: &str| l.split(&format!("{k}=")).nth(1).unwrap().split(' ').next().unwrap().to_string();
    let mut lines = Vec::new();
    for np in [1, 2, 3, 4, 8] {
        let o = Job::new(np, "fields").args(["sums", "37x29"]).run();
        o.assert_success();
        // Every rank gets the same result.
        let l0 = o.line(0, "rank=0 ").to_string();
        for r in 1..np {
            assert_eq!(o.line(r, "rank=")[7..], l0[7..], "{}", o.show());
        }
        lines.push(l0);
    }
    for k in ["repro", "rdot", "min", "max", "sum_int", "dot_int", "f32sum", "f32min", "f32max", "f32repro", "repro_inf", "repro_nan"] {
        let v: Vec<String> = lines.iter().map(|l| field(l, k)).collect();
        assert!(v.iter().all(|x| *x == v[0]), "{k} differs with the rank count: {v:?}");
    }
    // An infinity held by one rank reaches all; with minus infinity held by another, NaN.
    assert_eq!((field(&lines[0], "repro_inf").as_str(), field(&lines[0], "repro_nan").as_str()), ("inf", "NaN"));
    // Integers: exact in any order. Column index 0..37 + 1, 29 times: sum 29*37*38/2.
    assert_eq!(field(&lines[0], "sum_int"), "20387");
    // The data is awkward enough that the plain sum's bits do change with the rank count.
    let plain: Vec<String> = lines.iter().map(|l| field(l, "plain")).collect();
    assert!(plain.iter().any(|p| *p != field(&lines[0], "repro")), "{plain:?}");
}

/// min, max, dot and norm2 against the true values (computed from the formulas in one process),
/// at every rank count; integers exactly.
#[test]
fn reductions_give_the_true_values_at_1_to_4_ranks() {
    let get = |l: &str, k: &str| -> f64 { l.split(&format!(" {k}=")).nth(1).unwrap().split(' ').next().unwrap().parse().unwrap() };
    for np in 1..=4 {
        let o = Job::new(np, "fields").args(["sums", "37x29"]).run();
        o.assert_success();
        for r in 0..np {
            let (l, t) = (o.line(r, "rank="), o.line(r, "truth rank="));
            assert_eq!(get(l, "min"), get(t, "true_min"), "{}", o.show());
            assert_eq!(get(l, "max"), get(t, "true_max"), "{}", o.show());
            // A plain sum of n terms is within n eps sum|a_i b_i| of the true one.
            let bound = 37.0 * 29.0 * f64::EPSILON * get(t, "true_abs_dot");
            assert!((get(t, "dot") - get(t, "true_dot")).abs() <= bound, "dot off by more than {bound:e}\n{}", o.show());
            let (n2, want) = (get(t, "norm2"), get(t, "true_norm2"));
            assert!((n2 - want).abs() <= 37.0 * 29.0 * f64::EPSILON * want, "norm2 {n2:e} against {want:e}\n{}", o.show());
            // Integers (column index + 1, 29 rows of 1..=37): exact.
            assert_eq!(get(l, "sum_int"), 29.0 * (37.0 * 38.0 / 2.0), "{l}");
            assert_eq!(get(l, "dot_int"), 29.0 * (37.0 * 38.0 * 75.0 / 6.0), "{l}");
            assert_eq!(get(l, "norm2_int"), (29.0f64 * (37.0 * 38.0 * 75.0 / 6.0)).sqrt(), "{l}");
            // f32: sum of the global indices minus 3, from -3 to 36 + 28 - 3.
            assert_eq!((get(l, "f32min"), get(l, "f32max")), (-3.0, 61.0), "{l}");
        }
    }
}

/// The field checksum heat and poisson print sees every bit: flipping any one bit of any value
/// changes it (each flip to a different sum), so do the signs of any two values flipped together
/// and negating the whole 6x4 field (FNV-1a over whole words missed both: two sign flips
/// cancelled), it is the same at every rank count, and the
/// distributed sum equals the serial definition over the gathered array.
#[test]
fn the_field_checksum_changes_with_any_single_bit() {
    let get = |l: &str, k: &str| l.split(&format!(" {k}=")).nth(1).unwrap().split(' ').next().unwrap().to_string();
    let mut first: Vec<String> = Vec::new();
    for np in 1..=4 {
        let o = Job::new(np, "fields").args(["bits", "7x5", "6x4"]).run();
        o.assert_success();
        let lines: Vec<&String> = o.ranks[0].iter().filter(|l| l.starts_with("bits ")).collect();
        assert_eq!(lines.len(), 4, "{}", o.show());
        for (l, (cells, bits)) in lines.iter().zip([(35, 64), (35, 32), (24, 64), (24, 32)]) {
            assert_eq!(get(l, "flips"), (cells * bits).to_string(), "{l}");
            assert_eq!(get(l, "missed"), "0", "a bit flip left the checksum as it was: {l}");
            assert_eq!(get(l, "distinct"), get(l, "flips"), "two bit flips gave the same checksum: {l}");
            assert_eq!(get(l, "pairs_missed"), "0", "two sign flips cancelled: {l}");
            assert_eq!(get(l, "negated_differs"), "true", "{l}");
            assert_eq!(get(l, "checksum"), get(l, "serial"), "{l}");
        }
        let sums: Vec<String> = lines.iter().map(|l| get(l, "checksum")).collect();
        if first.is_empty() {
            first = sums;
        } else {
            assert_eq!(sums, first, "the checksum changed with the rank count ({np})");
        }
    }
}

#[test]
fn heat_steps_give_the_same_bits_at_1_to_4_and_8_ranks() {
    let mut hashes = Vec::new();
    for np in [1, 2, 3, 4, 8] {
        let o = Job::new(np, "fields").args(["heat", "37x23", "300"]).run();
        o.assert_success();
        hashes.push(o.line(0, "heat hash=").to_string());
    }
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:#?}");
}

#[test]
fn an_impossible_rank_grid_is_one_clear_line_and_exit_2() {
    let o = Job::new(3, "fields").args(["grid", "4x4", "2x2"]).run();
    assert_eq!(o.code, Some(2), "{}", o.show());
    let errs: Vec<_> = o.rank_errs.iter().flatten().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errs, ["error: rank grid [2, 2] holds 4 ranks but the job has 3"], "{}", o.show());
    let o = Job::new(2, "fields").args(["grid", "1x8", "2x1"]).run();
    assert_eq!(o.code, Some(2), "{}", o.show());
    assert!(
        o.rank_errs[0].iter().any(|l| l == "error: rank grid [2, 1] puts more ranks (2) than cells (1) along dimension 0"),
        "{}",
        o.show()
    );
}
