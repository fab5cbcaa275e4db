//! Slurm's compressed lists: host lists (`node[01-03,7],login1`) and task counts (`2(x3),1`).

use crate::{Error, Result};

/// More hosts or tasks than any cluster has: a list that expands beyond this is an error rather
/// than an allocation without bound (`n[0-99999999999]`, `1(x99999999999)`).
pub const MAX_EXPANDED: usize = 1 << 20;

/// Expand a compressed host list such as `node[01-03,7],gpu-a[1-2]b` into one name per host.
/// Zero padding is kept (`[08-10]` gives `08 09 10`); several bracket groups in one name give
/// every combination, as Slurm does.
pub fn expand_hostlist(list: &str) -> Result<Vec<String>> {
    let bad = |why: &str| Error::Hostlist { list: list.to_string(), why: why.to_string() };
    let mut hosts = Vec::new();
    for item in split_top_level(list).map_err(bad)? {
        let mut names = vec![String::new()];
        let mut rest = item;
        while let Some(open) = rest.find('[') {
            let close = rest[open..].find(']').ok_or_else(|| bad("unclosed `[`"))? + open;
            let suffixes = expand_ranges(&rest[open + 1..close]).map_err(|w| bad(&w))?;
            if names.len().saturating_mul(suffixes.len()) > MAX_EXPANDED.saturating_sub(hosts.len()) {
                return Err(bad(&format!("more than {MAX_EXPANDED} hosts")));
            }
            let prefix = &rest[..open];
            names = names
                .iter()
                .flat_map(|n| suffixes.iter().map(move |s| format!("{n}{prefix}{s}")))
                .collect();
            rest = &rest[close + 1..];
        }
        if rest.contains(']') {
            return Err(bad("unmatched `]`"));
        }
        hosts.extend(names.into_iter().map(|n| n + rest));
    }
    Ok(hosts)
}

/// Split at commas that are not inside brackets.
fn split_top_level(list: &str) -> std::result::Result<Vec<&str>, &'static str> {
    let (mut depth, mut start, mut out) = (0i32, 0, Vec::new());
    for (i, c) in list.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err("nested or unmatched brackets");
        }
    }
    out.push(&list[start..]);
    if out.iter().any(|s| s.trim().is_empty()) {
        return Err("empty host name");
    }
    Ok(out.into_iter().map(str::trim).collect())
}

/// `01-03,7` -> `01 02 03 7`.
fn expand_ranges(ranges: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    for r in ranges.split(',') {
        let (lo, hi) = r.split_once('-').unwrap_or((r, r));
        let parse = |s: &str| s.parse::<u64>().map_err(|_| format!("`{r}` is not a number or a range"));
        let (a, b) = (parse(lo)?, parse(hi)?);
        if a > b {
            return Err(format!("range `{r}` runs backwards"));
        }
        if b - a >= (MAX_EXPANDED - out.len().min(MAX_EXPANDED)) as u64 {
            return Err(format!("more than {MAX_EXPANDED} hosts"));
        }
        let width = lo.len();
        out.extend((a..=b).map(|n| format!("{n:0width$}")));
    }
    Ok(out)
}

/// Expand `SLURM_TASKS_PER_NODE` (`2(x3),1`) into one count per node.
pub fn expand_counts(list: &str) -> Result<Vec<usize>> {
    let bad = || Error::Hostlist { list: list.to_string(), why: "expected counts like `2(x3),1`".into() };
    let mut out = Vec::new();
    for item in list.split(',') {
        let (count, times) = match item.split_once("(x") {
            Some((c, t)) => (c, t.strip_suffix(')').ok_or_else(bad)?),
            None => (item, "1"),
        };
        let count: usize = count.trim().parse().map_err(|_| bad())?;
        let times: usize = times.parse().map_err(|_| bad())?;
        if times > MAX_EXPANDED - out.len().min(MAX_EXPANDED) {
            return Err(Error::Hostlist { list: list.to_string(), why: format!("more than {MAX_EXPANDED} counts") });
        }
        out.extend(std::iter::repeat_n(count, times));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostlists() {
        let e = |s| expand_hostlist(s).unwrap();
        assert_eq!(e("node1"), ["node1"]);
        assert_eq!(e("node[01-03,7]"), ["node01", "node02", "node03", "node7"]);
        assert_eq!(e("a[8-10],b,c[1-2]x"), ["a8", "a9", "a10", "b", "c1x", "c2x"]);
        assert_eq!(e("n[08-10]"), ["n08", "n09", "n10"]);
        assert_eq!(e("r[1-2]n[1-2]"), ["r1n1", "r1n2", "r2n1", "r2n2"]);
        for bad in ["n[1-", "n[3-1]", "n[a]", "n]", "a,,b", "n[[1]]", "n[0-99999999999]", "n[0-1023]x[0-1024]"] {
            assert!(expand_hostlist(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn task_counts() {
        assert_eq!(expand_counts("4").unwrap(), [4]);
        assert_eq!(expand_counts("2(x3),1").unwrap(), [2, 2, 2, 1]);
        assert!(expand_counts("2(x3").is_err());
        assert!(expand_counts("x").is_err());
        assert!(expand_counts("1(x99999999999)").is_err());
    }
}
