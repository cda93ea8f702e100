//! Pure parts of the remote KEK providers (request builders, response parsers, key ids) and
//! the resilience state machines (retry schedule, circuit breaker) every remote provider shares.
//!
//! Nothing here does IO or reads a clock: the runtimes' provider adapters perform the HTTP or
//! PKCS#11 calls and pass `now` in. See `docs/providers.md` for the operator's view.

pub mod kmip;
pub mod resilience;
pub mod vault;

/// Lower-case hex of `bytes` (for non-secret digests in key ids).
pub(crate) fn hex_lower(bytes: &[u8]) -> alloc::string::String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = alloc::string::String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}
