//! HPACK decoder conformance: the hpack-test-case stories and RFC 7541 Appendix C
//! (`core/testdata/hpack/`, see its README and PROVENANCE).

mod hpack_support;

use hpack_support::{decode_all, header_table_size, headers, load, show, story_files, testdata};
use kms_plugin_core::hpack::{DEFAULT_TABLE_SIZE, Decoder};

/// Every story with a `wire` decodes, case by case on one decoder, to exactly its header list.
#[test]
fn hpack_test_case_stories_decode_exactly() {
    let mut stories = 0;
    let mut blocks = 0;
    let mut octets = 0;
    let mut fields = 0;
    let mut size_settings = 0;
    for (dir, path) in story_files() {
        let story = load(&path);
        let cases = story["cases"].as_array().expect("cases");
        if cases.iter().all(|c| c.get("wire").is_none()) {
            assert_eq!(
                dir,
                "raw-data",
                "{}: only raw-data lacks wire",
                path.display()
            );
            continue;
        }
        stories += 1;
        // README: one decoder per story; 4096 at the start.
        let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
        for (i, case) in cases.iter().enumerate() {
            assert_eq!(case["seqno"].as_u64(), Some(i as u64), "{}", path.display());
            if let Some(size) = header_table_size(case) {
                // README step 1: the limit changes; the table waits for the size update.
                decoder.set_max_table_size(size);
                size_settings += 1;
            }
            let wire = hex::decode(case["wire"].as_str().expect("wire")).expect("hex wire");
            let expected = headers(case);
            let got = decode_all(&mut decoder, &wire).unwrap_or_else(|e| {
                panic!("{} case {i}: {e:?}", path.display());
            });
            assert!(
                got == expected,
                "{} case {i}\n got:\n{}\n expected:\n{}",
                path.display(),
                show(&got),
                show(&expected)
            );
            assert!(decoder.table_size() <= decoder.table_capacity());
            assert!(decoder.table_capacity() <= decoder.max_table_size());
            blocks += 1;
            octets += wire.len();
            fields += expected.len();
        }
    }
    std::eprintln!(
        "hpack-test-case: {stories} stories, {blocks} blocks, {octets} octets, {fields} fields, \
         {size_settings} header_table_size settings"
    );
    // README: "all 161 stories with `wire` (3,493 header blocks)". Pinning the counts makes
    // sure no file was silently skipped.
    assert_eq!((stories, blocks), (161, 3493));
}

/// RFC 7541 Appendix C.2-C.6: headers, and the dynamic table and its size after each block.
#[test]
fn rfc7541_appendix_c_decodes_exactly() {
    let doc = load(&testdata().join("rfc7541-appendix-c.json"));
    let mut stories = 0;
    let mut blocks = 0;
    for story in doc["stories"].as_array().expect("stories") {
        let id = story["id"].as_str().expect("id");
        let cases = story["cases"].as_array().expect("cases");
        // C.5/C.6: both the limit and the current size start at 256 (the description).
        let initial = cases
            .first()
            .and_then(header_table_size)
            .unwrap_or(DEFAULT_TABLE_SIZE);
        let mut decoder = Decoder::new(initial);
        for (i, case) in cases.iter().enumerate() {
            if i > 0 {
                if let Some(size) = header_table_size(case) {
                    decoder.set_max_table_size(size);
                }
            }
            let wire = hex::decode(case["wire"].as_str().expect("wire")).expect("hex");
            let got = decode_all(&mut decoder, &wire).unwrap_or_else(|e| panic!("{id}/{i}: {e:?}"));
            assert_eq!(got, headers(case), "{id} case {i}");
            let expected_table: Vec<(Vec<u8>, Vec<u8>)> = case["dynamic_table"]
                .as_array()
                .expect("dynamic_table")
                .iter()
                .map(|pair| {
                    let p = pair.as_array().expect("pair");
                    (
                        p[0].as_str().unwrap().as_bytes().to_vec(),
                        p[1].as_str().unwrap().as_bytes().to_vec(),
                    )
                })
                .collect();
            let got_table: Vec<_> = (0..decoder.table_len())
                .map(|j| {
                    let (n, v) = decoder.table_entry(j).expect("entry in range");
                    (n.to_vec(), v.to_vec())
                })
                .collect();
            assert_eq!(got_table, expected_table, "{id} case {i}: dynamic table");
            assert_eq!(decoder.table_entry(decoder.table_len()), None);
            let expected_size = case["dynamic_table_size"].as_u64().expect("size");
            assert_eq!(
                decoder.table_size() as u64,
                expected_size,
                "{id} case {i}: size"
            );
            blocks += 1;
        }
        stories += 1;
    }
    std::eprintln!("RFC 7541 Appendix C: {stories} stories, {blocks} blocks");
    assert_eq!((stories, blocks), (8, 16));
}

