//! Borrowed readings of the two requests on kube-apiserver's hot paths, v2 `DecryptRequest`
//! and v1 `EncryptRequest`: no allocation, no copy.
//!
//! `DecryptRequest { bytes ciphertext = 1; string uid = 2; string key_id = 3;
//! map<string, bytes> annotations = 4; }` (spec/proto/v2/api.proto); decoding it with prost
//! allocates eight times (three strings, the ciphertext, a map node, two annotation keys and
//! values). `EncryptRequest { string version = 1; bytes plain = 2; }` (v1beta1) allocates twice,
//! and the plaintext then has to be copied into a zeroizing buffer and wiped.
//!
//! [`DecryptView::parse`] and [`V1EncryptView::parse`] read the shape the apiserver produces
//! (each field once, wire type 2; map entries of exactly `key` and `value`, in either order,
//! distinct keys) straight from the message bytes, and give up ([`None`]) on anything else:
//! repeated or unknown fields, other wire types, groups, malformed varints, truncation, invalid
//! UTF-8, an entry without a key or value, a repeated key. The caller then decodes with prost,
//! which accepts or rejects those messages by the protobuf rules. So on every message they
//! accept the views hold exactly what prost would decode, and they never accept what prost
//! would reject (the tests check both against prost on generated messages).

/// The fields of a v2 `DecryptRequest`, borrowed from the message bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DecryptView<'a> {
    pub(crate) ciphertext: &'a [u8],
    pub(crate) uid: &'a str,
    pub(crate) key_id: &'a str,
    /// The annotations, in the order received; at most [`MAX_ANNOTATIONS`], keys distinct.
    annotations: [(&'a str, &'a [u8]); MAX_ANNOTATIONS],
    annotation_count: usize,
}

/// Annotations the view holds: the plugin writes two (`envelope::v2_annotations`); a request
/// with more is left to prost (and then refused by the annotation rules).
const MAX_ANNOTATIONS: usize = 2;

/// Protobuf wire type 2 (length-delimited), the only one these fields use.
const LEN: u64 = 2;

/// The fields of a v1 `EncryptRequest`, borrowed from the message bytes (the plaintext stays
/// in the transport's zeroizing request buffer).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct V1EncryptView<'a> {
    pub(crate) version: &'a str,
    pub(crate) plain: &'a [u8],
}

impl<'a> V1EncryptView<'a> {
    /// Reads `msg` if it has the apiserver's shape (module docs); `None` means "decode with
    /// prost instead", never "invalid".
    pub(crate) fn parse(msg: &'a [u8]) -> Option<Self> {
        let mut view = V1EncryptView {
            version: "",
            plain: &[],
        };
        let mut seen = [false; 2];
        let mut rest = msg;
        while !rest.is_empty() {
            let (field, value) = next_field(&mut rest)?;
            first_time(&mut seen, field)?;
            match field {
                1 => view.version = core::str::from_utf8(value).ok()?,
                _ => view.plain = value,
            }
        }
        Some(view)
    }
}

impl<'a> DecryptView<'a> {
    /// Reads `msg` if it has the apiserver's shape (module docs); `None` means "decode with
    /// prost instead", never "invalid".
    pub(crate) fn parse(msg: &'a [u8]) -> Option<Self> {
        let mut view = DecryptView {
            ciphertext: &[],
            uid: "",
            key_id: "",
            annotations: [("", &[]); MAX_ANNOTATIONS],
            annotation_count: 0,
        };
        let mut seen = [false; 3];
        let mut rest = msg;
        while !rest.is_empty() {
            let (field, value) = next_field(&mut rest)?;
            if field == 4 {
                view.push_annotation(value)?;
                continue;
            }
            first_time(&mut seen, field)?;
            match field {
                1 => view.ciphertext = value,
                2 => view.uid = core::str::from_utf8(value).ok()?,
                _ => view.key_id = core::str::from_utf8(value).ok()?,
            }
        }
        Some(view)
    }

    /// The annotations as `(key, value)` pairs.
    pub(crate) fn annotations(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.annotations.iter().take(self.annotation_count).copied()
    }

