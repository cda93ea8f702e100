//! Decode -> encode -> decode round trips of the transport's codecs
//! (`kms_plugin_core::h2`, `kms_plugin_core::grpc`, `kms_plugin_core::hpack`).
//!
//! Input: `mode | rest`.
//! - mode 0: a stream of frames: every 9-byte head parses, re-encodes to the same bytes (the
//!   reserved bit cleared) and parses again equal; padding is stripped within bounds.
//! - mode 1: SETTINGS payloads: `PeerSettings::apply` accepts exactly the RFC 9113 §6.5.2
//!   values, and `write_settings` of what it kept applies to the same settings.
//! - mode 2: `grpc-timeout` values: whatever parses re-encodes (in its own unit) and parses to
//!   the same duration; the content-type check and `percent_encode` behave as documented.
//! - mode 3: arbitrary header fields through the HPACK encoder (raw or Huffman) and decoder.
#![no_main]

use kms_plugin_core::grpc::{is_grpc_content_type, parse_timeout, percent_encode};
use kms_plugin_core::h2::frame::{self, FrameHead, FrameKind, HEAD_LEN, MAX_WINDOW};
use kms_plugin_core::h2::settings::{PeerSettings, id, write_settings};
use kms_plugin_core::hpack::{Decoder, Encoder};
use libfuzzer_sys::fuzz_target;

fn frames(mut rest: &[u8]) {
    while let Some((head, tail)) = rest.split_first_chunk::<HEAD_LEN>() {
        let parsed = FrameHead::parse(head);
        assert_eq!(FrameKind::from_u8(parsed.kind.as_u8()), parsed.kind);
        assert_eq!(parsed.kind.as_u8(), head[3]);
        assert!(parsed.stream <= MAX_WINDOW);
        let mut out = Vec::new();
        parsed.write(&mut out);
        let mut expected = *head;
        expected[5] &= 0x7f; // §4.1: the reserved bit is ignored and written as 0
        assert_eq!(out.as_slice(), expected.as_slice());
        let again: &[u8; HEAD_LEN] = out.as_slice().try_into().expect("9 bytes");
        assert_eq!(FrameHead::parse(again), parsed);
        let len = (parsed.len as usize).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        if let Some(content) = frame::strip_padding(payload, parsed.flags) {
            assert!(content.len() <= payload.len());
            if parsed.flags & frame::flags::PADDED != 0 {
                let pad = usize::from(payload[0]);
                assert_eq!(content.len() + pad + 1, payload.len());
                assert_eq!(content, &payload[1..1 + content.len()]);
            } else {
                assert_eq!(content, payload);
            }
        } else {
            assert!(parsed.flags & frame::flags::PADDED != 0);
            assert!(payload.is_empty() || usize::from(payload[0]) >= payload.len());
        }
        let mut rebuilt = Vec::new();
        frame::write_frame(
            &mut rebuilt,
            parsed.kind,
            parsed.flags,
            parsed.stream,
            payload,
        );
        assert_eq!(rebuilt.len(), HEAD_LEN + payload.len());
        assert_eq!(&rebuilt[HEAD_LEN..], payload);
        rest = tail;
    }
}

fn settings(payload: &[u8]) {
    let mut s = PeerSettings::default();
    let result = s.apply(payload);
    if payload.len() % 6 != 0 {
        assert!(result.is_err());
        return;
    }
    let valid = payload.chunks_exact(6).all(|e| {
        let value = u32::from_be_bytes([e[2], e[3], e[4], e[5]]);
        match u16::from_be_bytes([e[0], e[1]]) {
            id::ENABLE_PUSH => value <= 1,
            id::INITIAL_WINDOW_SIZE => value <= MAX_WINDOW,
            id::MAX_FRAME_SIZE => (16_384..=16_777_215).contains(&value),
            _ => true,
        }
    });
    assert_eq!(result.is_ok(), valid, "SETTINGS validity");
    if valid {
        let entries = [
            (id::HEADER_TABLE_SIZE, s.header_table_size),
            (id::INITIAL_WINDOW_SIZE, s.initial_window_size),
            (id::MAX_FRAME_SIZE, s.max_frame_size),
            (id::MAX_HEADER_LIST_SIZE, s.max_header_list_size),
        ];
        let mut out = Vec::new();
        write_settings(&mut out, &entries);
        let mut again = PeerSettings::default();
        again.apply(&out[HEAD_LEN..]).expect("our SETTINGS apply");
        assert_eq!(again, s);
    }
}

fn grpc(rest: &[u8]) {
    if let Some(d) = parse_timeout(rest) {
        let (unit, digits) = rest.split_last().expect("non-empty");
        assert!((1..=8).contains(&digits.len()));
        let n: u64 = std::str::from_utf8(digits)
            .expect("digits")
            .parse()
            .expect("number");
        let re = format!("{n}{}", char::from(*unit));
        assert_eq!(parse_timeout(re.as_bytes()), Some(d));
    }
    let ct = is_grpc_content_type(rest);
    if ct {
        assert!(rest.len() >= 16 && rest[..16].eq_ignore_ascii_case(b"application/grpc"));
    }
    let text = String::from_utf8_lossy(rest);
    let mut enc = String::new();
    percent_encode(&text, &mut enc);
    assert!(enc.bytes().all(|b| (0x20..=0x7e).contains(&b)));
    // Percent-decoding gives the original bytes back.
    let mut dec = Vec::new();
    let eb = enc.as_bytes();
    let mut i = 0;
    while i < eb.len() {
        if eb[i] == b'%' {
            let hex = std::str::from_utf8(&eb[i + 1..i + 3]).expect("ascii");
            dec.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
            i += 3;
        } else {
            dec.push(eb[i]);
            i += 1;
        }
    }
    assert_eq!(dec, text.as_bytes());
}

fn hpack(rest: &[u8]) {
    let Some((&cfg, mut rest)) = rest.split_first() else {
        return;
    };
    let mut fields = Vec::new();
    while let [nl, vl, tail @ ..] = rest {
        let nl = usize::from(*nl).min(tail.len());
        let (name, tail) = tail.split_at(nl);
        let vl = usize::from(*vl).min(tail.len());
        let (value, tail) = tail.split_at(vl);
        fields.push((
            name.to_vec(),
            value.to_vec(),
            cfg & (1 << (fields.len() % 8)) != 0,
        ));
        rest = tail;
    }
    let mut encoder = if cfg & 0x80 != 0 {
        Encoder::with_huffman()
    } else {
        Encoder::new()
    };
    if cfg & 0x40 != 0 {
        encoder.set_peer_max_table_size(0);
    }
    let mut block = Vec::new();
    for (n, v, s) in &fields {
        encoder.encode_field(n, v, *s, &mut block);
    }
    let mut decoded = Vec::new();
    Decoder::new(4096)
        .decode(&block, &mut |n, v, s| {
            decoded.push((n.to_vec(), v.to_vec(), s))
        })
        .expect("our encoding decodes");
    assert_eq!(decoded.len(), fields.len());
    for ((n1, v1, s1), (n2, v2, s2)) in fields.iter().zip(&decoded) {
        assert_eq!((n1, v1), (n2, v2));
        assert!(!s1 || *s2, "sensitive fields stay never-indexed");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => frames(rest),
        1 => settings(rest),
        2 => grpc(rest),
        _ => hpack(rest),
    }
});