/// The Huffman code (RFC 7541 Appendix B) alone.
mod huffman {
    use kms_plugin_core::hpack::HpackError;
    use kms_plugin_core::hpack::huffman::*;

    #[test]
    fn code_is_canonical() {
        // Canonical Huffman: sorted by (length, symbol), each code is the previous plus one,
        // shifted left by the length increase. This pins the transcription of Appendix B.
        let mut order: Vec<usize> = (0..257).collect();
        order.sort_by_key(|&s| (CODES[s].1, s));
        let mut expected: u32 = 0;
        let mut prev_len = CODES[order[0]].1;
        for (i, &s) in order.iter().enumerate() {
            let (code, len) = CODES[s];
            if i > 0 {
                expected = (expected + 1) << (len - prev_len);
            }
            assert_eq!(code, expected, "symbol {s}");
            prev_len = len;
        }
        assert_eq!(CODES[256], (0x3fff_ffff, 30)); // EOS
    }

    #[test]
    fn rfc_examples() {
        // RFC 7541 C.4.1: "www.example.com".
        let mut out = Vec::new();
        encode(b"www.example.com", &mut out);
        assert_eq!(
            out,
            [
                0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff
            ]
        );
        let mut back = Vec::new();
        decode(&out, &mut back).unwrap();
        assert_eq!(back, b"www.example.com");
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let mut enc = Vec::new();
        encode(&all, &mut enc);
        assert_eq!(enc.len(), encoded_len(&all));
        let mut dec = Vec::new();
        decode(&enc, &mut dec).unwrap();
        assert_eq!(dec, all);
        for b in 0..=255u8 {
            let mut enc = Vec::new();
            encode(&[b; 3], &mut enc);
            let mut dec = Vec::new();
            decode(&enc, &mut dec).unwrap();
            assert_eq!(dec, vec![b; 3]);
        }
    }

    #[test]
    fn every_symbol_with_its_padding_and_with_too_much() {
        for b in 0..=255u8 {
            let mut enc = Vec::new();
            encode(&[b], &mut enc);
            let padding = enc.len() * 8 - usize::from(CODES[usize::from(b)].1);
            assert!(padding < 8);
            let mut dec = Vec::new();
            assert_eq!(decode(&enc, &mut dec), Ok(()), "{b}");
            assert_eq!(dec, [b]);
            // Eight more one-bits make the padding at least 8 bits long (§5.2).
            enc.push(0xff);
            assert_eq!(
                decode(&enc, &mut dec),
                Err(HpackError::InvalidHuffman),
                "{b}"
            );
        }
    }

    #[test]
    fn padding_and_eos_are_rejected() {
        let mut out = Vec::new();
        assert_eq!(decode(&[], &mut out), Ok(()));
        // 8 one-bits of padding alone: too long.
        assert_eq!(decode(&[0xff], &mut out), Err(HpackError::InvalidHuffman));
        // '0' (00000) + padding 111: valid; padding 000 / 110 is not all ones.
        assert_eq!(decode(&[0b0000_0111], &mut out), Ok(()));
        assert_eq!(
            decode(&[0b0000_0000], &mut out),
            Err(HpackError::InvalidHuffman)
        );
        assert_eq!(
            decode(&[0b0000_0110], &mut out),
            Err(HpackError::InvalidHuffman)
        );
        // EOS (30 ones) then 2 bits of padding.
        assert_eq!(
            decode(&[0xff; 4], &mut out),
            Err(HpackError::InvalidHuffman)
        );
        // '0' then EOS: the EOS symbol itself is an error even when followed by valid bits.
        assert_eq!(
            decode(&[0x07, 0xff, 0xff, 0xff, 0xff], &mut out),
            Err(HpackError::InvalidHuffman)
        );
    }
}

/// Integer representation (RFC 7541 §5.1, Appendix C.1).
mod integers {
    use kms_plugin_core::hpack::*;

    #[test]
    fn rfc_integer_examples() {
        // C.1.1: 10 with a 5-bit prefix; C.1.2: 1337 with a 5-bit prefix; C.1.3: 42 at 8 bits.
        for (value, prefix, bytes) in [
            (10, 5, vec![0x0a]),
            (1337, 5, vec![0x1f, 0x9a, 0x0a]),
            (42, 8, vec![0x2a]),
            (31, 5, vec![0x1f, 0x00]),
            (MAX_INTEGER, 1, vec![0x01, 0xfe, 0xff, 0xff, 0xff, 0x0f]),
        ] {
            let mut out = Vec::new();
            encode_integer(value, prefix, 0, &mut out);
            assert_eq!(out, bytes, "{value}");
            assert_eq!(decode_integer(&bytes, prefix), Ok((value, bytes.len())));
        }
        assert_eq!(decode_integer(&[0xea], 5), Ok((10, 1)));
    }
}
