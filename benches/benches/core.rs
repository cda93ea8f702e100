//! Core micro-benchmarks: request bytes -> response bytes through a `Plugin`, one unary gRPC
//! call per iteration on one long-lived HTTP/2 connection, the way kube-apiserver reuses its
//! channel. The client side is a fixed, pre-encoded HPACK header block (literal fields, no
//! dynamic table) with the stream id patched per call, so the numbers measure the plugin only:
//! frame parsing, HPACK decoding, gRPC framing, KMS dispatch, crypto, response encoding, and
//! draining transmit/effects/events as the loop contract requires.
//!
//! Also (`decode`): frame head parse + HPACK decode of the HEADERS frame grpc-go sends, first
//! and later request on a connection; (`service`) the KMS services alone; and (`transport`)
//! one connection alone echoing unary calls (no KMS).
//!
//! Run: `cargo bench -p kms-plugin-benches --bench core -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs, clippy::disallowed_methods)]

use core::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kms_plugin_core::effect::Effect;
use kms_plugin_core::plugin::{ConnId, Plugin};
use kms_plugin_core::{Config, Timestamp};
use kms_plugin_proto::{v1beta1, v2};
use kms_plugin_testkit::fake_remote::FakeRemote;
use prost::Message;

use kms_plugin_core::h2::frame::HEAD_LEN;
use kms_plugin_core::h2::{FrameHead, FrameKind, PREFACE};
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const WINDOW_UPDATE: u8 = 0x8;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

/// RFC 9113 §4.1 frame header + payload (the core's own frame writer).
fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    kms_plugin_core::h2::frame::write_frame(out, FrameKind::from_u8(kind), flags, stream, payload);
}

/// The header block kube-apiserver's grpc-go client sends, minus user-agent (literals, no
/// dynamic table).
fn header_block(path: &str) -> Vec<u8> {
    kms_plugin_benches::h2load::header_block(path, "3000m")
}

/// A plugin with one open connection, ready for unary calls.
struct Bench {
    plugin: Plugin,
    conn: ConnId,
    now: Timestamp,
    remote: FakeRemote,
    next_stream: u32,
    /// Response DATA bytes received since the last connection WINDOW_UPDATE we sent.
    unacked_data: u32,
    request: Vec<u8>,
    response: Vec<u8>,
}

impl Bench {
    fn new() -> Self {
        let now = Timestamp::from_millis(1);
        let plugin = Plugin::new(Config::default(), [3; 32], now).expect("valid config");
        let mut b = Self {
            plugin,
            conn: ConnId(0),
            now,
            remote: FakeRemote::new([4; 32]),
            next_stream: 1,
            unacked_data: 0,
            request: Vec::with_capacity(4096),
            response: Vec::with_capacity(4096),
        };
        b.conn = b.plugin.handle_accept(b.now);
        let mut hello = PREFACE.to_vec();
        frame(&mut hello, SETTINGS, 0, 0, &[]);
        b.feed(&hello);
        let mut ack = Vec::new();
        frame(&mut ack, SETTINGS, ACK, 0, &[]);
        b.feed(&ack);
        // Let the remote status + first wrap complete (the fake remote answers at once).
        for _ in 0..4 {
            b.now = b.now.saturating_add(Duration::from_millis(1));
            b.plugin.handle_timeout(b.now);
            b.drain();
        }
        assert!(b.plugin.status_snapshot(b.now).healthy, "plugin not ready");
        b
    }

    /// Feeds client bytes and drains everything (loop contract), answering remote effects.
    fn feed(&mut self, bytes: &[u8]) {
        self.plugin
            .handle_bytes(self.conn, bytes, self.now)
            .expect("open connection");
        self.drain();
    }

