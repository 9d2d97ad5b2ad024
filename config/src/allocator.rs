//! Start-up tuning of the mimalloc allocator both binaries use.

/// mimalloc (v3, as libmimalloc-sys builds it) gives freed memory back to the OS once it has been
/// unused for 1 s. Sluice's binaries free and allocate hundreds of MB per second, and every page
/// given back is zeroed by the kernel when it is touched again: `clear_page_erms` was 18-22% of
/// the sink's samples in the MySQL benchmark. A 10 s delay gave back less: per 1M events the sink
/// used 7.2 s of CPU instead of 7.3-7.4 s with the MySQL target and 4.6-4.8 s instead of
/// 4.9-5.3 s with Redis, at the same peak RSS (docs/performance.md). mimalloc reads its options
/// from the environment only when the process starts (and its setter is `unsafe` FFI), so this
/// runs the same binary again, once, with `MIMALLOC_PURGE_DELAY=10000`: same pid, same
/// arguments, same `argv[0]`. Call it first thing in `main`, before any thread starts. A value
/// the user set is left alone; if the exec fails, the process runs on with mimalloc's default.
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
        let _ = cmd.args(args).env(VAR, "10000").exec();
    }
}
