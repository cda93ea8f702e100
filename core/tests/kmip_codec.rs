//! The KMIP codec (`kek::kmip`) against hand-built TTLV: the spec's encoding examples, request
//! shapes, response parsing, error mapping and truncation.

use kms_plugin_core::RemoteErrorKind;
use kms_plugin_core::kek::kmip::ttlv::{Item, TtlvError, Writer, read_item};
use kms_plugin_core::kek::kmip::*;
use kms_plugin_core::secret::Secret32;
use zeroize::Zeroizing;

/// Bytes of `s`, hex with `|` and whitespace as separators for readability.
fn hex(s: &str) -> Vec<u8> {
    let s: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '|')
        .collect();
    ::hex::decode(s).unwrap()
}

/// The item reached from `item` through the children tagged `tags`, in order.
fn dig<'a>(item: Item<'a>, tags: &[u32]) -> Item<'a> {
    tags.iter().fold(item, |at, t| {
        at.child(*t).unwrap().unwrap_or_else(|| panic!("no {t:#x}"))
    })
}

#[test]
fn ttlv_encoding_matches_the_spec_examples() {
    // KMIP 1.4 spec, section 9.1.2 (tag 0x420020).
    let mut w = Writer::with_capacity(256);
    w.integer(0x42_0020, 8);
    w.text(0x42_0020, "Hello World");
    w.boolean(0x42_0020, true);
    w.structure(0x42_0020, |w| {
        w.enumeration(0x42_0004, 254);
        w.integer(0x42_0005, 255);
    });
    let got = w.finish().unwrap();
    let want = hex(
        "420020|02|00000004|0000000800000000
         420020|07|0000000B|48656C6C6F20576F726C640000000000
         420020|06|00000008|0000000000000001
         420020|01|00000020|420004|05|00000004|000000FE00000000|420005|02|00000004|000000FF00000000",
    );
    assert_eq!(&got[..], &want[..]);
    let (item, rest) = read_item(&want).unwrap();
    assert_eq!((item.tag, item.integer().unwrap()), (0x42_0020, 8));
    let (item, rest) = read_item(rest).unwrap();
    assert_eq!(item.text().unwrap(), "Hello World");
    let (_, rest) = read_item(rest).unwrap();
    let (item, rest) = read_item(rest).unwrap();
    assert!(rest.is_empty());
    assert_eq!(
        item.child(0x42_0005).unwrap().unwrap().integer().unwrap(),
        255
    );
    assert_eq!(
        item.child(0x42_0004)
            .unwrap()
            .unwrap()
            .enumeration()
            .unwrap(),
        254
    );
    assert_eq!(item.child(0x42_0006).unwrap(), None);
}

#[test]
fn ttlv_reader_checks_every_length() {
    let good = hex("420020|01|00000010|420004|05|00000004|000000FE00000000");
    for cut in 0..good.len() {
        let r = read_item(&good[..cut]);
        assert!(r.is_err(), "cut at {cut}");
    }
    // An Integer of length 8, a structure of length 4, an unknown type, a huge length.
    for bad in [
        "420020|02|00000008|0000000800000000",
        "420020|01|00000004|00000000",
        "420020|0B|00000000",
        "420020|08|FFFFFFF8|00",
    ] {
        assert!(read_item(&hex(bad)).is_err(), "{bad}");
    }
    // A bad child is reported when the structure is walked.
    let nested = hex("420020|01|00000008|420004|05|00000004");
    let (item, _) = read_item(&nested).unwrap();
    assert_eq!(item.child(0x42_0005), Err(TtlvError::Truncated));
    // Wrong types are refused by the typed readers.
    let int_bytes = hex("420020|02|00000004|0000000800000000");
    let (int, _) = read_item(&int_bytes).unwrap();
    assert!(int.text().is_err() && int.enumeration().is_err() && int.children().is_err());
}

#[test]
fn writer_refuses_what_does_not_fit_its_buffer() {
    let mut w = Writer::with_capacity(16);
    w.bytes(0x42_0020, &[0; 9]);
    assert!(w.finish().is_none());
    let mut w = Writer::with_capacity(24);
    w.bytes(0x42_0020, &[0; 9]);
    assert_eq!(w.finish().unwrap().len(), 24);
}

