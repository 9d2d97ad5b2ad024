//! The configured checkpoint stores as one: the file store, and with `checkpoint.kafka` the
//! compacted topic. `run` and `migrate` load through here, and `migrate` writes through here.

use crate::checkpoint::{Checkpoint, FileStore};
use crate::clients;
use crate::config::CaptureConfig;
use crate::error::CaptureError;
use crate::kafka_store::KafkaStore;

/// The file store and, with `checkpoint.kafka = true`, the Kafka store of an instance.
pub fn stores(cfg: &CaptureConfig) -> (FileStore, Option<KafkaStore>) {
    let file = FileStore::new(&cfg.checkpoint.dir, &cfg.instance);
    let kafka = cfg.checkpoint.kafka.then(|| KafkaStore {
        topic: cfg.checkpoint.topic.clone(),
        instance: cfg.instance.clone(),
        client: clients::admin_config(cfg),
    });
    (file, kafka)
}

/// The instance's current checkpoint: the file store's, or the Kafka store's when that one was
/// saved later (another machine ran the instance since). Creates the checkpoint topic if it is
/// missing.
pub async fn load_newer(
    file: &FileStore,
    kafka: Option<&KafkaStore>,
) -> Result<Option<Checkpoint>, CaptureError> {
    let mut checkpoint = file.load()?;
    if let Some(k) = kafka {
        k.ensure_topic().await?;
        if let Some(remote) = k.load().await? {
            if checkpoint
                .as_ref()
                .is_none_or(|local| remote.saved_ms > local.saved_ms)
            {
                tracing::info!(file = %remote.file, pos = remote.pos, "using the newer checkpoint from {}", k.topic);
                checkpoint = Some(remote);
            }
        }
    }
    Ok(checkpoint)
}

/// [`load_newer`] of the stores `cfg` configures.
pub async fn load(cfg: &CaptureConfig) -> Result<Option<Checkpoint>, CaptureError> {
    let (file, kafka) = stores(cfg);
    load_newer(&file, kafka.as_ref()).await
}

/// Writes `cp` to every configured store, stamped with the current time so that it is the
/// newer one at the next start: the file first, then the topic (acknowledged).
pub async fn save_all(cfg: &CaptureConfig, cp: &Checkpoint) -> Result<Checkpoint, CaptureError> {
    let (file, kafka) = stores(cfg);
    let mut stamped = cp.clone();
    stamped.saved_ms = crate::clock::now_ms();
    file.save(&stamped)?;
    if let Some(k) = kafka {
        k.ensure_topic().await?;
        let producer = clients::producer(cfg)?;
        k.save(&producer.client, &stamped).await?;
    }
    Ok(stamped)
}
