//! Start-up tuning of the mimalloc allocator both binaries use.

/// mimalloc gives freed memory back to the OS after 10 ms by default. Sluice's binaries free and
/// allocate hundreds of MB per second, so the kernel zeroed the same pages over and over: 20% of
/// the sink's CPU in the MySQL bench, 4.8-5.8 µs of CPU per event in the no-op sink instead of
/// 3.3-3.7 µs with a 1 s delay (docs/performance.md; for the capture the gain is not
/// established). mimalloc reads its options from the environment only when the process
/// starts (and its setter is `unsafe` FFI), so this runs the same binary again, once, with
/// `MIMALLOC_PURGE_DELAY=1000`: same pid, same arguments, same `argv[0]`. Call it first thing in
/// `main`, before any thread starts. A value the user set is left alone; if the exec fails, the
/// process runs on with mimalloc's default.
pub fn keep_freed_memory_a_while() {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        const VAR: &str = "MIMALLOC_PURGE_DELAY";
        if std::env::var_os(VAR).is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let mut cmd = std::process::Command::new(exe);
        if let Some(arg0) = args.next() {
            cmd.arg0(arg0);
        }
        // Returns only when the exec failed.
        let _ = cmd.args(args).env(VAR, "1000").exec();
    }
}