/// A server's response message with one batch item.
fn response(op: Operation, status: u32, body: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::with_capacity(8192);
    w.structure(tag::RESPONSE_MESSAGE, |w| {
        w.structure(tag::RESPONSE_HEADER, |w| {
            w.structure(tag::PROTOCOL_VERSION, |w| {
                w.integer(tag::PROTOCOL_VERSION_MAJOR, 1);
                w.integer(tag::PROTOCOL_VERSION_MINOR, 4);
            });
            w.integer(tag::BATCH_COUNT, 1);
        });
        w.structure(tag::BATCH_ITEM, |w| {
            w.enumeration(tag::OPERATION, op.code());
            w.enumeration(tag::RESULT_STATUS, status);
            body(w);
        });
    });
    let message = w.finish().unwrap();
    message.to_vec()
}

fn failure(op: Operation, reason: u32, message: &str) -> Vec<u8> {
    response(op, 1, |w| {
        w.enumeration(tag::RESULT_REASON, reason);
        w.text(tag::RESULT_MESSAGE, message);
    })
}

fn attributes_response(uid: &str, state: u32, date: i64) -> Vec<u8> {
    response(Operation::GetAttributes, 0, |w| {
        w.structure(tag::RESPONSE_PAYLOAD, |w| {
            w.text(tag::UNIQUE_IDENTIFIER, uid);
            for (name, v) in [
                ("Object Type", 2),
                ("State", state),
                ("Cryptographic Algorithm", 3),
            ] {
                w.structure(tag::ATTRIBUTE, |w| {
                    w.text(tag::ATTRIBUTE_NAME, name);
                    w.enumeration(tag::ATTRIBUTE_VALUE, v);
                });
            }
            w.structure(tag::ATTRIBUTE, |w| {
                w.text(tag::ATTRIBUTE_NAME, "Cryptographic Length");
                w.integer(tag::ATTRIBUTE_VALUE, 256);
            });
            w.structure(tag::ATTRIBUTE, |w| {
                w.text(tag::ATTRIBUTE_NAME, "Initial Date");
                w.date_time(tag::ATTRIBUTE_VALUE, date);
            });
        });
    })
}

#[test]
fn requests_are_well_formed_and_carry_the_credential_only_when_given() {
    let cred = Credential::new("alice", Zeroizing::new(String::from("s3cret"))).unwrap();
    let req = locate_request(Some(&cred), "kube-kms").unwrap();
    let (root, rest) = read_item(&req).unwrap();
    assert!(rest.is_empty());
    assert_eq!(root.tag, tag::REQUEST_MESSAGE);
    let header = root.child(tag::REQUEST_HEADER).unwrap().unwrap();
    let version = header.child(tag::PROTOCOL_VERSION).unwrap().unwrap();
    assert_eq!(
        version
            .child(tag::PROTOCOL_VERSION_MINOR)
            .unwrap()
            .unwrap()
            .integer(),
        Ok(4)
    );
    let value = dig(
        header,
        &[tag::AUTHENTICATION, tag::CREDENTIAL, tag::CREDENTIAL_VALUE],
    );
    assert_eq!(
        value.child(tag::USERNAME).unwrap().unwrap().text(),
        Ok("alice")
    );
    assert_eq!(
        value.child(tag::PASSWORD).unwrap().unwrap().text(),
        Ok("s3cret")
    );
    let batch = root.child(tag::BATCH_ITEM).unwrap().unwrap();
    assert_eq!(
        batch.child(tag::OPERATION).unwrap().unwrap().enumeration(),
        Ok(0x08)
    );
    let without = get_attributes_request(None, "7").unwrap();
    let (root, _) = read_item(&without).unwrap();
    let header = root.child(tag::REQUEST_HEADER).unwrap().unwrap();
    assert_eq!(header.child(tag::AUTHENTICATION).unwrap(), None);
    assert!(locate_request(None, "").is_err());
    assert!(locate_request(None, "a\nb").is_err());
    assert!(Credential::new("", Zeroizing::new(String::from("x"))).is_err());
    assert!(Credential::new("u", Zeroizing::new(String::new())).is_err());
}

