//! A fleet file: many source instances served by any number of identical workers
//! (docs/fleet.md). It has a `[fleet]` section; its other top-level tables (`kafka`,
//! `publish`, `checkpoint`, `filter`, `log`, `metrics`, ...) are defaults every instance starts
//! from; the instances are `[[instances]]` tables, or one capture config file each in
//! `fleet.instances_dir`. An instance's own settings win over the defaults, table by table.

use super::CaptureConfig;
use serde::Deserialize;
use sluice_config::{ConfigError, KafkaConfig, LogConfig, MetricsConfig, Problems, Validate};
use std::path::{Path, PathBuf};

/// Default `fleet.session_timeout_ms`: a dead worker's instances move after about this long.
/// Apache Kafka's lowest allowed session timeout (`group.min.session.timeout.ms`) by default.
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 6_000;

/// The `[fleet]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    /// The fleet's name: its consumer group is `sluice-fleet.<name>`, its control topic
    /// `sluice.fleet.<name>` unless `control_topic` says otherwise.
    pub name: String,
    /// This worker's name in logs and checkpoints (default `<host>-<pid>`).
    #[serde(default)]
    pub worker: Option<String>,
    /// The topic whose partitions stand for the instances (partition i = the i-th instance by
    /// name). Created with one partition per instance when missing.
    #[serde(default)]
    pub control_topic: Option<String>,
    /// A worker that stops heart-beating for this long loses its instances.
    #[serde(default = "default_session_timeout")]
    pub session_timeout_ms: u64,
    /// A folder of instance files (`*.toml`, each a capture config without what the defaults
    /// give), relative to the fleet file.
    #[serde(default)]
    pub instances_dir: Option<PathBuf>,
}

/// What a worker runs: the fleet's settings and every instance's whole capture config.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub name: String,
    pub worker: String,
    pub control_topic: String,
    pub session_timeout_ms: u64,
    /// The control group's connection (the defaults' `[kafka]`).
    pub kafka: KafkaConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    /// Sorted by instance name: the i-th owns control partition i.
    pub instances: Vec<CaptureConfig>,
}

/// The parts of the fleet file besides the instances, checked on their own.
#[derive(Deserialize)]
struct Head {
    fleet: FleetSection,
    kafka: KafkaConfig,
    #[serde(default)]
    metrics: MetricsConfig,
    #[serde(default)]
    log: LogConfig,
}

/// Whether the config file at `path` is a fleet file (has a `[fleet]` table).
pub fn is_fleet(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key("fleet"))
}

/// Reads a fleet file and its instances (with `${ENV}` references interpolated), merges the
/// defaults into each instance, and validates everything, reporting every problem at once.
pub fn load(path: &Path) -> Result<FleetConfig, ConfigError> {
    let (head, instances, mut problems) = read(path)?;
    let mut instances: Vec<(String, CaptureConfig)> =
        instances.into_iter().map(|i| (i.at, i.cfg)).collect();
    validate(&head, &mut instances, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        });
    }
    let mut instances: Vec<CaptureConfig> = instances.into_iter().map(|(_, c)| c).collect();
    instances.sort_by(|a, b| a.instance.cmp(&b.instance));
    let name = head.fleet.name.clone();
    Ok(FleetConfig {
        worker: head
            .fleet
            .worker
            .clone()
            .unwrap_or_else(|| format!("{}-{}", super::host_name(), std::process::id())),
        control_topic: head
            .fleet
            .control_topic
            .clone()
            .unwrap_or_else(|| format!("sluice.fleet.{name}")),
        session_timeout_ms: head.fleet.session_timeout_ms,
        kafka: head.kafka,
        metrics: head.metrics,
        log: head.log,
        instances,
        name,
    })
}

