//! The `kms-plugin` binary: a Kubernetes KMS v2/v1 plugin on a Unix socket.

/// musl's mallocng costs ~12 % of a request's CPU; dlmalloc far less (runtime-blocking/Cargo.toml).
#[cfg(all(target_arch = "x86_64", target_env = "musl"))]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() {
    std::process::exit(kms_plugin_blocking::cli::main(std::env::args_os()));
}