#[test]
fn encrypt_and_decrypt_requests_carry_mode_data_and_gcm_fields() {
    let kek = Secret32::from_bytes([7; 32]);
    let aad = key::gcm_aad("kmip:1:0011223344556677");
    for mode in WrapMode::PROBE_ORDER {
        let req = encrypt_request(None, "1", mode, &kek, &aad).unwrap();
        let (root, _) = read_item(&req).unwrap();
        let payload = dig(root, &[tag::BATCH_ITEM, tag::REQUEST_PAYLOAD]);
        let params = payload
            .child(tag::CRYPTOGRAPHIC_PARAMETERS)
            .unwrap()
            .unwrap();
        assert_eq!(
            params
                .child(tag::BLOCK_CIPHER_MODE)
                .unwrap()
                .unwrap()
                .enumeration(),
            Ok(mode.block_cipher_mode())
        );
        assert_eq!(
            payload.child(tag::DATA).unwrap().unwrap().bytes(),
            Ok(&[7u8; 32][..])
        );
        let has_aad = payload.child(tag::AE_ADDITIONAL_DATA).unwrap().is_some();
        assert_eq!(has_aad, mode == WrapMode::Gcm);
    }
    let blob = WrappedBlob {
        mode: WrapMode::Gcm,
        iv: &[1; 12],
        tag: &[2; 16],
        data: &[3; 32],
    };
    let req = decrypt_request(None, "1", &blob, &aad).unwrap();
    let (root, _) = read_item(&req).unwrap();
    let payload = dig(root, &[tag::BATCH_ITEM, tag::REQUEST_PAYLOAD]);
    assert_eq!(
        payload
            .child(tag::IV_COUNTER_NONCE)
            .unwrap()
            .unwrap()
            .bytes(),
        Ok(&[1u8; 12][..])
    );
    assert_eq!(
        payload.child(tag::AE_TAG).unwrap().unwrap().bytes(),
        Ok(&[2u8; 16][..])
    );
    assert_eq!(
        payload
            .child(tag::AE_ADDITIONAL_DATA)
            .unwrap()
            .unwrap()
            .bytes(),
        Ok(&aad[..])
    );
}

#[test]
fn failures_map_to_error_kinds_with_the_server_message_bounded() {
    let cases = [
        (Operation::Locate, 0x03, RemoteErrorKind::Auth),
        (Operation::Encrypt, 0x0C, RemoteErrorKind::Permission),
        (Operation::GetAttributes, 0x01, RemoteErrorKind::NotFound),
        (Operation::Decrypt, 0x0A, RemoteErrorKind::Corrupt),
        (Operation::Decrypt, 0x100, RemoteErrorKind::Corrupt),
        (Operation::Encrypt, 0x100, RemoteErrorKind::Unavailable),
        (Operation::Encrypt, 0x07, RemoteErrorKind::Other),
    ];
    for (op, reason, kind) in cases {
        let err = parse_response(op, &failure(op, reason, "nope\u{7}")).unwrap_err();
        assert_eq!(err.kind, kind, "{op:?} {reason:#x}");
        assert!(err.detail.contains("nope?"), "{}", err.detail);
    }
    let long = "x".repeat(5000);
    let err = parse_response(Operation::Locate, &failure(Operation::Locate, 4, &long)).unwrap_err();
    assert!(err.detail.len() < MAX_ERROR_TEXT + 100);
    // An answer to another operation is refused.
    let other = response(Operation::Encrypt, 0, |_| {});
    assert_eq!(
        parse_response(Operation::Decrypt, &other).unwrap_err().kind,
        RemoteErrorKind::Corrupt
    );
}

