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
