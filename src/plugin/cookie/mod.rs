//! `cookie` (exdns; CoreDNS has no cookie support and echoes a client's COOKIE option back
//! unchanged): how a server block answers DNS Cookies (RFC 7873) with interoperable server
//! cookies (RFC 9018).
//!
//! ```text
//! cookie [off]
//! cookie {
//!     secret HEX
//!     staging_secret HEX...
//!     secret_file FILE
//! }
//! ```
//!
//! Without the directive a block answers cookies with a random secret of the process's own and
//! never answers BADCOOKIE. With a `secret` (32 hex digits, shared by every replica) a bad server
//! cookie over UDP gets BADCOOKIE. `staging_secret`s verify but never create cookies (a secret
//! being rolled in or out on other replicas); `secret_file` reads one secret per line, the first
//! active, the rest staging (NSD's cookie-secret-file). `cookie off` ignores the option.
//! The directive adds no handler: the server judges the option and writes the reply's cookie
//! on every transport and on the fast path (`crate::dns::cookie`).

mod setup;

pub use setup::setup;
