//! The entry type: one [`Plugin`] per listening socket. (Filled in by the KMS service work.)

/// Identifies one accepted connection; never reused within a `Plugin`'s lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// The sans-IO KMS plugin. See the crate docs for the loop contract.
pub struct Plugin {
    _private: (),
}
