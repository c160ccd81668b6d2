//! Daily index files, legal holds and retention.
