//! The model half of docs/scaling.md: fit the points `comm-bench` measured and predict the heat
//! example on 1 to 1,000 nodes.
//!
//! ```text
//! scale-model --set points=FILE [--set net=ib|tcp] [--set net.latency_us=1.5] ...
//! ```
//!
//! Every series is fitted to `t = latency + size / bandwidth` by least squares on the relative
//! error (so 8-byte and 2-MiB points count alike); collectives to
//! `t = log2(P) (latency + size / bandwidth)`; heat kernels take the largest block's cells per
//! second. The prediction takes nodes like this machine (its measured heat-kernel rate with all
//! its ranks busy, its measured checkpoint cost), joined by an assumed network and writing to an
//! assumed parallel filesystem; every assumption is a `--set` key, printed with the tables.
//! No MPI: this is arithmetic on a file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{bail, Context, Result};
use rankwise::runtime::{auto_grid, Config, EXIT_BAD_INPUT};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(EXIT_BAD_INPUT);
    }
}

/// One `POINT` line of comm-bench.
struct Point {
    series: String,
    transport: String,
    np: usize,
    msgs: usize,
    /// Bytes (messages, reductions, checkpoints) or cells (heat kernels).
    size: f64,
    seconds: f64,
}

fn parse(text: &str) -> Result<Vec<Point>> {
    let mut points = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.trim().strip_prefix("POINT ") else { continue };
        let kv: BTreeMap<&str, &str> = rest.split_whitespace().filter_map(|t| t.split_once('=')).collect();
        let get = |k: &str| kv.get(k).copied().with_context(|| format!("line {}: a POINT without {k}=", i + 1));
        let num = |k: &str| -> Result<f64> {
            let v = get(k)?;
            v.parse().ok().filter(|x: &f64| x.is_finite() && *x > 0.0).with_context(|| format!("line {}: {k}={v} is not a positive number", i + 1))
        };
        points.push(Point {
            series: get("series")?.to_string(),
            transport: get("transport")?.to_string(),
            np: num("np")? as usize,
            msgs: kv.get("msgs").map_or(Ok(1.0), |_| num("msgs"))? as usize,
            size: if kv.contains_key("cells") { num("cells")? } else { num("bytes")? },
            seconds: num("seconds")?,
        });
    }
    Ok(points)
}

/// `t = latency * a + per_unit * b` for regressors `(a, b)` of each point.
#[derive(Clone, Copy, Debug)]
struct Fit {
    latency: f64,
    per_unit: f64,
}

impl Fit {
    fn at(&self, (a, b): (f64, f64)) -> f64 {
        self.latency * a + self.per_unit * b
    }
    /// Bytes (or cells) per second.
    fn rate(&self) -> f64 {
        1.0 / self.per_unit
    }
}

/// Regressors of a point-to-point cost (per message, per byte) and of a collective (log2 P of both).
fn p2p(p: &Point) -> (f64, f64) {
    (p.msgs as f64, (p.msgs as f64) * p.size)
}
fn collective(p: &Point) -> (f64, f64) {
    let l = (p.np as f64).log2();
    (l, l * p.size)
}

/// Least squares on the relative error: minimise sum(((t - fit) / t)^2), with the latency held at
/// zero when the free fit makes it negative (noise on points that bandwidth dominates).
fn fit(points: &[&Point], x: fn(&Point) -> (f64, f64)) -> Option<Fit> {
    let (mut saa, mut sab, mut sbb, mut sat, mut sbt) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for p in points {
        let (a, b) = x(p);
        let w = 1.0 / (p.seconds * p.seconds);
        saa += w * a * a;
        sab += w * a * b;
        sbb += w * b * b;
        sat += w * a * p.seconds;
        sbt += w * b * p.seconds;
    }
    let det = saa * sbb - sab * sab;
    if det <= 1e-9 * saa * sbb {
        return None;
    }
    let latency = (sat * sbb - sbt * sab) / det;
    Some(match latency >= 0.0 {
        true => Fit { latency, per_unit: (saa * sbt - sab * sat) / det },
        false => Fit { latency: 0.0, per_unit: sbt / sbb },
    })
}

/// The fitted series, keyed by (series, transport).
struct Fits {
    fits: BTreeMap<(String, String), (Fit, usize)>,
}

