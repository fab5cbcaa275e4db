//! env_logger with the rank on every line. Rank 0 logs at `info`, other ranks only warnings,
//! unless `RANKWISE_LOG_ALL=1`; `RUST_LOG` sets the level as usual.

use std::io::Write;

pub(crate) fn init(rank: usize, size: usize) {
    let all = std::env::var("RANKWISE_LOG_ALL").is_ok_and(|v| v != "0" && !v.is_empty());
    let default = if rank == 0 || all { "info" } else { "warn" };
    let width = (size.max(1) - 1).to_string().len();
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default));
    if rank != 0 && !all {
        // RUST_LOG applies to every rank; without RANKWISE_LOG_ALL the others stay at warn.
        builder.filter_level(log::LevelFilter::Warn);
    }
    builder
        .format(move |buf, record| {
            writeln!(buf, "[rank {rank:>width$}] {:<5} {}", record.level(), record.args())
        })
        .target(env_logger::Target::Stderr)
        .try_init()
        .ok();
}
