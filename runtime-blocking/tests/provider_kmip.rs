//! The KMIP provider against a real PyKMIP server (`.ci/setup-pykmip.sh` installs it), over
//! mutual TLS with certificates generated at test time: key lookup by name and by unique
//! identifier, AES-GCM wrap and unwrap, key ids identical across "hosts", rotation and
//! replacement on the server, wrong client certificates, missing keys, a wrap mode the server
//! cannot do, a server down and back.
#![cfg(feature = "kmip")]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "kmip/harness.rs"]
mod harness;
mod support;

use std::time::{Duration, Instant};

use harness::{Admin, Pki, PyKmip};
use kms_plugin_blocking::provider::KekProvider;
use kms_plugin_blocking::provider::kmip::{KmipConfig, KmipProvider, ProbeOutcome};
use kms_plugin_core::RemoteErrorKind;
use kms_plugin_core::kek::kmip::WrapMode;
use kms_plugin_core::secret::Secret32;
use support::TempDir;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn config(pki: &Pki, server: &PyKmip, key: &str, client: &str) -> KmipConfig {
    KmipConfig {
        addr: server.addr(),
        key: key.to_owned(),
        client_cert: pki.path(&format!("{client}.pem")),
        client_key: pki.path(&format!("{client}.key")),
        ca_file: pki.path("ca.pem"),
        credential: None,
        mode: None,
    }
}

fn provider(pki: &Pki, server: &PyKmip, key: &str) -> KmipProvider {
    KmipProvider::new(config(pki, server, key, "client")).unwrap()
}

struct Setup {
    _dir: TempDir,
    pki: Pki,
    server: PyKmip,
    admin: Admin,
}

fn setup(tag: &str) -> Setup {
    let dir = TempDir::new(tag);
    let pki = Pki::generate(&dir.0);
    let server = PyKmip::start(&pki);
    let admin = Admin::new(&pki, &server);
    Setup {
        _dir: dir,
        pki,
        server,
        admin,
    }
}

#[test]
fn gcm_wrap_unwrap_key_ids_rotation_and_replacement() {
    let mut s = setup("kmip-provider");
    let uid = s.admin.create("kube-kms");
    let a = provider(&s.pki, &s.server, "kube-kms");
    let key_id = a
        .status(deadline())
        .unwrap_or_else(|e| panic!("{e:?}\n{}", s.server.log()));
    assert!(key_id.starts_with(&format!("kmip:{uid}:")), "{key_id}");
    // Another "host" (its own provider and connection) reports the same key id, by name or
    // by unique identifier.
    assert_eq!(
        provider(&s.pki, &s.server, "kube-kms")
            .status(deadline())
            .unwrap(),
        key_id
    );
    assert_eq!(
        provider(&s.pki, &s.server, &uid)
            .status(deadline())
            .unwrap(),
        key_id
    );

    let kek = Secret32::from_bytes([0x42; 32]);
    let blob = a.wrap(&key_id, &kek, deadline()).unwrap();
    assert_eq!(blob[0], 0x01, "AES-GCM blob");
    let back = provider(&s.pki, &s.server, "kube-kms")
        .unwrap(&key_id, &blob, deadline())
        .unwrap();
    assert_eq!(back.expose(), kek.expose());
    // The additional data binds the blob to its key id; a flipped byte does not open.
    let other_id = format!("kmip:{uid}:0000000000000000");
    let err = a.unwrap(&other_id, &blob, deadline()).err().unwrap();
    assert_eq!(err.kind, RemoteErrorKind::Corrupt, "{err:?}");
    let mut flipped = blob.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert_eq!(
        a.unwrap(&key_id, &flipped, deadline()).err().unwrap().kind,
        RemoteErrorKind::Corrupt
    );

    // Rotation: a newer key under the same name becomes current; the old key still unwraps.
    let uid2 = s.admin.create("kube-kms");
    let key_id2 = a.status(deadline()).unwrap();
    assert!(key_id2.starts_with(&format!("kmip:{uid2}:")), "{key_id2}");
    let blob2 = a.wrap(&key_id2, &kek, deadline()).unwrap();
    assert_eq!(
        a.unwrap(&key_id, &blob, deadline()).unwrap().expose(),
        kek.expose()
    );
    assert_eq!(
        a.unwrap(&key_id2, &blob2, deadline()).unwrap().expose(),
        kek.expose()
    );

    // Replacement: the newest key is destroyed and a new one created under the name. A
    // process that reported the destroyed key's id says so (data wrapped under it no longer
    // decrypts) instead of moving on quietly; unwrapping its blobs names the missing key.
    s.admin.run(&format!("destroy {uid2}"));
    let uid3 = s.admin.create("kube-kms");
    let err = a.status(deadline()).err().unwrap();
    assert_eq!(err.kind, RemoteErrorKind::KeyVersionMissing, "{err:?}");
    assert!(err.detail.contains(&key_id2), "{}", err.detail);
    let err = a.unwrap(&key_id2, &blob2, deadline()).err().unwrap();
    assert_eq!(err.kind, RemoteErrorKind::KeyVersionMissing, "{err:?}");
    // A restarted process moves to the new key; the first key's blobs still unwrap.
    let b = provider(&s.pki, &s.server, "kube-kms");
    let key_id3 = b.status(deadline()).unwrap();
    assert!(key_id3.starts_with(&format!("kmip:{uid3}:")), "{key_id3}");
    assert_eq!(
        b.unwrap(&key_id, &blob, deadline()).unwrap().expose(),
        kek.expose()
    );

    // Every key of the name deactivated: not_found at Status, naming the state.
    s.admin.run(&format!("revoke {uid}"));
    s.admin.run(&format!("revoke {uid3}"));
    let err = provider(&s.pki, &s.server, "kube-kms")
        .status(deadline())
        .err()
        .unwrap();
    assert_eq!(err.kind, RemoteErrorKind::NotFound, "{err:?}");
    assert!(err.detail.contains("Deactivated"), "{}", err.detail);
}

