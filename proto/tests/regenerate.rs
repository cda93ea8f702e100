//! Regenerates the prost code from `proto/**/api.proto` and fails if the committed code in
//! `src/generated/` drifted. Refresh with `KMS_PROTO_BLESS=1 cargo test -p kms-plugin-proto
//! --test regenerate`.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::{Path, PathBuf};

fn generate(out: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = [
        root.join("proto/v1beta1/api.proto"),
        root.join("proto/v2/api.proto"),
    ];
    let fds = protox::compile(&files, [root.join("proto")]).expect("protox compiles the protos");
    let mut config = prost_build::Config::new();
    config
        .out_dir(out)
        .bytes(["."])
        .btree_map(["."])
        .disable_comments(["."]);
    config.compile_fds(fds).expect("prost-build renders");
}

#[test]
fn committed_code_matches_the_protos() {
    let tmp = std::env::temp_dir().join(format!("kms-proto-regen-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    generate(&tmp);
    let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/generated");
    let bless = std::env::var_os("KMS_PROTO_BLESS").is_some();
    for name in ["v1beta1.rs", "v2.rs"] {
        let fresh = std::fs::read_to_string(tmp.join(name)).unwrap();
        let path = committed.join(name);
        if bless {
            std::fs::write(&path, &fresh).unwrap();
            continue;
        }
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            old == fresh,
            "proto/src/generated/{name} differs from what prost-build generates from \
             proto/proto/; refresh it with: KMS_PROTO_BLESS=1 cargo test -p kms-plugin-proto \
             --test regenerate"
        );
    }
    std::fs::remove_dir_all(&tmp).ok();
}
