//! The DBLog window: between a chunk's low and high watermark, every key the binlog changes in
//! the chunk's table is remembered; at the high watermark the chunk rows with those keys are
//! dropped (the binlog already carries a newer version of them), the rest are emitted.

use std::collections::HashSet;

/// Keys changed in one table while a chunk was being read.
#[derive(Debug, Clone, Default)]
pub struct Window {
    database: String,
    table: String,
    open: bool,
    changed: HashSet<Vec<u8>>,
}

impl Window {
    /// A closed window for `database.table`.
    pub fn new(database: &str, table: &str) -> Window {
        Window {
            database: database.to_owned(),
            table: table.to_owned(),
            open: false,
            changed: HashSet::new(),
        }
    }

    /// The low watermark passed: from now on changes count.
    pub fn open(&mut self) {
        self.open = true;
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Whether changes of `database.table` count now (so callers build keys only for those).
    pub fn wants(&self, database: &str, table: &str) -> bool {
        self.open && self.table == table && self.database == database
    }

    /// A binlog row change of `database.table` with Kafka key `key`.
    pub fn observe(&mut self, database: &str, table: &str, key: Vec<u8>) {
        if self.wants(database, table) {
            self.changed.insert(key);
        }
    }

    /// Keys seen changing so far.
    pub fn changed(&self) -> usize {
        self.changed.len()
    }

    /// The high watermark passed: the chunk rows to emit, with their index in the chunk.
    pub fn close<T>(self, rows: Vec<T>, key: impl Fn(&T) -> Vec<u8>) -> Vec<(usize, T)> {
        surviving(rows, &self.changed, key)
    }
}

/// Chunk rows whose `key` is not in `changed`, in chunk order, with their index. Keys are only
/// built when something changed in the window (the common case is that nothing did).
pub fn surviving<T>(
    rows: Vec<T>,
    changed: &HashSet<Vec<u8>>,
    key: impl Fn(&T) -> Vec<u8>,
) -> Vec<(usize, T)> {
    if changed.is_empty() {
        return rows.into_iter().enumerate().collect();
    }
    rows.into_iter()
        .enumerate()
        .filter(|(_, row)| !changed.contains(&key(row)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u32) -> Vec<u8> {
        format!("[\"d\",\"t\",{n}]").into_bytes()
    }

    #[test]
    fn surviving_rows_table() {
        // (chunk keys, changed keys, expected surviving (index, key))
        type Case<'a> = (&'a [u32], &'a [u32], &'a [(usize, u32)]);
        let cases: &[Case] = &[
            (&[1, 2, 3], &[], &[(0, 1), (1, 2), (2, 3)]),
            (&[1, 2, 3], &[2], &[(0, 1), (2, 3)]),
            (&[1, 2, 3], &[1, 2, 3], &[]),
            // Keys outside the chunk (inserted past its end, or before it) change nothing.
            (&[1, 2, 3], &[0, 4, 99], &[(0, 1), (1, 2), (2, 3)]),
            (&[], &[1], &[]),
            (&[5], &[5, 5], &[]),
        ];
        for (chunk, changed, want) in cases {
            let rows: Vec<u32> = chunk.to_vec();
            let changed: HashSet<Vec<u8>> = changed.iter().map(|n| k(*n)).collect();
            let got = surviving(rows, &changed, |n| k(*n));
            assert_eq!(&got, want, "chunk {chunk:?} changed {changed:?}");
        }
    }

    #[test]
    fn only_changes_inside_the_window_and_table_count() {
        let mut w = Window::new("d", "t");
        // Before the low watermark: the chunk SELECT sees the result, nothing to drop.
        w.observe("d", "t", k(1));
        assert_eq!(w.changed(), 0);
        w.open();
        assert!(w.is_open());
        w.observe("d", "t", k(2));
        // Another table with the same key bytes, another database: not this chunk.
        w.observe("d", "other", k(3));
        w.observe("x", "t", k(3));
        assert_eq!(w.changed(), 1);
        let rows = vec![(1, "a"), (2, "b"), (3, "c")];
        assert_eq!(
            w.close(rows, |r| k(r.0)),
            vec![(0, (1, "a")), (2, (3, "c"))]
        );
    }
}
