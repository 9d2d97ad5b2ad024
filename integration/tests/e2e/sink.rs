//! End-to-end tests: sink.
