//! Property fuzzing of the run-configuration parsers (inputs file, `--set`, the command line) and
//! of the launcher's status file reader: any input gives a value or an error, never a panic; what
//! is written reads back the same.
//!
//! Deterministic: the seed is `RANKWISE_FUZZ_SEED` (default 1) and the number of inputs per
//! property `RANKWISE_FUZZ_CASES` (default 4000; the round trips a tenth); scripts/fuzz.sh
//! runs 10^6 each.

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, RngSeed};
use rankwise_runtime::Config;
use rankwise_runtime::status::Status;

fn config(divisor: u64) -> PtConfig {
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (cases, seed) = (env("RANKWISE_FUZZ_CASES", 4000) / divisor, env("RANKWISE_FUZZ_SEED", 1));
    eprintln!("fuzz: {cases} inputs per property, seed {seed}");
    PtConfig { cases: cases as u32, rng_seed: RngSeed::Fixed(seed), failure_persistence: None, ..PtConfig::default() }
}

/// Text near TOML: keys, tables, strings, numbers, arrays, comments, and broken versions of them.
fn toml_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9 =.\"'\\[\\]{},#_+\\-:\n\t\\\\eEinfa]{0,80}",
        "(\\[[a-z.]{0,8}\\]\n)?([a-z_.]{1,8} ?= ?(-?[0-9_]{1,22}(\\.[0-9]{0,5})?(e-?[0-9]{1,4})?|\"[a-z\\\\\"]{0,6}\"|true|\\[[0-9, ]{0,9}\\]|[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9:]{0,8})?)\n){0,5}",
    ]
}

/// Look every key up as every type a program asks for, then list and check them: no panic.
fn use_all(c: &Config, keys: &[&str]) {
    for k in keys {
        let _ = c.get::<i64>(k);
        let _ = c.get::<u64>(k);
        let _ = c.get::<usize>(k);
        let _ = c.get::<f64>(k);
        let _ = c.get::<bool>(k);
        let _ = c.get::<String>(k);
        let _ = c.get::<Vec<usize>>(k);
        let _ = c.get_or::<u32>(k, 0);
        let _ = c.require::<f32>(k);
        let _ = c.invalid(k, "no").to_string();
    }
    let _ = c.dump();
    let _ = c.finish().map_err(|e| e.to_string());
}

fn keys_of(c: &Config) -> Vec<String> {
    c.dump().lines().filter_map(|l| l.split_once(" = ").map(|(k, _)| k.to_string())).collect()
}

proptest! {
    // Never a panic: the full number of inputs.
    #![proptest_config(config(1))]
    #[test]
    fn inputs_file_never_panics(text in toml_like()) {
        match Config::from_toml(&text, "inputs.toml") {
            Ok(c) => {
                let keys = keys_of(&c);
                use_all(&c, &keys.iter().map(String::as_str).chain(["n", "a.b"]).collect::<Vec<_>>());
            }
            Err(e) => prop_assert!(e.to_string().starts_with("inputs.toml")),
        }
    }

    #[test]
    fn set_never_panics(arg in prop_oneof![any::<String>(), "[a-z. ]{0,6}=?[a-z0-9 =.\"'\\[\\]{},#_+\\-:]{0,30}"]) {
        let mut c = Config::default();
        if c.set(&arg).is_ok() {
            let key = arg.split_once('=').unwrap().0.trim().to_string();
            prop_assert!(c.contains(&key));
            use_all(&c, &[&key]);
        }
    }

    #[test]
    fn command_line_never_panics(args in proptest::collection::vec(prop_oneof![
        Just("--set".to_string()), Just("-s".to_string()), Just("--set=".to_string()), Just("--".to_string()),
        "[a-z.=0-9\\[\\] ]{0,12}", any::<String>(),
    ], 0..6)) {
        // Never `--inputs`/`-i`: an arbitrary path could name a device file.
        prop_assume!(!args.iter().any(|a| a == "-i" || a.starts_with("--inputs")));
        if let Ok(c) = Config::from_args(args) {
            let keys = keys_of(&c);
            use_all(&c, &keys.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }

    #[test]
    fn status_file_never_panics(text in prop_oneof![
        any::<String>(),
        "(step|time|checkpoint|x) ?= ?(-?[0-9]{1,22}(\\.[0-9]{1,3})?|\"[a-z/.]{0,8}\"|nan|inf|true|\\[\\])\n{0,2}",
        "step = [0-9]{1,21}\ntime = [0-9.e+\\-]{1,8}\n(checkpoint = \"[^\"\\\\]{0,8}\"\n)?",
    ]) {
        let f = scratch().join("status");
        std::fs::write(&f, &text).unwrap();
        let _ = Status::read(&f);
    }
}

proptest! {
    // Round trips: a tenth of them (well-formed inputs, where the panics are not).
    #![proptest_config(config(10))]
    #[test]
    fn set_values_round_trip(key in "[a-z]{1,6}(\\.[a-z]{1,6}){0,2}", i in any::<i64>(), x in any::<f64>().prop_filter("finite", |x| x.is_finite()), s in any::<String>(), b in any::<bool>()) {
        let mut c = Config::default();
        c.set(&format!("{key}={i}")).unwrap();
        prop_assert_eq!(c.require::<i64>(&key).unwrap(), i);
        c.set(&format!("{key} = {x:?}")).unwrap();
        prop_assert_eq!(c.require::<f64>(&key).unwrap().to_bits(), x.to_bits());
        c.set(&format!("{key}={b}")).unwrap();
        prop_assert_eq!(c.require::<bool>(&key).unwrap(), b);
        // A quoted TOML string is that string, whatever it holds.
        c.set(&format!("{key}={}", toml::Value::String(s.clone()))).unwrap();
        prop_assert_eq!(c.require::<String>(&key).unwrap(), s);
    }

    #[test]
    fn inputs_file_round_trip(entries in proptest::collection::btree_map("[a-z]{1,6}", (any::<i64>(), any::<f64>().prop_filter("finite", |x| x.is_finite()), ".{0,12}"), 0..6)) {
        let mut table = toml::Table::new();
        for (k, (i, x, s)) in &entries {
            let mut sub = toml::Table::new();
            sub.insert("i".into(), toml::Value::Integer(*i));
            sub.insert("x".into(), toml::Value::Float(*x));
            sub.insert("s".into(), toml::Value::String(s.clone()));
            table.insert(k.clone(), toml::Value::Table(sub));
        }
        let c = Config::from_toml(&toml::to_string(&table).unwrap(), "inputs.toml").unwrap();
        for (k, (i, x, s)) in &entries {
            prop_assert_eq!(c.require::<i64>(&format!("{k}.i")).unwrap(), *i);
            prop_assert_eq!(c.require::<f64>(&format!("{k}.x")).unwrap().to_bits(), x.to_bits());
            prop_assert_eq!(&c.require::<String>(&format!("{k}.s")).unwrap(), s);
        }
        prop_assert!(c.finish().is_ok());
    }

    #[test]
    fn status_file_round_trip(step in any::<u64>(), time in any::<f64>().prop_filter("finite", |x| x.is_finite()), ck in proptest::option::of("[a-zA-Z0-9/._ -]{1,30}")) {
        let f = scratch().join("status");
        let s = Status { step, time, checkpoint: ck.map(PathBuf::from) };
        s.write(&f).unwrap();
        prop_assert_eq!(Status::read(&f).unwrap(), s);
    }
}

/// A scratch folder of this test thread (the properties run in parallel), under target/.
fn scratch() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-status-{:?}", std::thread::current().id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