#[test]
fn response_length_is_checked_before_reading() {
    let msg = response(Operation::Locate, 0, |_| {});
    let header: [u8; 8] = msg[..8].try_into().unwrap();
    assert_eq!(
        response_body_len(Operation::Locate, &header),
        Ok(msg.len() - 8)
    );
    let mut huge = header;
    huge[4..].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(response_body_len(Operation::Locate, &huge).is_err());
    let mut request_tag = header;
    request_tag[2] = 0x78;
    assert!(response_body_len(Operation::Locate, &request_tag).is_err());
}

#[test]
fn locate_lists_identifiers_up_to_the_cap() {
    let msg = response(Operation::Locate, 0, |w| {
        w.structure(tag::RESPONSE_PAYLOAD, |w| {
            w.text(tag::UNIQUE_IDENTIFIER, "1");
            w.text(tag::UNIQUE_IDENTIFIER, "abc-2");
        });
    });
    assert_eq!(
        parse_locate(&msg).unwrap(),
        vec![String::from("1"), String::from("abc-2")]
    );
    let none = response(Operation::Locate, 0, |_| {});
    assert!(parse_locate(&none).unwrap().is_empty());
    let many = response(Operation::Locate, 0, |w| {
        w.structure(tag::RESPONSE_PAYLOAD, |w| {
            for i in 0..=MAX_CANDIDATES {
                w.text(tag::UNIQUE_IDENTIFIER, &format!("{i}"));
            }
        });
    });
    let first = parse_locate(&many).unwrap();
    assert_eq!(first.len(), MAX_CANDIDATES);
    assert_eq!(first[0], "0");
}

#[test]
fn attributes_give_a_stable_key_id_that_changes_with_the_key() {
    let a = parse_attributes(&attributes_response("1", 2, 1_700_000_000)).unwrap();
    assert_eq!(a.state, Some(2));
    assert_eq!(a.length, Some(256));
    assert_eq!(a.unusable(), None);
    let id = a.key_id();
    assert!(
        id.starts_with("kmip:1:") && id.len() == "kmip:1:".len() + 16,
        "{id}"
    );
    assert_eq!(
        parse_attributes(&attributes_response("1", 2, 1_700_000_000))
            .unwrap()
            .key_id(),
        id
    );
    // The same identifier re-created later (a reset server) is another key id.
    let again = parse_attributes(&attributes_response("1", 2, 1_700_000_001)).unwrap();
    assert_ne!(again.key_id(), id);
    assert_eq!(key::uid_of(&id), Ok("1"));
    assert_eq!(key::uid_of("kmip:a:b:0011223344556677"), Ok("a:b"));
    for bad in [
        "vault:1:0011223344556677",
        "kmip:1:xyz",
        "kmip::0011223344556677",
    ] {
        assert_eq!(
            key::uid_of(bad).unwrap_err().kind,
            RemoteErrorKind::NotFound
        );
    }
    let deactivated = parse_attributes(&attributes_response("2", 3, 1)).unwrap();
    assert!(deactivated.unusable().unwrap().contains("Deactivated"));
}

#[test]
fn the_newest_active_key_of_a_name_is_current_and_ties_go_to_the_greatest_uid() {
    let key = |uid: &str, state, date| {
        let mut k = KeyAttributes::new(uid);
        k.state = Some(state);
        k.initial_date = date;
        k
    };
    let chosen = key::choose_current(
        "n",
        vec![
            key("1", 2, Some(10)),
            key("2", 2, Some(20)),
            key("3", 3, Some(30)),
        ],
    )
    .unwrap();
    assert_eq!(chosen.uid, "2");
    let tie = key::choose_current(
        "n",
        vec![
            key("10", 2, Some(10)),
            key("9", 2, Some(10)),
            key("2", 2, None),
        ],
    );
    assert_eq!(tie.unwrap().uid, "10");
    let none = key::choose_current("n", vec![key("3", 3, Some(30))]).unwrap_err();
    assert_eq!(none.kind, RemoteErrorKind::NotFound);
    assert!(none.detail.contains("Deactivated"), "{}", none.detail);
    assert_eq!(
        key::choose_current("n", vec![]).unwrap_err().kind,
        RemoteErrorKind::NotFound
    );
}

