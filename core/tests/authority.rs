//! `:authority` is never validated (kms-protocol spec §1.3): every form kube-apiserver's
//! grpc-go clients send must reach the service. This is why the product exists.

mod transport_support;
use transport_support::*;

fn status_with_authority(authority: Option<&str>) -> (ClientResponse, Vec<String>) {
    let mut p = pair();
    let mut o = opts();
    o.authority = authority.map(Into::into);
    let mut paths = Vec::new();
    let r = p
        .unary(
            "/v2.KeyManagementService/Status",
            b"\x0a\x00",
            &o,
            &mut |req: &Request| {
                paths.push(req.path.to_string());
                echo(req)
            },
        )
        .expect("response");
    (r, paths)
}

#[test]
fn absent_authority() {
    let (r, paths) = status_with_authority(None);
    assert_eq!((r.grpc_status, r.reset), (Some(0), None));
    assert_eq!(paths, ["/v2.KeyManagementService/Status"]);
}

#[test]
fn localhost_authority() {
    let (r, paths) = status_with_authority(Some("localhost"));
    assert_eq!((r.grpc_status, r.reset, paths.len()), (Some(0), None, 1));
}

#[test]
fn percent_encoded_socket_path_authority() {
    // What grpc-go >= 1.58 sends for a path socket without WithAuthority (spec §1.3).
    let (r, paths) = status_with_authority(Some("%2Ftmp%2Fkms.sock"));
    assert_eq!((r.grpc_status, r.reset, paths.len()), (Some(0), None, 1));
}

#[test]
fn raw_socket_path_authority() {
    let (r, paths) = status_with_authority(Some("/tmp/kms.sock"));
    assert_eq!((r.grpc_status, r.reset, paths.len()), (Some(0), None, 1));
}

#[test]
fn abstract_socket_authority() {
    let (r, paths) = status_with_authority(Some("@name"));
    assert_eq!((r.grpc_status, r.reset, paths.len()), (Some(0), None, 1));
}

#[test]
fn odd_authorities_also_pass() {
    for a in ["", "%", "unix:///tmp/x.sock", "[::1]:99999", "a b"] {
        let (r, _) = status_with_authority(Some(a));
        assert_eq!((r.grpc_status, r.reset), (Some(0), None), "{a:?}");
    }
}
