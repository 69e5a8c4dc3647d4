//! The DNS message layer that the server and the plugins both build on (CoreDNS's `request`
//! package and `plugin/pkg/*`): the request and a plugin's outcome, wire reading and writing, the
//! fast path's query view, and reply encoding. It imports neither the server nor any plugin.

pub mod cookie;
pub mod decode;
pub mod dnssec;
pub mod reply;
pub mod request;
pub mod tsig;
pub mod view;
pub mod wire;