/// The instance `name`'s merged settings as the fleet file gives them now, as text (`None`
/// when the file does not load or no longer lists it): what a running instance compares to
/// notice an edit.
pub fn instance_text(path: &Path, name: &str) -> Option<String> {
    let (_, instances, _) = read(path).ok()?;
    instances
        .into_iter()
        .find(|i| i.cfg.instance == name)
        .map(|i| i.text)
}

/// One instance as read: where it is written, its config, and its merged settings as text.
struct Read {
    at: String,
    cfg: CaptureConfig,
    text: String,
}

/// The fleet file's own part and its instances, merged with the defaults but not validated;
/// instances that do not parse are problems.
fn read(path: &Path) -> Result<(Head, Vec<Read>, Problems), ConfigError> {
    let env = |name: &str| std::env::var(name).ok();
    let mut table = read_table(path, &env)?;
    let head: Head = toml::Value::Table(table.clone())
        .try_into()
        .map_err(|e: toml::de::Error| parse_error(path, e))?;
    let inline = match table.remove("instances") {
        None => Vec::new(),
        Some(toml::Value::Array(list)) => list,
        Some(_) => {
            return Err(invalid(
                path,
                "instances",
                "write the instances as [[instances]] tables",
            ));
        }
    };
    table.remove("fleet");
    let defaults = table;
    let mut problems = Problems::default();
    let mut instances = Vec::new();
    let mut add = |at: String, own: toml::Table, problems: &mut Problems| {
        let merged = merge(defaults.clone(), own);
        let text = merged.to_string();
        match toml::Value::Table(merged).try_into::<CaptureConfig>() {
            Ok(cfg) => instances.push(Read { at, cfg, text }),
            Err(e) => problems.add(at, e.to_string().trim_end()),
        }
    };
    for (i, value) in inline.into_iter().enumerate() {
        match value {
            toml::Value::Table(own) => add(format!("instances[{i}]"), own, &mut problems),
            _ => problems.add(format!("instances[{i}]"), "must be a table"),
        }
    }
    if let Some(dir) = &head.fleet.instances_dir {
        let dir = path.parent().unwrap_or(Path::new(".")).join(dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|cause| ConfigError::Read {
                path: dir.clone(),
                cause,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for file in files {
            let own = read_table(&file, &env)?;
            add(file.display().to_string(), own, &mut problems);
        }
    }
    Ok((head, instances, problems))
}

fn validate(head: &Head, instances: &mut [(String, CaptureConfig)], p: &mut Problems) {
    let f = &head.fleet;
    if f.name.is_empty()
        || !f
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        p.add(
            "fleet.name",
            "use letters, digits, `-`, `_` or `.` (it names a consumer group and a topic)",
        );
    }
    if f.worker
        .as_deref()
        .is_some_and(|w| w.is_empty() || w.contains('/'))
    {
        p.add("fleet.worker", "must be non-empty and without `/`");
    }
    if !(1_000..=300_000).contains(&f.session_timeout_ms) {
        p.add(
            "fleet.session_timeout_ms",
            "must be between 1000 and 300000 (and within the brokers' group.min/max.session.timeout.ms)",
        );
    }
    head.kafka.validate("kafka", p);
    if instances.is_empty() {
        p.add(
            "instances",
            "the fleet has no instances: add [[instances]] tables or set fleet.instances_dir",
        );
    }
    let mut seen: std::collections::BTreeMap<String, String> = Default::default();
    for (at, cfg) in instances.iter_mut() {
        cfg.publish.transactional = true;
        cfg.checkpoint.kafka = true;
        let mut own = Problems::default();
        cfg.validate(&mut own);
        for problem in own.iter() {
            p.add(format!("{at}.{}", problem.path), problem.message.clone());
        }
        if let Some(first) = seen.insert(cfg.instance.clone(), at.clone()) {
            p.add(
                format!("{at}.instance"),
                format!(
                    "instance `{}` is also {first}; every instance needs a name of its own",
                    cfg.instance
                ),
            );
        }
    }
}

fn read_table(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
        path: path.to_owned(),
        cause,
    })?;
    let text = sluice_config::interpolate_env(&text, env).map_err(|message| ConfigError::Env {
        path: path.to_owned(),
        message,
    })?;
    text.parse::<toml::Table>()
        .map_err(|e| parse_error(path, e))
}

