//! Mapping rules (see issue: sink runtime). Pure: no I/O.