#[test]
fn credentials_missing_keys_modes_and_outages() {
    let mut s = setup("kmip-faults");
    let uid = s.admin.create("kube-kms");
    s.admin.run("create-3des legacy");

    // A client certificate of another CA: refused in the TLS handshake -> auth.
    let rogue = KmipProvider::new(config(&s.pki, &s.server, "kube-kms", "rogue")).unwrap();
    let err = rogue.status(deadline()).err().unwrap();
    assert_eq!(err.kind, RemoteErrorKind::Auth, "{err:?}");
    // Another identity of the right CA sees no key of that name (PyKMIP's owner policy).
    let other = KmipProvider::new(config(&s.pki, &s.server, "kube-kms", "other")).unwrap();
    let err = other.status(deadline()).err().unwrap();
    assert!(
        matches!(
            err.kind,
            RemoteErrorKind::NotFound | RemoteErrorKind::Permission
        ),
        "{err:?}"
    );

    // A long rotation history: more keys of one name than Locate asks for; the newest is
    // current.
    for _ in 0..kms_plugin_core::kek::kmip::MAX_CANDIDATES {
        s.admin.create("long-history");
    }
    // PyKMIP dates keys to the second and lists equal dates in ascending uid order, so when all
    // of them share one second the newest can fall past Locate's cut. Rotations are never that
    // close in practice: the newest key is made in a later second than every other one.
    let secs = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    };
    let last_second = secs().as_secs();
    while secs().as_secs() <= last_second {
        std::thread::sleep(
            Duration::from_secs(1)
                .saturating_sub(Duration::from_nanos(u64::from(secs().subsec_nanos()))),
        );
    }
    let newest = s.admin.create("long-history");
    let id = provider(&s.pki, &s.server, "long-history")
        .status(deadline())
        .unwrap();
    assert!(id.starts_with(&format!("kmip:{newest}:")), "{id}");

    // Missing key, and a key that is not AES.
    let err = provider(&s.pki, &s.server, "no-such-key")
        .status(deadline())
        .err()
        .unwrap();
    assert_eq!(err.kind, RemoteErrorKind::NotFound, "{err:?}");
    assert!(err.detail.contains("no-such-key"), "{}", err.detail);
    let err = provider(&s.pki, &s.server, "legacy")
        .status(deadline())
        .err()
        .unwrap();
    assert!(err.detail.contains("not an AES key"), "{}", err.detail);

    // A mode the server cannot do is a start-up refusal; the default probe finds GCM.
    let mut pinned = config(&s.pki, &s.server, "kube-kms", "client");
    pinned.mode = Some(WrapMode::NistKeyWrap);
    match KmipProvider::new(pinned)
        .unwrap()
        .probe_at_start(deadline())
    {
        ProbeOutcome::Refused(why) => assert!(why.contains("cannot wrap"), "{why}"),
        ProbeOutcome::Ready(id) => panic!("PyKMIP wrapped in NIST key wrap under {id}"),
        ProbeOutcome::NotReady(e) => panic!("{e:?}"),
    }
    let p = provider(&s.pki, &s.server, "kube-kms");
    match p.probe_at_start(deadline()) {
        ProbeOutcome::Ready(id) => assert!(id.starts_with(&format!("kmip:{uid}:"))),
        ProbeOutcome::Refused(why) => panic!("{why}"),
        ProbeOutcome::NotReady(e) => panic!("{e:?}"),
    }

    // A Username/Password credential is sent with every request (PyKMIP accepts it: it
    // authenticates by the certificate unless an auth plugin is configured); a missing
    // password file is an auth error naming the file.
    let password = s.pki.path("password");
    std::fs::write(&password, "correct-horse\n").unwrap();
    let mut with_credential = config(&s.pki, &s.server, "kube-kms", "client");
    with_credential.credential = Some(("kms-user".into(), password.clone()));
    let p2 = KmipProvider::new(with_credential).unwrap();
    let key_id = p2.status(deadline()).unwrap();
    std::fs::remove_file(&password).unwrap();
    let err = p2.status(deadline()).err().unwrap();
    assert_eq!(err.kind, RemoteErrorKind::Auth, "{err:?}");

    // Server down: unavailable, promptly; back: the same key id, old blobs unwrap.
    let kek = Secret32::from_bytes([7; 32]);
    let blob = p.wrap(&key_id, &kek, deadline()).unwrap();
    s.server.stop();
    let started = Instant::now();
    let err = p.status(deadline()).err().unwrap();
    assert_eq!(err.kind, RemoteErrorKind::Unavailable, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A deadline already spent is a timeout, not a hang.
    let err = p.status(Instant::now()).err().unwrap();
    assert_eq!(err.kind, RemoteErrorKind::Timeout, "{err:?}");
    s.server.restart();
    assert_eq!(p.status(deadline()).unwrap(), key_id);
    assert_eq!(
        p.unwrap(&key_id, &blob, deadline()).unwrap().expose(),
        kek.expose()
    );
}

