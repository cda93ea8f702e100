//! Our SETTINGS_HEADER_TABLE_SIZE takes effect only when the peer acknowledges it
//! (RFC 9113 §6.5.3, RFC 7541 §4.2).

mod raw_peer;
use raw_peer::*;

/// GOOD's fields plus `x-a: b` inserted into the dynamic table (0x40: literal with incremental
/// indexing, new name) and then referenced as index 62.
fn block_using_dynamic_table(size_update: Option<u8>) -> Vec<u8> {
    let mut b = Vec::new();
    if let Some(u) = size_update {
        b.push(0x20 | u); // dynamic table size update (5-bit prefix)
    }
    b.extend(block(GOOD));
    b.extend([0x40, 3, b'x', b'-', b'a', 1, b'b']);
    b.push(0x80 | 0x3e);
    b
}

fn start(cfg: &TransportConfig) -> Peer {
    let mut p = Peer::connected(cfg);
    // `connected` acknowledged our SETTINGS; build a fresh peer that has not.
    p.conn = Connection::new(cfg, Timestamp::ZERO);
    let mut hello = PREFACE.to_vec();
    hello.extend(settings_frame(&[]));
    p.feed(&hello);
    p.frames.clear();
    p
}

#[test]
fn lower_table_size_binds_only_after_ack() {
    let cfg = TransportConfig {
        header_table_size: 0,
        ..TransportConfig::default()
    };
    let mut p = start(&cfg);
    // Before the ACK the peer may still use the default 4,096-octet table.
    let mut bytes = raw_frame(1, 0x4, 1, &block_using_dynamic_table(None));
    bytes.extend(raw_frame(0, 0x1, 1, &grpc_message(b"a")));
    p.feed(&bytes);
    assert_eq!(p.goaway(), None);
    assert_eq!(p.requests.len(), 1);
    // After the ACK the next block must start with a size update to at most 0.
    p.feed(&raw_frame(4, 1, 0, &[]));
    let mut blk = vec![0x20];
    blk.extend(block(GOOD));
    let mut bytes = raw_frame(1, 0x4, 3, &blk);
    bytes.extend(raw_frame(0, 0x1, 3, &grpc_message(b"b")));
    p.feed(&bytes);
    assert_eq!(p.goaway(), None);
    assert_eq!(p.requests.len(), 2);
}

#[test]
fn missing_size_update_after_ack_is_compression_error() {
    let cfg = TransportConfig {
        header_table_size: 0,
        ..TransportConfig::default()
    };
    let mut p = start(&cfg);
    p.feed(&raw_frame(1, 0x5, 1, &block_using_dynamic_table(None)));
    p.feed(&raw_frame(4, 1, 0, &[]));
    p.feed(&raw_frame(1, 0x5, 3, &block(GOOD)));
    assert_eq!(p.goaway(), Some(Reason::COMPRESSION_ERROR.0));
}

#[test]
fn default_table_size_is_unaffected_by_ack() {
    let mut p = start(&TransportConfig::default());
    p.feed(&raw_frame(4, 1, 0, &[]));
    let mut bytes = raw_frame(1, 0x4, 1, &block_using_dynamic_table(None));
    bytes.extend(raw_frame(0, 0x1, 1, &grpc_message(b"a")));
    bytes.extend(raw_frame(1, 0x4, 3, &[0x80 | 0x3e, 0x83, 0x86, 0x84]));
    p.feed(&bytes);
    assert_eq!(p.goaway(), None);
    assert_eq!(p.requests.len(), 1);
}
