//! The config loader: any text as a capture config and as a sink config (with `${ENV}`
//! references), then validation; errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| (name.len() < 8).then(|| "x".to_owned());
    let _ = sluice_config::parse::<sluice_capture::config::CaptureConfig>(
        text,
        Path::new("capture.toml"),
        env,
    );
    let _ =
        sluice_config::parse::<sluice_sinks::config::SinkConfig>(text, Path::new("sink.toml"), env);
});
