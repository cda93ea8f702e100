//! `:authority` is never validated (docs/protocol.md §2): every form kube-apiserver's KMS clients send
//! reaches the service. This is why the product has its own HTTP/2 server.

use kms_plugin_core::TransportConfig;
use kms_plugin_testkit::client::RequestOptions;
use kms_plugin_testkit::h2_harness::Harness;

const PATH: &str = "/v2.KeyManagementService/Status";

fn call_with_authority(authority: Option<&str>) {
    let mut h = Harness::connected(&TransportConfig::default());
    let opts = RequestOptions {
        authority: authority.map(String::from),
        ..RequestOptions::default()
    };
    let mut seen = Vec::new();
    let resp = h
        .call(PATH, b"status?", &opts, &mut |req| {
            seen.push((
                req.stream,
                req.path.to_string(),
                req.message.expose().to_vec(),
            ));
            kms_plugin_testkit::h2_harness::echo(req)
        })
        .expect("stream finished");
    assert_eq!(
        seen,
        vec![(1, PATH.to_string(), b"status?".to_vec())],
        "{authority:?}"
    );
    assert_eq!(resp.http_status, Some(200), "{authority:?}");
    assert_eq!(resp.grpc_status, Some(0), "{authority:?}");
    assert_eq!(resp.message.as_deref(), Some(&b"status?"[..]));
    assert_eq!(resp.reset, None);
    assert!(
        h.client.protocol_errors.is_empty(),
        "{:?}",
        h.client.protocol_errors
    );
    assert!(!h.conn.is_closed());
}

#[test]
fn absent_authority_reaches_the_service() {
    call_with_authority(None);
}

#[test]
fn localhost_authority_reaches_the_service() {
    call_with_authority(Some("localhost"));
}

#[test]
fn percent_encoded_socket_path_reaches_the_service() {
    // grpc-go before kube 1.32 (and every KMS v1 client) sends this; h2/tonic reset it.
    call_with_authority(Some("%2Ftmp%2Fkms.sock"));
    call_with_authority(Some("%2Fvar%2Frun%2Fkms-provider.sock"));
}

#[test]
fn raw_socket_path_reaches_the_service() {
    call_with_authority(Some("/tmp/kms.sock"));
}

#[test]
fn abstract_socket_name_reaches_the_service() {
    call_with_authority(Some("@name"));
    call_with_authority(Some("@kms-foo"));
    // Any byte outside grpc-go's allowed set is percent-encoded, even in an abstract name.
    call_with_authority(Some("@kms%2Ffoo"));
}

#[test]
fn odd_authorities_also_pass() {
    for a in [
        "",
        "unix:///var/run/kms.sock",
        "[::1]:443",
        "a b%zz",
        "\u{7f}",
    ] {
        call_with_authority(Some(a));
    }
}
