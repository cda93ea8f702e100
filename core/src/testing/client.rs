//! In-memory HTTP/2 + gRPC test client built from the core's own frame and HPACK encoders.
