//! Benchmarks for kms-plugin (see benches/).
