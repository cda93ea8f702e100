//! Every limit and interval of the core, validated once in `Plugin::new`.

/// The plugin's configuration. (Fields are added by the transport and KMS service work.)
#[derive(Clone, Debug, Default)]
pub struct Config {}
