//! MariaDB connections, with the URL's password kept out of messages.

use anyhow::Context as _;
use sqlx::mysql::MySqlConnection;
use sqlx::Connection as _;

/// Connects to `url`; the error names the URL without its password.
pub async fn connect(url: &str) -> anyhow::Result<MySqlConnection> {
    MySqlConnection::connect(url)
        .await
        .with_context(|| format!("connect to {}", redact(url)))
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