impl Fits {
    fn get(&self, series: &str, transport: &str) -> Result<Fit> {
        match self.fits.get(&(series.to_string(), transport.to_string())) {
            Some(&(f, _)) if f.per_unit > 0.0 => Ok(f),
            Some(_) => bail!("the {series} fit over {transport} has no positive bandwidth (the sizes differ too little): measure again"),
            None => bail!("no {series} points over {transport} with two sizes or more: the model needs them"),
        }
    }
    /// Ranks per node of a series measured with every rank busy (its largest rank count).
    fn np(&self, series: &str, transport: &str) -> usize {
        self.fits.get(&(series.to_string(), transport.to_string())).map_or(1, |f| f.1)
    }
}

/// Fit every series; print each fit and each point against it.
fn fit_all(points: &[Point], out: &mut String) -> Fits {
    let mut keys: Vec<(String, String)> = points.iter().map(|p| (p.series.clone(), p.transport.clone())).collect();
    keys.sort();
    keys.dedup();
    let mut fits = BTreeMap::new();
    for (series, transport) in keys {
        let all: Vec<&Point> = points.iter().filter(|p| p.series == series && p.transport == transport).collect();
        // Point-to-point figures from 2 ranks (one pair, cores not shared); collectives over every
        // P >= 2; the rest at the most ranks measured (a whole node busy).
        let (x, used): (fn(&Point) -> (f64, f64), Vec<&Point>) = match series.as_str() {
            "pingpong" | "exchange" => (p2p, all.iter().copied().filter(|p| p.np == 2).collect()),
            "allreduce" => (collective, all.iter().copied().filter(|p| p.np >= 2).collect()),
            _ => {
                let np = all.iter().map(|p| p.np).max().unwrap_or(1);
                let mut used: Vec<&Point> = all.iter().copied().filter(|p| p.np == np).collect();
                if series.starts_with("heat") {
                    // Per cell, no fixed cost: the largest block's rate. Smaller blocks run faster
                    // from the caches, and the predicted blocks are larger still.
                    used.sort_by(|a, b| a.size.total_cmp(&b.size));
                    used.drain(..used.len().saturating_sub(1));
                }
                (p2p, used)
            }
        };
        let f = match used[..] {
            [p] if series.starts_with("heat") => Some(Fit { latency: 0.0, per_unit: p.seconds / p.size }),
            _ => fit(&used, x),
        };
        let Some(f) = f else { continue };
        let np = used.iter().map(|p| p.np).max().unwrap_or(1);
        let rms = (used.iter().map(|p| (f.at(x(p)) / p.seconds - 1.0).powi(2)).sum::<f64>() / used.len() as f64).sqrt();
        let unit = if series.starts_with("heat") { format!("rate_Gcells_s={:.4}", f.rate() / 1e9) } else { format!("bandwidth_GBs={:.4}", f.rate() / 1e9) };
        let _ = writeln!(
            out,
            "FIT series={series} transport={transport} np={np} points={} latency_us={:.4} {unit} rms_rel_err={rms:.3}",
            used.len(),
            f.latency * 1e6
        );
        for p in &all {
            let size = if series.starts_with("heat") { "cells" } else { "bytes" };
            let _ = writeln!(
                out,
                "  np={} msgs={} {size}={} measured_us={:.3} fit_us={:.3}{}",
                p.np,
                p.msgs,
                p.size,
                p.seconds * 1e6,
                f.at(x(p)) * 1e6,
                if used.iter().any(|u| std::ptr::eq(*u, *p)) { "" } else { " (not fitted)" }
            );
        }
        fits.insert((series, transport), (f, np));
    }
    Fits { fits }
}

/// What the prediction assumes: `--set` keys with published figures as defaults.
struct Assumptions {
    dim: usize,
    weak_side: usize,
    strong_side: usize,
    net: String,
    net_latency: f64,
    net_bandwidth: f64,
    pfs_bandwidth: f64,
    mtbf_node: f64,
    nodes: Vec<usize>,
    /// A node other than this machine (what-ifs): its heat-kernel rate, its checkpoint bandwidth.
    node_rate: Option<f64>,
    node_io: Option<f64>,
    /// A run of the heat example here to check the model against: cells per side, ranks.
    check: Option<(usize, usize)>,
}

