//! `sluice-sink verify`: compares source and replica tables chunk by chunk.
