//! Parsers of cgroupfs file formats; each returns the offending line on error.

pub(super) fn num(s: &str, line: &str) -> Result<u64, String> {
    s.parse::<u64>().map_err(|_| line.to_owned())
}

pub(super) fn single_u64(t: &str) -> Result<u64, String> {
    num(t.trim(), t.trim())
}

/// "max" or a number (v2 memory.max).
pub(super) fn max_or_u64(t: &str) -> Result<Option<u64>, String> {
    match t.trim() {
        "max" => Ok(None),
        v => num(v, v).map(Some),
    }
}

/// v2 cpu.max: "$MAX $PERIOD", $MAX being "max" when unlimited.
pub(super) fn cpu_max(t: &str) -> Result<Option<f64>, String> {
    let line = t.trim();
    let mut it = line.split_whitespace();
    match (it.next(), it.next()) {
        (Some("max"), _) => Ok(None),
        (Some(q), Some(p)) => {
            let (q, p) = (num(q, line)?, num(p, line)?);
            if p == 0 {
                return Err(line.to_owned());
            }
            Ok(Some(q as f64 / p as f64))
        }
        _ => Err(line.to_owned()),
    }
}

/// Parser for "key value" lines giving the values of `keys`, 0 for absent ones.
/// Other keys (kernels add them) are skipped without looking at their values.
pub(super) fn flat<const N: usize>(
    keys: [&str; N],
) -> impl FnOnce(&str) -> Result<[u64; N], String> {
    move |t| {
        let mut out = [0; N];
        for line in t.lines() {
            let mut it = line.split_whitespace();
            let Some(key) = it.next() else { continue };
            if let Some(i) = keys.iter().position(|k| *k == key) {
                out[i] = num(it.next().unwrap_or(""), line)?;
            }
        }
        Ok(out)
    }
}

/// v2 io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N ..." per device.
pub(super) fn io_stat_v2(t: &str) -> Result<(u64, u64), String> {
    let (mut rd, mut wr) = (0u64, 0u64);
    for line in t.lines() {
        for kv in line.split_whitespace().skip(1) {
            match kv.split_once('=') {
                Some(("rbytes", v)) => rd = rd.saturating_add(num(v, line)?),
                Some(("wbytes", v)) => wr = wr.saturating_add(num(v, line)?),
                _ => {}
            }
        }
    }
    Ok((rd, wr))
}

/// v1 blkio: "MAJ:MIN Op N" rows plus a final "Total N"; sums the Read and Write rows.
pub(super) fn blkio_v1(t: &str) -> Result<(u64, u64), String> {
    let (mut rd, mut wr) = (0u64, 0u64);
    for line in t.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            [_, "Read", v] => rd = rd.saturating_add(num(v, line)?),
            [_, "Write", v] => wr = wr.saturating_add(num(v, line)?),
            _ => {}
        }
    }
    Ok((rd, wr))
}