#[test]
fn a_server_without_gcm_gets_nist_key_wrap_and_a_pinned_mode_it_lacks_is_refused() {
    let dir = TempDir::new("kmip-keywrap");
    let pki = Pki::generate(&dir.0);
    let server = PyKmip::start_with(&pki, &["no-gcm"]);
    let mut admin = Admin::new(&pki, &server);
    let uid = admin.create("kube-kms");

    // auto: GCM is refused, NIST key wrap (RFC 3394) is probed and used.
    let p = provider(&pki, &server, "kube-kms");
    let key_id = match p.probe_at_start(deadline()) {
        ProbeOutcome::Ready(id) => id,
        ProbeOutcome::Refused(why) => panic!("{why}\n{}", server.log()),
        ProbeOutcome::NotReady(e) => panic!("{e:?}\n{}", server.log()),
    };
    assert!(key_id.starts_with(&format!("kmip:{uid}:")), "{key_id}");
    let kek = Secret32::from_bytes([9; 32]);
    let blob = p.wrap(&key_id, &kek, deadline()).unwrap();
    assert_eq!((blob[0], blob.len()), (0x02, 41), "RFC 3394 blob");
    assert_eq!(
        p.unwrap(&key_id, &blob, deadline()).unwrap().expose(),
        kek.expose()
    );
    let mut flipped = blob.clone();
    flipped[10] ^= 1;
    let err = p.unwrap(&key_id, &flipped, deadline()).err().unwrap();
    assert_eq!(err.kind, RemoteErrorKind::Corrupt, "{err:?}");

    // Pinned key wrap with padding (RFC 5649): its own blob version; both kinds unwrap.
    let mut padded = config(&pki, &server, "kube-kms", "client");
    padded.mode = Some(WrapMode::KeyWrapPadding);
    let p5649 = KmipProvider::new(padded).unwrap();
    let blob5649 = p5649.wrap(&key_id, &kek, deadline()).unwrap();
    assert_eq!(blob5649[0], 0x03);
    assert_eq!(
        p.unwrap(&key_id, &blob5649, deadline()).unwrap().expose(),
        kek.expose()
    );
    assert_eq!(
        p5649.unwrap(&key_id, &blob, deadline()).unwrap().expose(),
        kek.expose()
    );

    // Pinned GCM on this server: refused at start, naming the mode.
    let mut gcm = config(&pki, &server, "kube-kms", "client");
    gcm.mode = Some(WrapMode::Gcm);
    match KmipProvider::new(gcm).unwrap().probe_at_start(deadline()) {
        ProbeOutcome::Refused(why) => assert!(why.contains("AES-GCM"), "{why}"),
        ProbeOutcome::Ready(id) => panic!("GCM wrapped under {id}"),
        ProbeOutcome::NotReady(e) => panic!("{e:?}"),
    }
}