fn parse_error(path: &Path, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    }
}

fn invalid(path: &Path, at: &str, message: &str) -> ConfigError {
    let mut problems = Problems::default();
    problems.add(at, message);
    ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    }
}

/// `own` over `defaults`: tables merge key by key, anything else in `own` replaces.
fn merge(mut defaults: toml::Table, own: toml::Table) -> toml::Table {
    for (key, value) in own {
        match (defaults.remove(&key), value) {
            (Some(toml::Value::Table(d)), toml::Value::Table(o)) => {
                defaults.insert(key, toml::Value::Table(merge(d, o)));
            }
            (_, v) => {
                defaults.insert(key, v);
            }
        }
    }
    defaults
}

fn default_session_timeout() -> u64 {
    DEFAULT_SESSION_TIMEOUT_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("sluice-fleet-{name}-{}", std::process::id()))
    }

    #[test]
    fn instances_inline_and_in_a_folder_take_the_defaults() {
        let dir = temp("load");
        write(
            &dir.join("instances"),
            "b.toml",
            "instance = \"b\"\n[source]\nurl = \"mysql://u@b:3306\"\n[publish]\ntopic = \"b.{table}\"\n",
        );
        let path = write(
            &dir,
            "fleet.toml",
            "[fleet]\nname = \"main\"\nworker = \"w1\"\ninstances_dir = \"instances\"\n\
             [kafka]\nbrokers = [\"k:9092\"]\n[publish]\ncompression = \"zstd\"\n\
             [[instances]]\ninstance = \"a\"\n[instances.source]\nurl = \"mysql://u@a:3306\"\n",
        );
        let fleet = load(&path).unwrap();
        assert_eq!(fleet.control_topic, "sluice.fleet.main");
        assert_eq!(fleet.worker, "w1");
        let names: Vec<&str> = fleet
            .instances
            .iter()
            .map(|c| c.instance.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        for c in &fleet.instances {
            assert_eq!(
                c.publish.compression, "zstd",
                "defaults reach {}",
                c.instance
            );
            assert_eq!(c.kafka.brokers, ["k:9092"]);
            assert!(c.publish.transactional && c.checkpoint.kafka);
        }
        assert_eq!(fleet.instances[1].publish.topic, "b.{table}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_example_fleet_loads() {
        std::env::set_var("MYSQL_PASSWORD", "x");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/fleet.toml");
        assert!(is_fleet(&path));
        let fleet = load(&path).unwrap();
        assert_eq!(fleet.name, "shop");
        assert_eq!(fleet.control_topic, "sluice.fleet.shop");
        let names: Vec<&str> = fleet
            .instances
            .iter()
            .map(|c| c.instance.as_str())
            .collect();
        assert_eq!(names, ["shop-archive", "shop-main"]);
        assert_eq!(fleet.instances[1].source.server_id, 4242);
        assert!(!is_fleet(&path.with_file_name("capture.toml")));
    }

    #[test]
    fn the_same_instance_twice_is_refused_with_both_places() {
        let dir = temp("dup");
        let path = write(
            &dir,
            "fleet.toml",
            "[fleet]\nname = \"main\"\n[kafka]\nbrokers = [\"k:9092\"]\n\
             [[instances]]\ninstance = \"a\"\n[instances.source]\nurl = \"mysql://u@a:3306\"\n\
             [[instances]]\ninstance = \"a\"\n[instances.source]\nurl = \"http://x\"\n",
        );
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("instances[1].instance: instance `a` is also instances[0]"),
            "{err}"
        );
        assert!(err.contains("instances[1].source.url"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(is_fleet(&path) || !path.exists());
    }
}
