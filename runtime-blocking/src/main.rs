//! The `kms-plugin` binary: a Kubernetes KMS v2/v1 plugin on a Unix socket.

fn main() {
    std::process::exit(kms_plugin_blocking::cli::main(std::env::args_os()));
}
