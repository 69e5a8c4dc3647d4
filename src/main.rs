fn main() {
    std::process::exit(exdns::server::cli::main());
}
