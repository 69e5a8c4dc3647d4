//! `bind`: listen only on the given addresses or on the addresses of the given interfaces, minus
//! the `except` ones. Several `bind` lines in a block merge.
//!
//! The directive adds no handler; its setup records [`BindSpec`]s in the block's config and the
//! server expands interface names to their addresses when it opens the listeners (so an interface
//! that appears later, like a VPN tunnel, is picked up on the next start or reload).

use crate::plugin::config::BindSpec;

mod setup;

pub use setup::setup;

/// Reads one `bind` argument: an IP address, else an interface name. Interface names follow
/// Linux's rules (1 to 15 bytes, not `.` or `..`, no `/`, `:` or whitespace).
pub fn parse_bind_spec(arg: &str) -> Result<BindSpec, String> {
    if let Ok(ip) = arg.parse::<std::net::IpAddr>() {
        return Ok(BindSpec::Addr(ip));
    }
    if valid_interface_name(arg) {
        return Ok(BindSpec::Interface(arg.to_string()));
    }
    Err(format!("not a valid IP address or interface name: {arg:?}"))
}

/// Linux's `dev_valid_name`.
fn valid_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}
