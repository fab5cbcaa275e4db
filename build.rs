//! `cfg(rankwise_mpich)` for a build against MPICH (`RANKWISE_MPI=mpich`, scripts/env.sh): the
//! tests that cannot run with MPICH here are ignored with their reason.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(rankwise_mpich)");
    println!("cargo::rerun-if-env-changed=RANKWISE_MPI");
    if std::env::var("RANKWISE_MPI").is_ok_and(|m| m == "mpich") {
        println!("cargo::rustc-cfg=rankwise_mpich");
    }
}
