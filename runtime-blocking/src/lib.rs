//! kms-plugin runtime (blocking).
