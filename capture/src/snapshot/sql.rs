//! The SQL a snapshot runs: chunk SELECTs by primary-key range, and the signalling table.
//! Pure string building, so the boundary conditions are unit-tested without a server.

/// Quotes an identifier with backticks (a backtick inside is doubled).
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `db`.`table`, quoted.
pub fn qualified(database: &str, table: &str) -> String {
    format!("{}.{}", ident(database), ident(table))
}

/// The SELECT of one chunk: `columns` of `database.table` in primary-key order, at most `limit`
/// rows, after the key given as `pk.len()` placeholders when `after_key` is set.
///
/// A composite key compares as a row constructor, `(a,b) > (?,?)`, which is exactly "after this
/// key" in `ORDER BY a,b`. The extra `a >= ?` on the leading column says the same thing in a
/// form every optimizer turns into an index range (MariaDB does not range-scan row
/// constructors), so a chunk never scans the rows before it. Placeholders, in order: the key
/// once for the leading-column bound, then the whole key.
pub fn chunk_select(
    database: &str,
    table: &str,
    columns: &[String],
    pk: &[String],
    after_key: bool,
    filter: Option<&str>,
    limit: usize,
) -> String {
    let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let keys: Vec<String> = pk.iter().map(|c| ident(c)).collect();
    let mut conds: Vec<String> = Vec::new();
    if after_key {
        if keys.len() == 1 {
            conds.push(format!("{} > ?", keys[0]));
        } else {
            let marks = vec!["?"; keys.len()].join(",");
            conds.push(format!("{} >= ?", keys[0]));
            conds.push(format!("({}) > ({marks})", keys.join(",")));
        }
    }
    if let Some(f) = filter.map(str::trim).filter(|f| !f.is_empty()) {
        conds.push(format!("({f})"));
    }
    let mut sql = format!(
        "SELECT {} FROM {}",
        cols.join(", "),
        qualified(database, table)
    );
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    sql.push_str(&format!(" ORDER BY {} LIMIT {limit}", keys.join(", ")));
    sql
}

/// How many placeholders [`chunk_select`] uses for a key of `pk_len` columns.
pub fn chunk_params(pk_len: usize) -> usize {
    match pk_len {
        1 => 1,
        n => n + 1,
    }
}

/// Creates the signalling table (and its database) if missing.
pub fn create_signal_table(database: &str, table: &str) -> [String; 2] {
    [
        format!("CREATE DATABASE IF NOT EXISTS {}", ident(database)),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\
             id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             instance VARCHAR(190) NOT NULL, \
             kind VARCHAR(16) NOT NULL, \
             chunk VARCHAR(64) NOT NULL DEFAULT '', \
             nrows BIGINT NOT NULL DEFAULT 0, \
             payload TEXT NULL, \
             created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)\
             ) ENGINE=InnoDB COMMENT='Sluice snapshot watermarks and requests (docs/snapshots.md)'",
            qualified(database, table)
        ),
    ]
}

/// Inserts one signal row: instance, kind, chunk, nrows, payload.
pub fn insert_signal(database: &str, table: &str) -> String {
    format!(
        "INSERT INTO {} (instance, kind, chunk, nrows, payload) VALUES (?, ?, ?, ?, ?)",
        qualified(database, table)
    )
}

/// Removes this instance's watermark rows up to an id (requests stay for the record).
pub fn prune_signals(database: &str, table: &str) -> String {
    format!(
        "DELETE FROM {} WHERE instance = ? AND kind IN ('low','high') AND id <= ?",
        qualified(database, table)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn chunk_boundaries() {
        let cols = s(&["id", "name"]);
        let cases: &[(&[&str], bool, Option<&str>, &str)] = &[
            (
                &["id"],
                false,
                None,
                "SELECT `id`, `name` FROM `shop`.`orders` ORDER BY `id` LIMIT 100",
            ),
            (
                &["id"],
                true,
                None,
                "SELECT `id`, `name` FROM `shop`.`orders` WHERE `id` > ? ORDER BY `id` LIMIT 100",
            ),
            (
                &["tenant", "id"],
                false,
                None,
                "SELECT `id`, `name` FROM `shop`.`orders` ORDER BY `tenant`, `id` LIMIT 100",
            ),
            (
                &["tenant", "id"],
                true,
                None,
                "SELECT `id`, `name` FROM `shop`.`orders` WHERE `tenant` >= ? AND (`tenant`,`id`) > (?,?) ORDER BY `tenant`, `id` LIMIT 100",
            ),
            (
                &["a", "b", "c"],
                true,
                Some(" created_at >= '2026-01-01' "),
                "SELECT `id`, `name` FROM `shop`.`orders` WHERE `a` >= ? AND (`a`,`b`,`c`) > (?,?,?) AND (created_at >= '2026-01-01') ORDER BY `a`, `b`, `c` LIMIT 100",
            ),
            (
                &["id"],
                false,
                Some("x = 1 OR y = 2"),
                "SELECT `id`, `name` FROM `shop`.`orders` WHERE (x = 1 OR y = 2) ORDER BY `id` LIMIT 100",
            ),
            (
                &["id"],
                false,
                Some("  "),
                "SELECT `id`, `name` FROM `shop`.`orders` ORDER BY `id` LIMIT 100",
            ),
        ];
        for (pk, after, filter, want) in cases {
            let got = chunk_select("shop", "orders", &cols, &s(pk), *after, *filter, 100);
            assert_eq!(&got, want, "pk={pk:?} after={after}");
            let marks = got.matches('?').count();
            assert_eq!(marks, if *after { chunk_params(pk.len()) } else { 0 });
        }
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("we`ird"), "`we``ird`");
        assert_eq!(qualified("a b", "c"), "`a b`.`c`");
        assert!(insert_signal("sluice", "sig").starts_with("INSERT INTO `sluice`.`sig` "));
    }
}
