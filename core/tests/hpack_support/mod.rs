//! Shared helpers for the HPACK integration tests (`mod hpack_support;` in each).
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::vec::Vec;

use serde_json::Value;

/// One header field as owned bytes.
pub type Field = (Vec<u8>, Vec<u8>);

/// `core/testdata/hpack`.
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/hpack")
}

/// Every `story_*.json` under every encoder directory, sorted, with its directory name.
pub fn story_files() -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(testdata())
        .expect("testdata/hpack is readable")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut stories: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let f = p.file_name().unwrap().to_string_lossy();
                f.starts_with("story_") && f.ends_with(".json")
            })
            .collect();
        stories.sort();
        files.extend(stories.into_iter().map(|p| (name.clone(), p)));
    }
    files
}

/// Parses a JSON file.
pub fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A case's `headers`: one-key objects, in order.
pub fn headers(case: &Value) -> Vec<Field> {
    case["headers"]
        .as_array()
        .expect("headers is an array")
        .iter()
        .map(|h| {
            let obj = h.as_object().expect("header is an object");
            assert_eq!(obj.len(), 1, "one key per header object");
            let (name, value) = obj.iter().next().unwrap();
            (
                name.as_bytes().to_vec(),
                value.as_str().expect("string value").as_bytes().to_vec(),
            )
        })
        .collect()
}

/// A case's optional, non-null `header_table_size`.
pub fn header_table_size(case: &Value) -> Option<usize> {
    case.get("header_table_size")
        .and_then(Value::as_u64)
        .map(|v| usize::try_from(v).unwrap())
}

/// Decodes one block, collecting the fields.
pub fn decode_all(
    decoder: &mut kms_plugin_core::hpack::Decoder,
    block: &[u8],
) -> Result<Vec<Field>, kms_plugin_core::hpack::HpackError> {
    let mut fields = Vec::new();
    decoder.decode(block, &mut |n, v, _| fields.push((n.to_vec(), v.to_vec())))?;
    Ok(fields)
}

/// Renders a field list for assertion messages.
pub fn show(fields: &[Field]) -> String {
    use std::fmt::Write as _;
    fields.iter().fold(String::new(), |mut out, (n, v)| {
        let _ = writeln!(
            out,
            "{}: {}",
            String::from_utf8_lossy(n),
            String::from_utf8_lossy(v)
        );
        out
    })
}
