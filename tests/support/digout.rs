//! Reading dig's text output: sections, header flags, status.

/// The records of a section of dig's output, fields joined by one space.
pub fn section(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| !l.starts_with(&format!(";; {name} SECTION:")))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The header flags dig printed (`qr aa rd`).
pub fn flags(out: &str) -> Vec<String> {
    let line = out
        .lines()
        .find(|l| l.starts_with(";; flags:"))
        .unwrap_or_else(|| panic!("no flags in {out}"));
    let flags = line
        .trim_start_matches(";; flags:")
        .split(';')
        .next()
        .unwrap();
    flags.split_whitespace().map(str::to_string).collect()
}

/// The rcode dig printed (`NOERROR`).
pub fn status(out: &str) -> &str {
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("no status in {out}"))
}
