//! End-to-end tests: capture.