    fn drain(&mut self) {
        loop {
            self.response.clear();
            let mut progressed = false;
            while self.plugin.poll_transmit(&mut self.response).is_some() {
                progressed = true;
            }
            self.count_data();
            while let Some(effect) = self.plugin.poll_effect() {
                progressed = true;
                if let Effect::Remote { id, op, .. } = effect {
                    let result = self.remote.answer(&op).expect("fake remote replies");
                    self.plugin
                        .handle_remote(id, result, self.now)
                        .expect("valid reply");
                }
            }
            while self.plugin.poll_event().is_some() {}
            if !progressed {
                break;
            }
        }
    }

    /// Adds up response DATA payloads so we can return the flow-control credit.
    fn count_data(&mut self) {
        self.unacked_data += frames(&self.response)
            .filter(|(head, _)| head.kind == FrameKind::Data)
            .map(|(head, _)| head.len)
            .sum::<u32>();
    }

    /// One unary call: HEADERS + DATA(END_STREAM) (+ a connection WINDOW_UPDATE returning
    /// the credit of earlier responses). Returns the response bytes' length.
    fn call(&mut self, block: &[u8], message: &[u8]) -> usize {
        let stream = self.next_stream;
        self.next_stream += 2;
        self.request.clear();
        if self.unacked_data > 0 {
            let inc = self.unacked_data.to_be_bytes();
            frame(&mut self.request, WINDOW_UPDATE, 0, 0, &inc);
            self.unacked_data = 0;
        }
        frame(&mut self.request, HEADERS, END_HEADERS, stream, block);
        let mut payload = Vec::with_capacity(5 + message.len());
        payload.push(0);
        payload.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
        payload.extend_from_slice(message);
        frame(&mut self.request, DATA, END_STREAM, stream, &payload);
        let req = core::mem::take(&mut self.request);
        self.now = self.now.saturating_add(Duration::from_micros(1));
        self.plugin
            .handle_bytes(self.conn, &req, self.now)
            .expect("open connection");
        self.request = req;
        self.response.clear();
        while self.plugin.poll_transmit(&mut self.response).is_some() {}
        while self.plugin.poll_effect().is_some() {}
        while self.plugin.poll_event().is_some() {}
        self.count_data();
        self.response.len()
    }

    /// The gRPC message of the last response (first DATA frame, without the 5-byte prefix).
    fn last_message(&self) -> Vec<u8> {
        frames(&self.response)
            .find(|(head, payload)| head.kind == FrameKind::Data && payload.len() >= 5)
            .map(|(_, payload)| payload[5..].to_vec())
            .expect("a DATA frame in the response")
    }
}

/// The whole frames in `bytes`, parsed with the core's frame head parser.
fn frames(mut bytes: &[u8]) -> impl Iterator<Item = (FrameHead, &[u8])> {
    core::iter::from_fn(move || {
        let head = FrameHead::parse(bytes.first_chunk::<HEAD_LEN>()?);
        let payload = bytes.get(HEAD_LEN..HEAD_LEN + head.len as usize)?;
        bytes = &bytes[HEAD_LEN + payload.len()..];
        Some((head, payload))
    })
}

/// A plugin bench: warms up with one call (checked by `check`), then times `call`.
fn bench_plugin(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    path: &str,
    message: impl Fn(&mut Bench) -> Vec<u8>,
    check: impl Fn(&[u8]),
) {
    let block = header_block(path);
    // Throughput: the request's bytes on the wire (frame headers + header block + message).
    let probe_len = {
        let mut b = Bench::new();
        let msg = message(&mut b);
        b.call(&block, &msg);
        check(&b.last_message());
        9 + block.len() + 9 + 5 + msg.len()
    };
    group.throughput(Throughput::Bytes(probe_len as u64));
    group.bench_function(name, |bencher| {
        let mut b = Bench::new();
        let msg = message(&mut b);
        b.call(&block, &msg);
        check(&b.last_message());
        bencher.iter(|| b.call(&block, &msg));
    });
}

