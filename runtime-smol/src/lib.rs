//! kms-plugin runtime (smol).
