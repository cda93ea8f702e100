//! A client that stops reading stalls only itself: socket writes happen outside the plugin
//! lock, so other connections keep being served while its socket buffer is full.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::Write;
use std::os::unix::net::UnixStream;

use kms_plugin_core::h2::PREFACE;
use kms_plugin_core::h2::frame::flags;
use kms_plugin_core::h2::settings::id;
use kms_plugin_testkit::client::{
    RequestOptions, TestClient, grpc_message, raw_frame, settings_frame, window_update_frame,
};
use support::{Served, run};

#[test]
fn a_client_that_never_reads_does_not_stall_others() {
    let served = Served::serve("slow", &[]);
    let (sock, listen) = (&served.sock, &served.listen);

    // Client A: opens every window, sends 30,000 Status calls and never reads the answers.
    // The DATA frames are written by hand: the client's own flow control would hold them back
    // until A reads a WINDOW_UPDATE, which it never does.
    let mut bytes = PREFACE.to_vec();
    bytes.extend(settings_frame(&[(id::INITIAL_WINDOW_SIZE, 0x7fff_ffff)]));
    bytes.extend(window_update_frame(0, 0x7fff_ffff - 65_535));
    let mut client = TestClient::new();
    let opts = RequestOptions {
        authority: None,
        te_trailers: false,
        ..RequestOptions::default()
    };
    for _ in 0..30_000u32 {
        let stream = client.allocate_stream();
        let block = client.request_block("/v2.KeyManagementService/Status", &opts);
        bytes.extend(client.headers_frames(stream, &block, false, &opts));
        bytes.extend(raw_frame(
            0x0,
            flags::END_STREAM,
            stream,
            &grpc_message(&[]),
        ));
    }
    let mut slow = UnixStream::connect(sock).unwrap();
    let writer = {
        let mut s = slow.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = s.write_all(&bytes);
        })
    };

    // Meanwhile client B keeps being served (its probe timeout, 2 s, is well under the 5 s a
    // write to A may block once A's socket buffer is full, which happens within milliseconds:
    // A's 2.4 MB of calls produce far more answers than a socket buffer holds). Probing for
    // 1.5 s spans that stall.
    let start = std::time::Instant::now();
    let mut probes = 0;
    while start.elapsed() < std::time::Duration::from_millis(1500) {
        let probe = run(&["probe", "--listen", listen, "--timeout", "2"]);
        assert_eq!(
            probe.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&probe.stdout)
        );
        probes += 1;
    }
    assert!(probes > 1);
    let _ = slow.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    slow.flush().ok();
}