fn assumptions(cfg: &Config) -> Result<Assumptions> {
    let a = Assumptions {
        dim: cfg.get_or("dim", 3)?,
        weak_side: cfg.get_or("weak.side", 512)?,
        strong_side: cfg.get_or("strong.side", 1024)?,
        net: cfg.get_or("net", "ib".to_string())?,
        net_latency: cfg.get_or("net.latency_us", 1.5)? * 1e-6,
        net_bandwidth: cfg.get_or("net.bandwidth_GBs", 12.0)? * 1e9,
        pfs_bandwidth: cfg.get_or("pfs.bandwidth_GBs", 100.0)? * 1e9,
        mtbf_node: cfg.get_or("node.mtbf_years", 5.0)? * 365.25 * 86400.0,
        nodes: cfg.get_or("nodes", vec![1, 10, 100, 1000])?,
        node_rate: cfg.get::<f64>("node.rate_Gcells_s")?.map(|r| r * 1e9),
        node_io: cfg.get::<f64>("node.io_GBs")?.map(|r| r * 1e9),
        check: match cfg.get::<usize>("check.n")? {
            Some(n) => Some((n, cfg.get_or("check.ranks", 2)?)),
            None => None,
        },
    };
    if !(2..=3).contains(&a.dim) {
        bail!(cfg.invalid("dim", "must be 2 or 3"));
    }
    if a.weak_side < 1 || a.strong_side < 1 || a.nodes.iter().any(|&n| n == 0 || n > a.strong_side.pow(a.dim as u32)) {
        bail!("weak.side and strong.side must be positive, and nodes between 1 and strong.side^dim");
    }
    if ![a.net_latency, a.net_bandwidth, a.pfs_bandwidth, a.mtbf_node, a.node_rate.unwrap_or(1.0), a.node_io.unwrap_or(1.0)].iter().all(|x| x.is_finite() && *x > 0.0) {
        bail!("net.latency_us, net.bandwidth_GBs, pfs.bandwidth_GBs, node.mtbf_years, node.rate_Gcells_s and node.io_GBs must be positive");
    }
    if !["ib", "tcp"].contains(&a.net.as_str()) {
        bail!(cfg.invalid("net", "is ib (the assumed InfiniBand figures) or tcp (this machine's TCP over loopback)"));
    }
    Ok(a)
}

/// The costs the prediction combines, per node.
#[derive(Clone)]
struct Costs {
    /// Heat-kernel cells per second of a whole node.
    node_rate: f64,
    /// The runtime's exchange over shared memory beyond the bare ping-pong: packing, plans.
    halo_per_msg: f64,
    halo_per_byte: f64,
    /// Network: per message, per byte.
    net_latency: f64,
    net_per_byte: f64,
    /// The heat example's one all-reduce per step (32 bytes) among a node's ranks.
    node_allreduce: f64,
    write: Fit,
    read: Fit,
}

/// Bytes of the heat example's all-reduce per step (4 doubles: the stop policy's check).
const ALLREDUCE_BYTES: f64 = 32.0;

fn costs(f: &Fits, a: &Assumptions) -> Result<Costs> {
    let heat = format!("heat{}d", a.dim);
    let (pp, ex) = (f.get("pingpong", "shm")?, f.get("exchange", "shm")?);
    let (net_latency, net_per_byte) = match a.net.as_str() {
        "tcp" => {
            let t = f.get("pingpong", "tcp")?;
            (t.latency, t.per_unit)
        }
        _ => (a.net_latency, 1.0 / a.net_bandwidth),
    };
    Ok(Costs {
        node_rate: f.np(&heat, "shm") as f64 * f.get(&heat, "shm")?.rate(),
        halo_per_msg: (ex.latency - pp.latency).max(0.0),
        halo_per_byte: (ex.per_unit - pp.per_unit).max(0.0),
        net_latency,
        net_per_byte,
        node_allreduce: f.get("allreduce", "shm")?.at((1.0, ALLREDUCE_BYTES)),
        write: f.get("ckpt_write", "shm")?,
        read: f.get("ckpt_read", "shm")?,
    })
}

/// One row of a prediction table.
struct Row {
    nodes: usize,
    grid: Vec<usize>,
    block: Vec<usize>,
    compute: f64,
    halo: f64,
    allreduce: f64,
    checkpoint: f64,
    restart: f64,
    mtbf: f64,
    interval: f64,
}

