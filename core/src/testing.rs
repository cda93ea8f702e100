//! Test support: an in-memory HTTP/2 + gRPC client and helpers for deterministic simulations.
