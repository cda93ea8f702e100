//! Deterministic simulation harness: a Plugin, a virtual clock and a fake remote KEK.
