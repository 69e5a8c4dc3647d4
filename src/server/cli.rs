//! Command line, spelled as CoreDNS spells it.

pub fn main() -> i32 {
    0
}
