//! Annotation keys and limits of KMS v2 (lowercase FQDN keys, <= 32 KiB in total).
