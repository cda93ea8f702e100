//! Generates prost messages and tonic server stubs for the KMS v1beta1 and v2 services of the
//! tonic reference server from the workspace's verbatim protos in `../proto/proto/` (pure Rust:
//! protox instead of protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = "../proto/proto";
    let protos = ["v2/api.proto", "v1beta1/api.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={root}/{p}");
    }
    let fds = protox::compile(protos, [root])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