impl Row {
    fn step(&self) -> f64 {
        self.compute + self.halo + self.allreduce
    }
    /// First-order fraction of machine time lost: writing checkpoints, and per failure half an
    /// interval of work plus the restart.
    fn overhead(&self) -> f64 {
        self.checkpoint / self.interval + (self.interval / 2.0 + self.restart) / self.mtbf
    }
}

/// Daly's optimum checkpoint interval (compute time between checkpoints) for checkpoint cost
/// `delta` and system MTBF `m`: Young's sqrt(2 delta m) with Daly's higher-order correction.
fn daly(delta: f64, m: f64) -> f64 {
    if delta >= 2.0 * m {
        return m;
    }
    let r = delta / (2.0 * m);
    (2.0 * delta * m).sqrt() * (1.0 + r.sqrt() / 3.0 + r / 9.0) - delta
}

/// The heat example on `nodes` nodes, each owning `block` cells of a periodic grid `grid` of nodes.
fn predict(c: &Costs, a: &Assumptions, nodes: usize, grid: Vec<usize>, block: Vec<usize>) -> Row {
    let cells: f64 = block.iter().map(|&n| n as f64).product();
    // Per dimension split over p nodes: none leave the node (p = 1), one message with both faces to
    // the one neighbour (p = 2, the runtime sends all boxes for a peer together), or two.
    let (mut msgs, mut bytes) = (0.0, 0.0);
    for k in 0..a.dim {
        let face = 8.0 * cells / block[k] as f64;
        match grid[k] {
            1 => {}
            2 => (msgs, bytes) = (msgs + 1.0, bytes + 2.0 * face),
            _ => (msgs, bytes) = (msgs + 2.0, bytes + 2.0 * face),
        }
    }
    let halo = msgs * (c.net_latency + c.halo_per_msg) + bytes * (c.net_per_byte + c.halo_per_byte);
    let hops = (nodes as f64).log2().ceil();
    let allreduce = c.node_allreduce + hops * (c.net_latency + ALLREDUCE_BYTES * c.net_per_byte);
    // The node's share of the checkpoint (one f64 field), at its own measured rate and link at
    // most, and all nodes together at the filesystem's rate at most.
    let state = 8.0 * cells * nodes as f64;
    let io = |f: Fit| f.latency + state / (nodes as f64 * f.rate().min(1.0 / c.net_per_byte)).min(a.pfs_bandwidth);
    let (checkpoint, mtbf) = (io(c.write), a.mtbf_node / nodes as f64);
    Row {
        nodes,
        grid,
        block,
        compute: cells / c.node_rate,
        halo,
        allreduce,
        checkpoint,
        restart: io(c.read),
        mtbf,
        interval: daly(checkpoint, mtbf),
    }
}

fn table(rows: &[Row], out: &mut String) {
    out.push_str("| nodes | node grid | cells per node | compute | halo | allreduce | step | halo % | checkpoint | restart | system MTBF | Daly interval | steps between checkpoints | overhead % |\n");
    out.push_str("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let join = |v: &[usize]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("x");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {:.0} | {:.2} |",
            r.nodes,
            join(&r.grid),
            join(&r.block),
            time(r.compute),
            time(r.halo),
            time(r.allreduce),
            time(r.step()),
            100.0 * r.halo / r.step(),
            time(r.checkpoint),
            time(r.restart),
            time(r.mtbf),
            time(r.interval),
            r.interval / r.step(),
            100.0 * r.overhead()
        );
    }
}

/// Seconds in the unit a reader wants.
fn time(s: f64) -> String {
    match s {
        s if s < 1e-3 => format!("{:.1} µs", s * 1e6),
        s if s < 1.0 => format!("{:.2} ms", s * 1e3),
        s if s < 120.0 => format!("{s:.2} s"),
        s if s < 7200.0 => format!("{:.1} min", s / 60.0),
        s if s < 3.0 * 86400.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} d", s / 86400.0),
    }
}

