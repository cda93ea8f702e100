//! HPACK encoder: golden bytes for our gRPC header blocks, and round trips of every header
//! list in the test data through our encoder and decoder.

mod hpack_support;

use hpack_support::{Field, decode_all, headers, load, story_files};
use kms_plugin_core::hpack::{Decoder, Encoder};

fn encode_block(encoder: &mut Encoder, fields: &[(&[u8], &[u8], bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(name, value, sensitive) in fields {
        encoder.encode_field(name, value, sensitive, &mut out);
    }
    out
}

/// Decodes a block on a fresh decoder, keeping the never-indexed flag.
fn decode_flagged(block: &[u8]) -> Vec<(Vec<u8>, Vec<u8>, bool)> {
    let mut fields = Vec::new();
    Decoder::default()
        .decode(block, &mut |n, v, never| {
            fields.push((n.to_vec(), v.to_vec(), never));
        })
        .expect("our own block decodes");
    fields
}

#[test]
fn grpc_response_headers_golden() {
    let fields: &[(&[u8], &[u8], bool)] = &[
        (b":status", b"200", false),
        (b"content-type", b"application/grpc", false),
    ];
    let block = encode_block(&mut Encoder::new(), fields);
    // 0x88: indexed :status 200 (static 8). 0x0f 0x10: literal without indexing, name index
    // 31 (content-type) = 15 + 16; then a raw 16-octet value.
    let mut expected = vec![0x88, 0x0f, 0x10, 0x10];
    expected.extend_from_slice(b"application/grpc");
    assert_eq!(block, expected);
    // Huffman: "application/grpc" is 11 octets (the bytes every gRPC C-core trace shows).
    let block = encode_block(&mut Encoder::with_huffman(), fields);
    let expected = hex::decode("880f108b1d75d0620d263d4c4d6564").unwrap();
    assert_eq!(block, expected);
    assert_eq!(
        decode_flagged(&block),
        [
            (b":status".to_vec(), b"200".to_vec(), false),
            (
                b"content-type".to_vec(),
                b"application/grpc".to_vec(),
                false
            ),
        ]
    );
}

#[test]
fn grpc_trailers_golden() {
    let fields: &[(&[u8], &[u8], bool)] = &[(b"grpc-status", b"0", false)];
    let block = encode_block(&mut Encoder::new(), fields);
    // 0x00: literal without indexing, new name; 0x0b "grpc-status"; 0x01 "0".
    assert_eq!(block, b"\x00\x0bgrpc-status\x010");
    // Huffman only where shorter: the name (8 < 11), not the value (1 = 1).
    let block = encode_block(&mut Encoder::with_huffman(), fields);
    assert_eq!(block, hex::decode("00889acac8b21234da8f0130").unwrap());

    let fields: &[(&[u8], &[u8], bool)] = &[
        (b"grpc-status", b"16", false),
        (b"grpc-message", b"unauthenticated%20caller", false),
    ];
    let block = encode_block(&mut Encoder::new(), fields);
    let mut expected = b"\x00\x0bgrpc-status\x0216\x00\x0cgrpc-message\x18".to_vec();
    expected.extend_from_slice(b"unauthenticated%20caller");
    assert_eq!(block, expected);
}

/// (name, value, sensitive, expected bytes).
type EncodeCase<'a> = (&'a [u8], &'a [u8], bool, &'a [u8]);

#[test]
fn static_table_choices_and_sensitive_fields() {
    let mut encoder = Encoder::new();
    let cases: &[EncodeCase<'_>] = &[
        // Exact static matches are indexed (§6.1).
        (b":method", b"POST", false, b"\x83"),
        (b":status", b"500", false, b"\x8e"),
        (b"accept-encoding", b"gzip, deflate", false, b"\x90"),
        (b"www-authenticate", b"", false, b"\xbd"),
        // Name match, other value: name index, without indexing (§6.2.2); the first of
        // several entries with that name is used.
        (b":status", b"418", false, b"\x08\x03418"),
        // Name index >= 15 needs a continuation octet: 58 (user-agent) = 15 + 43.
        (b"user-agent", b"x", false, b"\x0f\x2b\x01x"),
        // Sensitive: never indexed (§6.2.3), even when the pair is in the static table.
        (b"authorization", b"secret", true, b"\x1f\x08\x06secret"),
        (b":method", b"GET", true, b"\x12\x03GET"),
        (b"x-token", b"t", true, b"\x10\x07x-token\x01t"),
    ];
    for &(name, value, sensitive, expected) in cases {
        let mut out = Vec::new();
        encoder.encode_field(name, value, sensitive, &mut out);
        assert_eq!(out, expected, "{}", String::from_utf8_lossy(name));
        assert_eq!(
            decode_flagged(&out),
            [(name.to_vec(), value.to_vec(), sensitive)],
            "{}",
            String::from_utf8_lossy(name)
        );
    }
}

#[test]
fn long_strings_use_multi_octet_lengths() {
    let value = vec![b'v'; 300];
    let mut out = Vec::new();
    Encoder::new().encode_field(b"x", &value, false, &mut out);
    // Length 300 = 127 + 173: 0x7f, 0xad (173 - 128 = 45 | 0x80), 0x01.
    assert_eq!(&out[..5], b"\x00\x01x\x7f\xad");
    assert_eq!(out[5], 0x01);
    assert_eq!(decode_flagged(&out), [(b"x".to_vec(), value, false)]);
}

#[test]
fn peer_table_size_reduction_is_acknowledged_once() {
    let mut encoder = Encoder::new();
    // Not below 4096: nothing to signal.
    encoder.set_peer_max_table_size(4096);
    encoder.set_peer_max_table_size(65536);
    assert_eq!(
        encode_block(&mut encoder, &[(b":status", b"200", false)]),
        [0x88]
    );
    // Lowered: the next block starts with a size update to 0 (§4.2), once.
    encoder.set_peer_max_table_size(100);
    let block = encode_block(
        &mut encoder,
        &[(b":status", b"200", false), (b":status", b"204", false)],
    );
    assert_eq!(block, [0x20, 0x88, 0x89]);
    assert_eq!(
        encode_block(&mut encoder, &[(b":status", b"200", false)]),
        [0x88]
    );
    // A strict decoder that lowered its limit accepts it.
    let mut decoder = Decoder::default();
    decoder.set_max_table_size(100);
    let mut n = 0;
    decoder.decode(&block, &mut |_, _, _| n += 1).unwrap();
    assert_eq!((n, decoder.table_capacity()), (2, 0));
    // Having signalled 0, later settings need nothing more.
    encoder.set_peer_max_table_size(0);
    assert_eq!(
        encode_block(&mut encoder, &[(b":status", b"200", false)]),
        [0x88]
    );
}

/// Every header list of every story (raw-data included) survives encode -> decode, with
/// and without Huffman, on one encoder/decoder pair per story.
#[test]
fn every_test_data_header_list_round_trips() {
    let mut lists = 0;
    let mut raw_octets = 0;
    let mut huffman_octets = 0;
    for (_, path) in story_files() {
        let story = load(&path);
        for use_huffman in [false, true] {
            let mut encoder = if use_huffman {
                Encoder::with_huffman()
            } else {
                Encoder::new()
            };
            let mut decoder = Decoder::default();
            for case in story["cases"].as_array().unwrap() {
                let expected: Vec<Field> = headers(case);
                let mut block = Vec::new();
                for (name, value) in &expected {
                    encoder.encode_field(name, value, false, &mut block);
                }
                let got = decode_all(&mut decoder, &block).expect("round trip decodes");
                assert_eq!(got, expected, "{}", path.display());
                // Static table only: the decoder's dynamic table never fills.
                assert_eq!(decoder.table_len(), 0);
                if use_huffman {
                    huffman_octets += block.len();
                } else {
                    raw_octets += block.len();
                    lists += 1;
                }
            }
        }
    }
    std::eprintln!(
        "round trip: {lists} header lists, {raw_octets} octets raw, {huffman_octets} with Huffman"
    );
    // 184 story files: the 161 with wire hold 3,493 blocks, the 23 raw-data ones 499.
    assert_eq!(lists, 3992);
    assert!(huffman_octets < raw_octets);
}