#[test]
fn encrypt_responses_become_blobs_that_parse_back() {
    let gcm = response(Operation::Encrypt, 0, |w| {
        w.structure(tag::RESPONSE_PAYLOAD, |w| {
            w.text(tag::UNIQUE_IDENTIFIER, "1");
            w.bytes(tag::DATA, &[3; 32]);
            w.bytes(tag::IV_COUNTER_NONCE, &[1; 16]);
            w.bytes(tag::AE_TAG, &[2; 16]);
        });
    });
    let blob = parse_encrypt(&gcm, WrapMode::Gcm).unwrap();
    assert_eq!(blob.len(), 2 + 16 + 16 + 32);
    let parsed = WrappedBlob::parse(&blob).unwrap();
    assert_eq!(
        (parsed.iv, parsed.tag, parsed.data),
        (&[1u8; 16][..], &[2u8; 16][..], &[3u8; 32][..])
    );
    // GCM without a tag or IV, key wrap of the wrong size: corrupt.
    let no_tag = response(Operation::Encrypt, 0, |w| {
        w.structure(tag::RESPONSE_PAYLOAD, |w| {
            w.bytes(tag::DATA, &[3; 32]);
            w.bytes(tag::IV_COUNTER_NONCE, &[1; 12]);
        });
    });
    assert_eq!(
        parse_encrypt(&no_tag, WrapMode::Gcm).unwrap_err().kind,
        RemoteErrorKind::Corrupt
    );
    let wrapped = response(Operation::Encrypt, 0, |w| {
        w.structure(tag::RESPONSE_PAYLOAD, |w| w.bytes(tag::DATA, &[9; 40]));
    });
    let blob = parse_encrypt(&wrapped, WrapMode::NistKeyWrap).unwrap();
    assert_eq!(
        WrappedBlob::parse(&blob).unwrap().mode,
        WrapMode::NistKeyWrap
    );
    assert!(parse_encrypt(&no_tag, WrapMode::NistKeyWrap).is_err());
    for bad in [&[][..], &[0x01], &[0x04; 41], &[0x02; 40], &[0x01, 0, 0]] {
        assert!(WrappedBlob::parse(bad).is_err());
    }
}

#[test]
fn decrypt_gives_exactly_32_bytes() {
    let ok = response(Operation::Decrypt, 0, |w| {
        w.structure(tag::RESPONSE_PAYLOAD, |w| w.bytes(tag::DATA, &[5; 32]));
    });
    assert_eq!(parse_decrypt(&ok).unwrap().expose(), &[5; 32]);
    let short = response(Operation::Decrypt, 0, |w| {
        w.structure(tag::RESPONSE_PAYLOAD, |w| w.bytes(tag::DATA, &[5; 31]));
    });
    assert_eq!(
        parse_decrypt(&short).err().unwrap().kind,
        RemoteErrorKind::Corrupt
    );
}

#[test]
fn every_truncation_of_a_response_is_an_error_not_a_panic() {
    let msg = attributes_response("1", 2, 5);
    for cut in 0..msg.len() {
        assert!(parse_attributes(&msg[..cut]).is_err());
    }
}

#[test]
fn keys_that_wrapped_data_and_disappear_are_key_version_missing() {
    let a = parse_attributes(&attributes_response("1", 2, 1_700_000_000)).unwrap();
    let id = a.key_id();
    assert_eq!(key::check_still_present(&id, Some(&a)), Ok(()));
    let deactivated = parse_attributes(&attributes_response("1", 3, 1_700_000_000)).unwrap();
    assert_eq!(key::check_still_present(&id, Some(&deactivated)), Ok(()));
    let destroyed = parse_attributes(&attributes_response("1", 5, 1_700_000_000)).unwrap();
    let reset = parse_attributes(&attributes_response("1", 2, 1_800_000_000)).unwrap();
    for attrs in [None, Some(&destroyed), Some(&reset)] {
        let err = key::check_still_present(&id, attrs).unwrap_err();
        assert_eq!(err.kind, RemoteErrorKind::KeyVersionMissing);
        assert!(
            err.detail.contains(&id) && err.detail.contains("restore"),
            "{}",
            err.detail
        );
    }
}
