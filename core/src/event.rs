//! Observability events: what happened, in the past tense. Never holds secrets.

/// Something the plugin did or saw, for logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {}