    /// Adds one map entry (`key = 1`, `value = 2`, both present, each once).
    fn push_annotation(&mut self, entry: &'a [u8]) -> Option<()> {
        let (mut key, mut value) = (None, None);
        let mut rest = entry;
        while !rest.is_empty() {
            let (field, bytes) = next_field(&mut rest)?;
            let slot = match field {
                1 => &mut key,
                2 => &mut value,
                _ => return None,
            };
            if slot.replace(bytes).is_some() {
                return None;
            }
        }
        let key = core::str::from_utf8(key?).ok()?;
        if self.annotations().any(|(k, _)| k == key) {
            return None;
        }
        let slot = self.annotations.get_mut(self.annotation_count)?;
        *slot = (key, value?);
        self.annotation_count += 1;
        Some(())
    }
}

/// Marks field number `field` (1-based) seen in `seen`; `None` if it is out of range or was
/// seen before (a repeated or unknown field: the message is left to prost).
fn first_time(seen: &mut [bool], field: u64) -> Option<()> {
    let slot = seen.get_mut(usize::try_from(field).ok()?.checked_sub(1)?)?;
    (!core::mem::replace(slot, true)).then_some(())
}

/// Reads one length-delimited field from the front of `rest`: its field number and bytes.
/// `None` for any other wire type, a malformed varint or a length past the end.
fn next_field<'a>(rest: &mut &'a [u8]) -> Option<(u64, &'a [u8])> {
    let key = read_varint(rest)?;
    if key & 7 != LEN {
        return None;
    }
    let len = usize::try_from(read_varint(rest)?).ok()?;
    let (value, tail) = rest.split_at_checked(len)?;
    *rest = tail;
    Some((key >> 3, value))
}