/// Replaces `to` with a copy of `from` the way renewals do (write aside, rename over).
fn replace_file(from: &std::path::Path, to: &std::path::Path) {
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

#[test]
fn renewed_client_certificates_are_picked_up_without_a_restart() {
    let mut s = setup("kmip-renewal");
    s.admin.create("kube-kms");
    let (cert, key) = (s.pki.path("live.pem"), s.pki.path("live.key"));
    replace_file(&s.pki.path("client.pem"), &cert);
    replace_file(&s.pki.path("client.key"), &key);
    let mut config = config(&s.pki, &s.server, "kube-kms", "client");
    config.client_cert = cert.clone();
    config.client_key = key.clone();
    let p = KmipProvider::new(config).unwrap();
    let key_id = p.status(deadline()).unwrap();

    // Half-way through a renewal (new certificate, old key) the previous pair stays in use.
    replace_file(&s.pki.path("rogue.pem"), &cert);
    assert_eq!(p.status(deadline()).unwrap(), key_id);
    // The renewal completes with a certificate the server does not trust: auth, no restart.
    replace_file(&s.pki.path("rogue.key"), &key);
    let err = p.status(deadline()).err().unwrap();
    assert_eq!(err.kind, RemoteErrorKind::Auth, "{err:?}");
    // And back to a good one.
    replace_file(&s.pki.path("client.pem"), &cert);
    replace_file(&s.pki.path("client.key"), &key);
    assert_eq!(p.status(deadline()).unwrap(), key_id);
}

#[test]
fn a_hung_server_is_a_timeout_by_the_deadline() {
    // A listener that never accepts: the TCP handshake completes (backlog), TLS never does.
    let dir = TempDir::new("kmip-hung");
    let pki = Pki::generate(&dir.0);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = KmipConfig {
        addr: listener.local_addr().unwrap().to_string(),
        key: "kube-kms".into(),
        client_cert: pki.path("client.pem"),
        client_key: pki.path("client.key"),
        ca_file: pki.path("ca.pem"),
        credential: None,
        mode: None,
    };
    let p = KmipProvider::new(config).unwrap();
    let started = Instant::now();
    let err = p
        .status(Instant::now() + Duration::from_millis(300))
        .err()
        .unwrap();
    assert_eq!(err.kind, RemoteErrorKind::Timeout, "{err:?}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "gave up after {took:?}");
}

#[test]
fn bad_configuration_names_the_flag_and_file() {
    let dir = TempDir::new("kmip-config");
    let pki = Pki::generate(&dir.0);
    let base = || KmipConfig {
        addr: "127.0.0.1:5696".into(),
        key: "kube-kms".into(),
        client_cert: pki.path("client.pem"),
        client_key: pki.path("client.key"),
        ca_file: pki.path("ca.pem"),
        credential: None,
        mode: None,
    };
    assert!(KmipProvider::new(base()).is_ok());
    let cases: [(KmipConfig, &str); 5] = [
        (
            KmipConfig {
                addr: "https://h:5696".into(),
                ..base()
            },
            "--kmip-addr",
        ),
        (
            KmipConfig {
                ca_file: pki.path("missing.pem"),
                ..base()
            },
            "--ca-file",
        ),
        (
            KmipConfig {
                client_cert: pki.path("client.key"),
                ..base()
            },
            "--kmip-client-cert",
        ),
        (
            KmipConfig {
                client_key: pki.path("ca.pem"),
                ..base()
            },
            "--kmip-client-key",
        ),
        (
            KmipConfig {
                client_key: pki.path("other.key"),
                ..base()
            },
            "--kmip-client-key",
        ),
    ];
    for (config, flag) in cases {
        let err = KmipProvider::new(config).err().unwrap();
        assert!(err.contains(flag), "{flag}: {err}");
    }
}
