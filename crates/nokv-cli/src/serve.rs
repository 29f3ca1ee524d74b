//! `nokv-fs serve`: opens the volume embedded and hands it to
//! `nokv-server`. Prints exactly one line on stdout once the ports are
//! bound (`listening on http://…`), so scripts can start it on port 0.

use std::path::PathBuf;

use anyhow::Result;
use nokv_client::Error;
use nokv_meta::{OpenOptions, Volume};
use nokv_server::{ServeOptions, Server};

use crate::cli::{DurabilityArg, Global, ServeArgs};
use crate::commands::{client_options, embedded_only};

pub async fn serve(global: &Global, args: ServeArgs, home: PathBuf) -> Result<()> {
    embedded_only(global, "serve")?;
    let token = match (args.no_auth, &global.token) {
        (true, Some(_)) => {
            return Err(Error::InvalidArgument("--no-auth and --token contradict".into()).into())
        }
        (true, None) => None,
        (false, Some(t)) => Some(t.clone()),
        (false, None) => {
            let h = home.clone();
            Some(tokio::task::spawn_blocking(move || nokv_meta::volume_token(&h)).await??)
        }
    };
    // Handlers first: a SIGTERM right after the line below is printed
    // must shut down cleanly, not kill the process.
    let stop = nokv_server::shutdown_signal()?;
    let open = OpenOptions {
        durability: match global.durability {
            DurabilityArg::Sync => nokv_meta::Durability::Sync,
            DurabilityArg::Async => nokv_meta::Durability::Async,
        },
        ..OpenOptions::default()
    };
    let vol = tokio::task::spawn_blocking(move || Volume::open(&home, open)).await??;
    if args.gc_interval > 0 {
        let every = std::time::Duration::from_secs(args.gc_interval);
        let mut opts = client_options(global);
        opts.gc_grace = std::time::Duration::from_secs(args.gc_grace);
        match nokv_client::Client::embedded(vol.clone(), opts) {
            Ok(client) => {
                tokio::spawn(client.gc_worker(every));
            }
            Err(e) => tracing::warn!("background GC disabled: cannot open the object store: {e}"),
        }
    }
    let opts = ServeOptions {
        listen: args.listen,
        http_listen: (!args.no_http).then_some(args.http_listen),
        token,
        max_message_bytes: args.max_message_bytes,
        max_batch_ops: args.max_batch_ops,
        ..ServeOptions::default()
    };
    let server = Server::bind(vol, opts).await?;
    match server.http_addr() {
        Some(h) => println!(
            "listening on {} (health and metrics on http://{h})",
            server.url()
        ),
        None => println!("listening on {}", server.url()),
    }
    server.run(stop).await?;
    Ok(())
}