fn bench_core(c: &mut Criterion) {
    let mut group = c.benchmark_group("plugin");
    bench_plugin(
        &mut group,
        "v2_status",
        "/v2.KeyManagementService/Status",
        |_| v2::StatusRequest {}.encode_to_vec(),
        |m| assert_eq!(v2::StatusResponse::decode(m).expect("status").healthz, "ok"),
    );
    bench_plugin(
        &mut group,
        "v2_decrypt_cached_kek",
        "/v2.KeyManagementService/Decrypt",
        |b| {
            // Encrypt once through the plugin; the KEK is then local (current or cached).
            let enc_block = header_block("/v2.KeyManagementService/Encrypt");
            let enc_msg = v2::EncryptRequest {
                plaintext: Bytes::from_static(&[0x5a; 32]),
                uid: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
            }
            .encode_to_vec();
            b.call(&enc_block, &enc_msg);
            let enc = v2::EncryptResponse::decode(&b.last_message()[..]).expect("encrypt");
            v2::DecryptRequest {
                ciphertext: enc.ciphertext,
                uid: "7c9e6679-7425-40de-944b-e07fc1f90ae7".into(),
                key_id: enc.key_id,
                annotations: enc.annotations,
            }
            .encode_to_vec()
        },
        |m| {
            let dec = v2::DecryptResponse::decode(m).expect("decrypt");
            assert_eq!(&dec.plaintext[..], &[0x5a; 32]);
        },
    );
    bench_plugin(
        &mut group,
        "v1_encrypt",
        "/v1beta1.KeyManagementService/Encrypt",
        |_| {
            v1beta1::EncryptRequest {
                version: "v1beta1".into(),
                plain: Bytes::from_static(&[0xa5; 32]),
            }
            .encode_to_vec()
        },
        |m| {
            assert!(
                !v1beta1::EncryptResponse::decode(m)
                    .expect("v1")
                    .cipher
                    .is_empty()
            );
        },
    );
    group.finish();
}

/// The KMS services alone (decoded request in, encoded response out), to separate the
/// transport's share of the plugin numbers.
fn bench_service(c: &mut Criterion) {
    use kms_plugin_core::rpc::Request;
    use kms_plugin_core::secret::SecretBytes;
    use kms_plugin_testkit::KmsService;

    fn ready_service() -> (KmsService, FakeRemote, Timestamp) {
        let now = Timestamp::from_millis(1);
        let config = Config::default();
        let mut svc = KmsService::new(&config.kms, [5; 32], now);
        let mut remote = FakeRemote::new([4; 32]);
        for _ in 0..4 {
            while let Some(effect) = svc.poll_effect() {
                if let Effect::Remote { id, op, .. } = effect {
                    let result = remote.answer(&op).expect("fake remote replies");
                    svc.handle_remote(id, result, now).expect("valid reply");
                }
            }
        }
        while svc.poll_event().is_some() {}
        (svc, remote, now)
    }
    fn one(svc: &mut KmsService, path: &'static str, message: &[u8], now: Timestamp) -> usize {
        let req = Request {
            stream: 1,
            path: path.into(),
            message: SecretBytes::copy_from(message),
            deadline: None,
            received: now,
        };
        svc.handle_request(ConnId(0), req, now);
        let answer = svc.poll_answer().expect("answered at once");
        while svc.poll_event().is_some() {}
        answer.response.body.map_or(0, |b| b.len())
    }

    let mut group = c.benchmark_group("service");
    let status = v2::StatusRequest {}.encode_to_vec();
    group.throughput(Throughput::Bytes(status.len().max(1) as u64));
    group.bench_function("v2_status", |bencher| {
        let (mut svc, _remote, now) = ready_service();
        bencher.iter(|| one(&mut svc, "/v2.KeyManagementService/Status", &status, now));
    });
    let enc_req = v2::EncryptRequest {
        plaintext: Bytes::from_static(&[0x5a; 32]),
        uid: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
    }
    .encode_to_vec();
    group.throughput(Throughput::Bytes(enc_req.len() as u64));
    group.bench_function("v2_decrypt_cached_kek", |bencher| {
        let (mut svc, _remote, now) = ready_service();
        let req = Request {
            stream: 1,
            path: "/v2.KeyManagementService/Encrypt".into(),
            message: SecretBytes::copy_from(&enc_req),
            deadline: None,
            received: now,
        };
        svc.handle_request(ConnId(0), req, now);
        let body = svc
            .poll_answer()
            .expect("encrypted")
            .response
            .body
            .expect("ok");
        let enc = v2::EncryptResponse::decode(body.expose()).expect("encrypt response");
        let dec = v2::DecryptRequest {
            ciphertext: enc.ciphertext,
            uid: "7c9e6679-7425-40de-944b-e07fc1f90ae7".into(),
            key_id: enc.key_id,
            annotations: enc.annotations,
        }
        .encode_to_vec();
        assert!(one(&mut svc, "/v2.KeyManagementService/Decrypt", &dec, now) > 32);
        bencher.iter(|| one(&mut svc, "/v2.KeyManagementService/Decrypt", &dec, now));
    });
    let v1_req = v1beta1::EncryptRequest {
        version: "v1beta1".into(),
        plain: Bytes::from_static(&[0xa5; 32]),
    }
    .encode_to_vec();
    group.throughput(Throughput::Bytes(v1_req.len() as u64));
    group.bench_function("v1_encrypt", |bencher| {
        let (mut svc, _remote, now) = ready_service();
        bencher.iter(|| {
            one(
                &mut svc,
                "/v1beta1.KeyManagementService/Encrypt",
                &v1_req,
                now,
            )
        });
    });
    group.finish();
}