fn run() -> Result<()> {
    let cfg = Config::from_args(std::env::args().skip(1))?;
    let file: String = cfg.require("points")?;
    let a = assumptions(&cfg)?;
    cfg.finish()?;
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read the points file {file}"))?;
    let points = parse(&text).with_context(|| file.clone())?;
    if points.is_empty() {
        bail!("{file} has no POINT lines (comm-bench's output)");
    }
    let mut out = String::from("# Fits: t = latency + size / bandwidth (allreduce: log2(P) times both)\n");
    let fits = fit_all(&points, &mut out);
    // The fits, even if the model below cannot use them.
    print!("{out}");
    out.clear();
    let mut c = costs(&fits, &a)?;
    let periodic = vec![true; a.dim];
    let mut check = String::new();
    if let Some((n, ranks)) = a.check {
        // The heat example on `ranks` ranks of this machine: each rank a "node" at its share of the
        // node's rate, shared memory for the network.
        let pp = fits.get("pingpong", "shm")?;
        let here = Costs { node_rate: c.node_rate / fits.np(&format!("heat{}d", a.dim), "shm") as f64, net_latency: pp.latency, net_per_byte: pp.per_unit, node_allreduce: 0.0, ..c.clone() };
        let grid = auto_grid(&vec![n; a.dim], &periodic, ranks)?;
        let block = grid.iter().map(|&p| n.div_ceil(p)).collect();
        let r = predict(&here, &a, ranks, grid, block);
        let _ = writeln!(
            check,
            "\n# Check against a run here (compare with the heat example's step timer, per step)\nCHECK heat dim={} n={n} ranks={ranks} step_ms={:.3} compute_ms={:.3} halo_ms={:.3} allreduce_ms={:.4}",
            a.dim,
            r.step() * 1e3,
            r.compute * 1e3,
            r.halo * 1e3,
            r.allreduce * 1e3
        );
    }


    let _ = writeln!(out, "\n# Model inputs");
    let _ = writeln!(
        out,
        "MEASURED node_rate_Gcells_s={:.4} (heat{}d, {} ranks) halo_overhead_us_per_msg={:.3} halo_overhead_GBs={:.3} node_allreduce_us={:.3} ckpt_write_latency_s={:.4} ckpt_write_GBs={:.3} ckpt_read_latency_s={:.4} ckpt_read_GBs={:.3}",
        c.node_rate / 1e9,
        a.dim,
        fits.np(&format!("heat{}d", a.dim), "shm"),
        c.halo_per_msg * 1e6,
        1.0 / c.halo_per_byte / 1e9,
        c.node_allreduce * 1e6,
        c.write.latency,
        c.write.rate() / 1e9,
        c.read.latency,
        c.read.rate() / 1e9
    );
    // What-ifs for nodes unlike this one replace what was measured.
    let mut instead = String::new();
    if let Some(r) = a.node_rate {
        c.node_rate = r;
        let _ = write!(instead, " node.rate_Gcells_s={}", r / 1e9);
    }
    if let Some(b) = a.node_io {
        (c.write.per_unit, c.read.per_unit) = (1.0 / b, 1.0 / b);
        let _ = write!(instead, " node.io_GBs={}", b / 1e9);
    }
    let _ = writeln!(
        out,
        "ASSUMED net={} net_latency_us={:.3} net_bandwidth_GBs={:.3}{} pfs_bandwidth_GBs={} node_mtbf_years={} dim={} weak.side={} strong.side={}{instead}",
        a.net,
        c.net_latency * 1e6,
        1.0 / c.net_per_byte / 1e9,
        if a.net == "tcp" { " (measured: TCP over loopback)" } else { "" },
        a.pfs_bandwidth / 1e9,
        a.mtbf_node / (365.25 * 86400.0),
        a.dim,
        a.weak_side,
        a.strong_side
    );

    let mut weak = Vec::new();
    let mut strong = Vec::new();
    for &n in &a.nodes {
        let grid = auto_grid(&vec![a.weak_side * n; a.dim], &periodic, n)?;
        weak.push(predict(&c, &a, n, grid, vec![a.weak_side; a.dim]));
        let grid = auto_grid(&vec![a.strong_side; a.dim], &periodic, n)?;
        // The largest block sets the pace.
        let block = grid.iter().map(|&p| a.strong_side.div_ceil(p)).collect();
        strong.push(predict(&c, &a, n, grid, block));
    }
    let side = |s: usize| vec![s.to_string(); a.dim].join("x");
    let _ = writeln!(out, "\n# Predicted: weak scaling, {} cells per node", side(a.weak_side));
    table(&weak, &mut out);
    let _ = writeln!(out, "\n# Predicted: strong scaling, {} cells in all", side(a.strong_side));
    table(&strong, &mut out);
    print!("{out}{check}");
    Ok(())
}
