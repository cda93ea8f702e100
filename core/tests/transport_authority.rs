//! `:authority` is never validated (docs/protocol.md §2): every form kube-apiserver sends reaches the
//! service. This is why the product exists: h2/tonic reset the percent-encoded ones.

mod support;

use kms_plugin_core::Timestamp;
use kms_plugin_core::h2::frame::{FrameKind, flags};
use support::h2::{Raw, conn, frames, output};

fn served(authority: Option<&str>) -> bool {
    let mut c = conn();
    let mut raw = Raw::new();
    raw.handshake(&[])
        .unary(1, "/v2.KeyManagementService/Status", authority, b"");
    c.handle_bytes(&raw.take(), Timestamp::ZERO);
    let Some(req) = c.poll_request() else {
        return false;
    };
    assert_eq!(req.path, "/v2.KeyManagementService/Status");
    c.respond(req.stream, support::h2::echo(&req), Timestamp::ZERO);
    let out = output(&mut c);
    let fs = frames(&out);
    // Response HEADERS, DATA, trailers with END_STREAM; no RST_STREAM, no GOAWAY.
    assert!(
        fs.iter()
            .all(|f| f.head.kind != FrameKind::RstStream && f.head.kind != FrameKind::GoAway)
    );
    fs.iter().any(|f| {
        f.head.kind == FrameKind::Headers && f.head.has(flags::END_STREAM) && f.head.stream == 1
    })
}

#[test]
fn localhost_kube_132_v2() {
    assert!(served(Some("localhost")));
}

#[test]
fn percent_encoded_path_every_v1_client_and_v2_before_132() {
    assert!(served(Some("%2Ftmp%2Fkms.sock")));
    assert!(served(Some("%2Fvar%2Frun%2Fkms-provider.sock")));
}

#[test]
fn raw_path_old_grpc_go() {
    assert!(served(Some("/tmp/kms.sock")));
}

#[test]
fn abstract_socket_at_name() {
    assert!(served(Some("@kms-foo")));
    assert!(served(Some("@kms%2Ffoo")));
}

#[test]
fn absent_authority() {
    assert!(served(None));
}
