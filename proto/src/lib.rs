//! Kubernetes KMS v1beta1 and v2 protobuf messages.
#![no_std]
#![forbid(unsafe_code)]
