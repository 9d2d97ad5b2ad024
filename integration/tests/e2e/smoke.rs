//! End-to-end tests: smoke.