/// A base-128 varint of at most 5 bytes (every key and length these messages need: field
/// numbers below 2^28, lengths below 2^35); longer ones are left to prost.
fn read_varint(rest: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in rest.iter().enumerate().take(5) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *rest = rest.get(i + 1..)?;
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use alloc::collections::BTreeMap;
    use alloc::string::String;
    use alloc::vec::Vec;

    use bytes::Bytes;
    use kms_plugin_proto::v2::DecryptRequest;
    use prost::Message;

    use super::DecryptView;
    use crate::annotations::{FORMAT_KEY, WRAPPED_KEK_KEY};

    /// xorshift64*: a fixed-seed generator for the message grammar below.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn bytes(&mut self, max: u64) -> Vec<u8> {
            let len = self.below(max + 1);
            (0..len).map(|_| self.next() as u8).collect()
        }
        fn text(&mut self) -> Vec<u8> {
            match self.below(6) {
                0 => Vec::new(),
                1 => b"ok-\xff\xfe".to_vec(), // invalid UTF-8
                _ => (0..self.below(40))
                    .map(|_| b'a' + self.below(26) as u8)
                    .collect(),
            }
        }
    }

    /// A length-delimited field, empty values included (unlike `put_bytes_field`).
    fn field(out: &mut Vec<u8>, number: u8, value: &[u8]) {
        super::super::put_field_head(out, number, value.len());
        out.extend_from_slice(value);
    }

    fn entry(g: &mut Gen) -> Vec<u8> {
        let key: Vec<u8> = match g.below(5) {
            0 | 1 => WRAPPED_KEK_KEY.as_bytes().to_vec(),
            2 => FORMAT_KEY.as_bytes().to_vec(),
            3 => b"other.example.com".to_vec(),
            _ => g.text(),
        };
        let value = if g.below(3) == 0 {
            b"1".to_vec()
        } else {
            g.bytes(60)
        };
        let mut e = Vec::new();
        match g.below(8) {
            0 => field(&mut e, 1, &key),
            1 => field(&mut e, 2, &value),
            2 => {
                field(&mut e, 2, &value);
                field(&mut e, 1, &key);
            }
            3 => {
                field(&mut e, 1, &key);
                field(&mut e, 2, &value);
                field(&mut e, 1, &key);
            }
            4 => {
                field(&mut e, 1, &key);
                e.extend_from_slice(&[0x18, 0x05]); // unknown varint field 3
                field(&mut e, 2, &value);
            }
            _ => {
                field(&mut e, 1, &key);
                field(&mut e, 2, &value);
            }
        }
        e
    }

    /// A message: mostly the apiserver's shape, with every kind of deviation mixed in.
    fn message(g: &mut Gen) -> Vec<u8> {
        let mut m = Vec::new();
        for _ in 0..g.below(7) {
            match g.below(14) {
                0..=2 => field(&mut m, 1, &g.bytes(90)),
                3 | 4 => field(&mut m, 2, &g.text()),
                5 | 6 => field(&mut m, 3, &g.text()),
                7..=9 => field(&mut m, 4, &entry(g)),
                10 => m.extend_from_slice(&[0x28, 0x96, 0x01]), // field 5, varint
                11 => m.extend_from_slice(&[0x0d, 1, 2, 3, 4]), // field 1 as fixed32
                12 => m.extend_from_slice(&[0x2b, 0x30, 0x01, 0x2c]), // group 5 { 6: 1 }
                _ => {
                    let junk = g.bytes(6);
                    m.extend_from_slice(&junk);
                }
            }
        }
        if g.below(8) == 0 && !m.is_empty() {
            m.truncate(g.below(m.len() as u64) as usize);
        }
        m
    }

    /// Whatever the view accepts, prost accepts and decodes to the same fields.
    #[test]
    fn agrees_with_prost_wherever_it_answers() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let (mut answered, mut left) = (0, 0);
        for _ in 0..200_000 {
            let msg = message(&mut g);
            let prost = DecryptRequest::decode(&msg[..]);
            let Some(view) = DecryptView::parse(&msg) else {
                left += 1;
                continue;
            };
            answered += 1;
            let p = prost.expect("the view accepted a message prost rejects");
            assert_eq!(view.ciphertext, &p.ciphertext[..]);
            assert_eq!(view.uid, p.uid);
            assert_eq!(view.key_id, p.key_id);
            let annotations: BTreeMap<String, Bytes> = view
                .annotations()
                .map(|(k, v)| (String::from(k), Bytes::copy_from_slice(v)))
                .collect();
            assert_eq!(annotations, p.annotations);
        }
        // Both branches are exercised in earnest.
        assert!(
            answered > 20_000 && left > 20_000,
            "{answered} answered, {left} left"
        );
    }

    /// The v1 EncryptRequest view against prost, on the same kind of generated messages.
    #[test]
    fn v1_encrypt_view_agrees_with_prost_wherever_it_answers() {
        use kms_plugin_proto::v1beta1::EncryptRequest;

        use super::V1EncryptView;

        let mut g = Gen(0x2545_f491_4f6c_dd1d);
        let (mut answered, mut left) = (0, 0);
        for _ in 0..100_000 {
            let mut msg = Vec::new();
            for _ in 0..g.below(4) {
                match g.below(9) {
                    0..=2 => field(&mut msg, 1, &g.text()),
                    3..=5 => field(&mut msg, 2, &g.bytes(40)),
                    6 => msg.extend_from_slice(&[0x18, 0x01]), // field 3, varint
                    7 => msg.extend_from_slice(&[0x10, 0x01]), // field 2 as a varint
                    _ => msg.extend_from_slice(&g.bytes(4)),
                }
            }
            let prost = EncryptRequest::decode(&msg[..]);
            let Some(view) = V1EncryptView::parse(&msg) else {
                left += 1;
                continue;
            };
            answered += 1;
            let p = prost.expect("the view accepted a message prost rejects");
            assert_eq!((view.version, view.plain), (&p.version[..], &p.plain[..]));
        }
        assert!(
            answered > 10_000 && left > 10_000,
            "{answered} answered, {left} left"
        );
    }

    /// What the apiserver sends (prost's encoding of a full request) is read by the view.
    #[test]
    fn reads_the_apiserver_request() {
        let req = DecryptRequest {
            ciphertext: Bytes::from_static(b"\xc7\x21ciphertext"),
            uid: String::from("9f3f1c1e-5f42-4b34-8d0e-1f2f3a4b5c6d"),
            key_id: String::from("local:default:v1:135f103b97d8dc96"),
            annotations: [
                (
                    String::from(WRAPPED_KEK_KEY),
                    Bytes::from_static(b"wrapped"),
                ),
                (String::from(FORMAT_KEY), Bytes::from_static(b"1")),
            ]
            .into_iter()
            .collect(),
        };
        let msg = req.encode_to_vec();
        let view = DecryptView::parse(&msg).expect("the apiserver's shape");
        assert_eq!(view.ciphertext, &req.ciphertext[..]);
        assert_eq!((view.uid, view.key_id), (&req.uid[..], &req.key_id[..]));
        let mut annotations: Vec<_> = view.annotations().collect();
        annotations.sort_unstable();
        let mut expected: Vec<_> = req
            .annotations
            .iter()
            .map(|(k, v)| (&k[..], &v[..]))
            .collect();
        expected.sort_unstable();
        assert_eq!(annotations, expected);
    }
}
