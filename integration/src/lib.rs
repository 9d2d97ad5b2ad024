//! Helpers shared by the end-to-end tests: where the local services are, unique names.
