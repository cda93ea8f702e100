//! A client that stops reading stalls only itself: socket writes happen outside the plugin
//! lock, so other connections keep being served while its socket buffer is full.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::Write;
use std::os::unix::net::UnixStream;

use kms_plugin_core::h2::frame::{self, FrameKind, PREFACE, flags};
use kms_plugin_core::h2::settings::{id, write_settings};
use kms_plugin_core::hpack::Encoder;
use support::{Plugin, TempDir, init_keys, run};

#[test]
fn a_client_that_never_reads_does_not_stall_others() {
    let dir = TempDir::new("slow");
    let key_file = init_keys(&dir);
    let sock = dir.join("kms.sock");
    let listen = format!("unix://{}", sock.display());
    let _plugin = Plugin::start(&[
        "--listen",
        &listen,
        "--key-file",
        key_file.to_str().unwrap(),
    ]);

    // Client A: opens every window, sends 30,000 Status calls and never reads the answers.
    let mut bytes = PREFACE.to_vec();
    write_settings(&mut bytes, &[(id::INITIAL_WINDOW_SIZE, 0x7fff_ffff)]);
    frame::write_window_update(&mut bytes, 0, 0x7fff_ffff - 65_535);
    let mut enc = Encoder::new();
    for i in 0..30_000u32 {
        let mut block = Vec::new();
        for (n, v) in [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/v2.KeyManagementService/Status"),
            ("content-type", "application/grpc"),
        ] {
            enc.encode_field(n.as_bytes(), v.as_bytes(), false, &mut block);
        }
        frame::write_frame(
            &mut bytes,
            FrameKind::Headers,
            flags::END_HEADERS,
            2 * i + 1,
            &block,
        );
        frame::write_frame(
            &mut bytes,
            FrameKind::Data,
            flags::END_STREAM,
            2 * i + 1,
            &[0; 5],
        );
    }
    let mut slow = UnixStream::connect(&sock).unwrap();
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
        let probe = run(&["probe", "--listen", &listen, "--timeout", "2"]);
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