/// A string literal the way Go's `x/net/http2/hpack` writes it (RFC 7541 §5.2): Huffman when
/// strictly shorter, raw otherwise.
fn go_string(s: &str, out: &mut Vec<u8>) {
    use kms_plugin_core::hpack::{encode_integer, huffman};
    let raw = s.as_bytes();
    let coded = huffman::encoded_len(raw);
    if coded < raw.len() {
        encode_integer(coded, 7, 0x80, out);
        huffman::encode(raw, out);
    } else {
        encode_integer(raw.len(), 7, 0, out);
        out.extend_from_slice(raw);
    }
}

/// The HEADERS frame of a v2 Decrypt as grpc-go v1.68.1 sends it (docs/protocol.md §2): its
/// field order and values, and Go's HPACK encoder's choices. `first`: the first request on the
/// connection (static-table hits indexed, every other field a literal with incremental
/// indexing, §6.2.1); otherwise the next request, where all but `grpc-timeout` are dynamic
/// table hits (§6.1) and `grpc-timeout` is a literal with an indexed dynamic name.
fn grpc_go_headers_frame(first: bool) -> Vec<u8> {
    use kms_plugin_core::hpack::encode_integer;
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    if first {
        for (name_index, value) in [
            (4, "/v2.KeyManagementService/Decrypt"),
            (1, "%2Ftmp%2Fkms.sock"),
            (31, "application/grpc"),
            (58, "grpc-go/1.68.1"),
        ] {
            encode_integer(name_index, 6, 0x40, &mut block);
            go_string(value, &mut block);
        }
        for (name, value) in [("te", "trailers"), ("grpc-timeout", "2999952u")] {
            block.push(0x40);
            go_string(name, &mut block);
            go_string(value, &mut block);
        }
    } else {
        // Dynamic table after the first block, newest first: grpc-timeout 62, te 63,
        // user-agent 64, content-type 65, :authority 66, :path 67.
        for index in [67, 66, 65, 64, 63] {
            encode_integer(index, 7, 0x80, &mut block);
        }
        encode_integer(62, 6, 0x40, &mut block);
        go_string("2999961u", &mut block);
    }
    let mut out = Vec::new();
    frame(
        &mut out,
        HEADERS,
        END_HEADERS,
        if first { 1 } else { 3 },
        &block,
    );
    out
}

