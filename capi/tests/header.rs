//! include/rankwise.h is generated from the sources by cbindgen and kept in the repository (C and
//! C++ codes build against the installed copy, with no Rust tools): it must not go stale.

use std::path::Path;

#[test]
fn committed_header_matches_the_sources() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut fresh = Vec::new();
    cbindgen::Builder::new().with_crate(dir).with_config(config).generate().expect("cbindgen cannot read capi/src").write(&mut fresh);
    let fresh = String::from_utf8(fresh).unwrap();
    let path = dir.join("include/rankwise.h");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if fresh != committed {
        if std::env::var_os("RANKWISE_BLESS").is_some() {
            std::fs::write(&path, &fresh).unwrap();
            return;
        }
        panic!("{} is stale: regenerate it with RANKWISE_BLESS=1 cargo test -p rankwise-capi --test header", path.display());
    }
    for f in ["rankwise_runtime_create", "rankwise_field_checksum", "rankwise_heat_step_2d", "rankwise_restore_run", "rankwise_stop_check"] {
        assert!(fresh.contains(&format!("int {f}(")), "{f} missing from the header");
    }
}
