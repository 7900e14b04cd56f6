//! `eddy serve --registry`: the current version of every model in a registry, without training.
//! Promotions and rollbacks (over HTTP or by `eddy model`) take effect within a second.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eddy_models::server::{BoundServer, Served, ServerOptions};
use eddy_models::{ModelHandle, Registry};
use prometheus_client::registry::Registry as MetricsRegistry;

use crate::error::{Result, RuntimeError};
use crate::pipeline::{ServingFn, StopHandle};

const WATCH_EVERY: Duration = Duration::from_secs(1);

fn handle_for(registry: &Registry, name: &str) -> Result<Option<(ModelHandle, u64)>> {
    let Some(artifact) = registry.load_current(name)? else {
        return Ok(None);
    };
    let spec = Arc::new(artifact.spec()?);
    let version = artifact.meta.version;
    Ok(Some((
        ModelHandle::new(artifact.model.snapshot_as(spec, version)),
        version,
    )))
}

/// Serves until `stop` is triggered.
pub async fn serve_registry(
    root: &Path,
    options: &ServerOptions,
    stop: StopHandle,
    on_serving: Option<ServingFn>,
) -> Result<()> {
    let registry = Registry::open(root)?;
    let mut handles = BTreeMap::new();
    for name in registry.names()? {
        if let Some((handle, version)) = handle_for(&registry, &name)? {
            tracing::info!(model = %name, version, "serving");
            handles.insert(name, (handle, version));
        }
    }
    if handles.is_empty() {
        return Err(RuntimeError::Input {
            path: root.to_path_buf(),
            message: "the registry has no model with a current version; export one first".into(),
        });
    }
    let served = Served {
        models: handles.values().map(|(h, _)| h.clone()).collect(),
        learn: BTreeMap::new(),
        registry: Some(registry.clone()),
        dead_letters: None,
        latest: BTreeMap::new(),
        demand: None,
    };
    let server = BoundServer::bind(options, served, MetricsRegistry::default()).await?;
    let addr = server.local_addr()?;
    if let Some(on_serving) = on_serving {
        on_serving(addr, &handles.keys().cloned().collect::<Vec<_>>().join(","));
    }
    let watcher_stop = stop.clone();
    let watcher = tokio::spawn(async move {
        let mut published: BTreeMap<String, u64> =
            handles.iter().map(|(n, (_, v))| (n.clone(), *v)).collect();
        while !watcher_stop.is_stopped() {
            tokio::time::sleep(WATCH_EVERY).await;
            for (name, (handle, _)) in &handles {
                let current = match registry.current(name) {
                    Ok(Some(v)) => v,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(model = %name, error = %e, "reading the registry");
                        continue;
                    }
                };
                if published.get(name) == Some(&current) {
                    continue;
                }
                match handle_for(&registry, name) {
                    Ok(Some((fresh, version))) => {
                        handle.publish((*fresh.load()).clone());
                        published.insert(name.clone(), version);
                        tracing::info!(model = %name, version, "now serving");
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(model = %name, error = %e, "the current version does not load; still serving the previous one")
                    }
                }
            }
        }
    });
    let result = server.serve(async move { stop.stopped().await }).await;
    watcher.abort();
    Ok(result?)
}
