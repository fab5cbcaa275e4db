//! Property fuzzing of the Slurm parsers (host lists, task counts, durations, timestamps): any
//! input gives a value or an error, never a panic, a hang or an allocation without bound; what
//! can be written back reads back the same.
//!
//! Deterministic: the seed is `RANKWISE_FUZZ_SEED` (default 1) and the number of inputs per
//! property `RANKWISE_FUZZ_CASES` (default 4000; the round trips a tenth); scripts/fuzz.sh
//! runs 10^6 each.

use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use rankwise_slurm::{expand_counts, expand_hostlist, format_duration, parse_duration, parse_timestamp};

fn config(divisor: u64) -> Config {
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (cases, seed) = (env("RANKWISE_FUZZ_CASES", 4000) / divisor, env("RANKWISE_FUZZ_SEED", 1));
    eprintln!("fuzz: {cases} inputs per property, seed {seed}");
    Config { cases: cases as u32, rng_seed: RngSeed::Fixed(seed), failure_persistence: None, ..Config::default() }
}

/// Host lists as Slurm writes them, and near misses: brackets, ranges, commas, padding.
fn hostlist_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9\\[\\],\\- ]{0,40}",
        "[a-z]{0,3}(\\[[0-9,\\-]{0,14}\\])?[a-z]{0,2}(,[a-z]{0,3}(\\[[0-9,\\-]{0,14}\\])?[a-z0-9]{0,2}){0,3}",
        "([a-z]{1,2}\\[[0-9]{1,3}-[0-9]{1,3}\\]){1,5}",
    ]
}

/// Slurm's own compression of `hosts` (each `prefix` + number padded to `width`): runs of the
/// same prefix and width in one bracket, consecutive numbers as ranges, order kept.
fn compress(hosts: &[(String, u64, usize)]) -> String {
    let mut items: Vec<String> = Vec::new();
    let mut i = 0;
    while i < hosts.len() {
        let (p, _, w) = &hosts[i];
        let mut j = i;
        while j < hosts.len() && hosts[j].0 == *p && hosts[j].2 == *w {
            j += 1;
        }
        let mut ranges: Vec<String> = Vec::new();
        let mut k = i;
        while k < j {
            let mut e = k;
            while e + 1 < j && hosts[e + 1].1 == hosts[e].1 + 1 {
                e += 1;
            }
            let (a, b) = (hosts[k].1, hosts[e].1);
            ranges.push(if a == b { format!("{a:0w$}") } else { format!("{a:0w$}-{b:0w$}") });
            k = e + 1;
        }
        items.push(format!("{p}[{}]", ranges.join(",")));
        i = j;
    }
    items.join(",")
}

proptest! {
    // Never a panic: the full number of inputs.
    #![proptest_config(config(1))]
    #[test]
    fn hostlist_never_panics(list in hostlist_like()) {
        if let Ok(hosts) = expand_hostlist(&list) {
            prop_assert!(!hosts.is_empty());
            prop_assert!(hosts.iter().all(|h| !h.is_empty() && !h.contains(['[', ']', ','])), "{list:?} gave {hosts:?}");
        }
    }

    #[test]
    fn counts_never_panic(list in prop_oneof![any::<String>(), "[0-9]{0,3}(\\(x[0-9]{0,12}\\)?)?(,[0-9]{0,3}(\\(x[0-9]{0,12}\\))?){0,3}"]) {
        let _ = expand_counts(&list);
    }

    #[test]
    fn durations_never_panic(s in prop_oneof![any::<String>(), "[0-9]{0,21}(-[0-9]{0,21})?(:[0-9]{0,21}){0,3}"]) {
        if let Ok(Some(d)) = parse_duration(&s) {
            prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), Some(d), "{}", s);
        }
    }

    #[test]
    fn timestamps_never_panic(s in prop_oneof![any::<String>(), "-?[0-9]{1,20}-[0-9]{1,3}-[0-9]{1,3}T[0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3}"]) {
        let _ = parse_timestamp(&s);
    }
}

proptest! {
    // Round trips: a tenth of them (well-formed inputs, where the panics are not).
    #![proptest_config(config(10))]
    #[test]
    fn hostlist_compress_expand_round_trip(hosts in proptest::collection::vec(("[a-z]{1,4}", 0u64..2000, 0usize..5), 1..30)) {
        let names: Vec<String> = hosts.iter().map(|(p, n, w)| format!("{p}{n:0w$}")).collect();
        let list = compress(&hosts);
        prop_assert_eq!(expand_hostlist(&list).unwrap(), names, "{}", list);
    }

    #[test]
    fn counts_round_trip(runs in proptest::collection::vec((0usize..100, 1usize..20), 1..10)) {
        let list: Vec<String> = runs.iter().map(|(c, t)| if *t == 1 { c.to_string() } else { format!("{c}(x{t})") }).collect();
        let want: Vec<usize> = runs.iter().flat_map(|&(c, t)| std::iter::repeat_n(c, t)).collect();
        prop_assert_eq!(expand_counts(&list.join(",")).unwrap(), want);
    }

    #[test]
    fn duration_format_parse_round_trip(secs in prop_oneof![0u64..400_000, 0u64..(1 << 40)]) {
        let d = Duration::from_secs(secs);
        prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), Some(d));
    }

    #[test]
    fn timestamps_count_seconds(y in 1970i64..=9999, mo in 1i64..=12, d in 1i64..=28, h in 0i64..24, mi in 0i64..60, se in 0i64..60) {
        let at = |h: i64, mi: i64, se: i64| {
            let t = parse_timestamp(&format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}")).unwrap().unwrap();
            t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
        };
        prop_assert_eq!(at(h, mi, se) - at(0, 0, 0), h * 3600 + mi * 60 + se);
        prop_assert_eq!(at(0, 0, 0) % 86400, 0);
    }
}
