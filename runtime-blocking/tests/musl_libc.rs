//! The static musl build really uses kms-plugin-musl's `memcpy`/`memmove`/`memcmp`/`bcmp`
//! (runtime-blocking/musl):
//! the C symbols this test binary links against are the crate's functions, not musl's.
//! Runs only when the tests are built for musl x86_64 (`.ci/test` does, for the static binary).
#![cfg(all(target_arch = "x86_64", target_env = "musl"))]
#![allow(unsafe_code)]

unsafe extern "C" {
    fn memcpy(dest: *mut u8, src: *const u8, len: usize) -> *mut u8;
    fn memmove(dest: *mut u8, src: *const u8, len: usize) -> *mut u8;
    fn memcmp(a: *const u8, b: *const u8, len: usize) -> i32;
    fn bcmp(a: *const u8, b: *const u8, len: usize) -> i32;
}

type Copy = unsafe extern "C" fn(*mut u8, *const u8, usize) -> *mut u8;

#[test]
fn memcpy_memmove_memcmp_and_bcmp_are_the_replacements() {
    let linked: [Copy; 2] = [memcpy, memmove];
    let ours: [Copy; 2] = [kms_plugin_musl::memcpy, kms_plugin_musl::memmove];
    assert_eq!(
        linked.map(|f| f as *const () as usize),
        ours.map(|f| f as *const () as usize),
        "libc's memcpy/memmove were linked instead of kms-plugin-musl's"
    );

    type Compare = unsafe extern "C" fn(*const u8, *const u8, usize) -> i32;
    let linked: [Compare; 2] = [memcmp, bcmp];
    let ours: [Compare; 2] = [kms_plugin_musl::memcmp, kms_plugin_musl::bcmp];
    assert_eq!(
        linked.map(|f| f as *const () as usize),
        ours.map(|f| f as *const () as usize),
        "libc's memcmp/bcmp were linked instead of kms-plugin-musl's"
    );

    let src: Vec<u8> = (0..=255).collect();
    let mut dest = vec![0u8; 256];
    // SAFETY: both buffers hold 256 bytes.
    unsafe { memcpy(dest.as_mut_ptr(), src.as_ptr(), 256) };
    assert_eq!(dest, src);
}
