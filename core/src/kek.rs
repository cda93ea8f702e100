//! Pure parts of the remote KEK providers (request builders, response parsers, key ids).
