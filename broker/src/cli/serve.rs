//! `strata serve`: run the broker until SIGTERM or Ctrl-C, then flush and exit.

use std::process::ExitCode;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::config::{StrataConfig, describe_wal, store_config};
use crate::{observability, server};

pub async fn run(config: StrataConfig) -> ExitCode {
    let listen = config.broker.listen;
    let listener = match TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot listen on broker.listen = {listen}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let Some(metrics) = observability::install_recorder() else {
        eprintln!("error: a metrics recorder is already installed");
        return ExitCode::FAILURE;
    };
    let admin_addr = config.admin.listen;
    let admin = match TcpListener::bind(admin_addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot listen on admin.listen = {admin_addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let storage = config.storage.backend.kind().as_str();
    observability::register_zero_series(storage);
    let (set_ready, ready) = watch::channel(false);
    tokio::spawn(observability::serve_admin(admin, metrics.clone(), ready));
    let wal = describe_wal(&store_config(
        &config.broker.data_dir,
        &config.wal,
        &config.cache,
    ));
    let broker = match Broker::start(config).await {
        Ok(broker) => broker,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        %listen,
        advertised = %format!("{}:{}", broker.node.host, broker.node.port),
        node_id = broker.node.node_id,
        storage,
        %wal,
        "strata broker serving Kafka clients"
    );
    eprintln!(
        "strata: serving Kafka on {listen} (advertised as {}:{}); {storage} storage, {wal}; metrics on http://{admin_addr}/metrics",
        broker.node.host, broker.node.port
    );
    tokio::spawn(observability::run_collector(std::sync::Arc::downgrade(
        &broker,
    )));
    // Histograms are summarised on scrape; upkeep keeps memory bounded between scrapes.
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            metrics.run_upkeep();
        }
    });
    let _ = set_ready.send(true);
    let (stop, stopped) = watch::channel(false);
    let serving = tokio::spawn(server::serve(listener, broker.clone(), stopped));
    wait_for_signal().await;
    tracing::info!("shutting down: flushing acknowledged data to the object store");
    let _ = stop.send(true);
    let _ = serving.await;
    match broker.shutdown().await {
        Ok(()) => {
            tracing::info!("shutdown complete");
            ExitCode::SUCCESS
        }
        Err(err) => {
            // Nothing acknowledged is lost: the WAL still holds it for the next start.
            eprintln!("error: flush at shutdown failed (the WAL keeps the data): {err}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