/// Frame head parse + HPACK decode of a real grpc-go request's HEADERS frame, as the
/// connection does it (fields handed to a sink; here counted).
fn decode_headers(decoder: &mut kms_plugin_core::hpack::decoder::Decoder, wire: &[u8]) -> usize {
    use kms_plugin_core::h2::FrameHead;
    let head = FrameHead::parse(wire[..9].try_into().expect("9-byte head"));
    let payload = &wire[9..9 + head.len as usize];
    let mut fields = 0;
    let mut bytes = 0;
    decoder
        .decode(payload, &mut |name, value, _| {
            fields += 1;
            bytes += name.len() + value.len();
        })
        .expect("valid block");
    assert_eq!(fields, 8);
    bytes
}

fn bench_decode(c: &mut Criterion) {
    use criterion::BatchSize;
    use kms_plugin_core::hpack::{DEFAULT_TABLE_SIZE, decoder::Decoder};
    let first = grpc_go_headers_frame(true);
    let next = grpc_go_headers_frame(false);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(first.len() as u64));
    group.bench_function("grpc_go_headers_first_request", |bencher| {
        bencher.iter_batched_ref(
            || Decoder::new(DEFAULT_TABLE_SIZE),
            |decoder| decode_headers(decoder, &first),
            BatchSize::SmallInput,
        );
    });
    group.throughput(Throughput::Bytes(next.len() as u64));
    group.bench_function("grpc_go_headers_next_request", |bencher| {
        bencher.iter_batched_ref(
            || {
                let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
                decode_headers(&mut decoder, &first);
                decoder
            },
            |decoder| decode_headers(decoder, &next),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// The HTTP/2 + gRPC transport alone: one unary exchange with a 100-byte message through one
/// connection (HEADERS + DATA in, HEADERS + DATA + trailers out), echoed without KMS work.
fn bench_transport(c: &mut Criterion) {
    use kms_plugin_core::TransportConfig;
    use kms_plugin_core::h2::frame::{DEFAULT_WINDOW, MAX_WINDOW, write_window_update};
    use kms_plugin_core::rpc::Response;
    use kms_plugin_testkit::client::grpc_message;
    use kms_plugin_testkit::h2_harness::Harness;

    let connected = || {
        let mut h = Harness::connected(&TransportConfig::default());
        // The whole connection window up front: responses never wait for credit.
        let mut grant = Vec::new();
        write_window_update(&mut grant, 0, MAX_WINDOW - DEFAULT_WINDOW);
        h.send(&grant);
        h
    };
    let headers = header_block("/echo");
    let data = grpc_message(&[0x5a; 100]);
    let mut group = c.benchmark_group("transport");
    group.bench_function("unary_echo_100b", |bencher| {
        let mut h = connected();
        let mut stream = 1u32;
        let mut input = Vec::with_capacity(256);
        let mut out = Vec::with_capacity(1 << 16);
        bencher.iter(|| {
            // 2^31 bytes of connection window last ~10^7 responses: start afresh well before.
            if stream > 4_000_001 {
                h = connected();
                stream = 1;
            }
            input.clear();
            frame(&mut input, HEADERS, END_HEADERS, stream, &headers);
            frame(&mut input, DATA, END_STREAM, stream, &data);
            stream += 2;
            h.conn.handle_bytes(&input, h.now);
            let req = h.conn.poll_request().expect("request");
            h.conn.respond(req.stream, Response::ok(req.message), h.now);
            out.clear();
            h.conn.poll_transmit(&mut out);
            while h.conn.poll_event().is_some() {}
            out.len()
        });
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_decode,
    bench_service,
    bench_core,
    bench_transport
);
criterion_main!(benches);
