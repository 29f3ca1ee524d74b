//! `nokv-fs mount`: opens the volume (embedded, or through `--server`)
//! and serves it with FUSE in the foreground. Prints one line on stdout
//! once the mount is live (`mounted … at …`), so scripts can wait for it.
//! SIGTERM/SIGINT publish every open file, then unmount.

use std::time::Duration;

use anyhow::Result;
use nokv_client::Error;
use nokv_fuse::{FsOptions, MountOptions};

use crate::cli::{Global, MountArgs};
use crate::commands::{client_options, open};

/// How long a mount's reader lease outlives its last renewal.
const READER_LEASE_TTL: Duration = Duration::from_secs(600);

pub async fn mount(global: &Global, args: MountArgs) -> Result<()> {
    // Checks before opening anything: a bad mountpoint must not leave a
    // volume lock or a server connection behind, and must say why.
    nokv_fuse::check_fuse_available()?;
    nokv_fuse::check_mountpoint(&args.mountpoint)?;
    let remote = global.server_url().is_some();
    let ttl = args.attr_ttl.unwrap_or(if remote { 1.0 } else { 60.0 });
    if !(0.0..=86_400.0).contains(&ttl) {
        return Err(Error::InvalidArgument(format!(
            "--attr-ttl {ttl} is outside 0..=86400 seconds"
        ))
        .into());
    }
    // Handlers first: a signal right after the mount must unmount cleanly.
    let stop = nokv_server::shutdown_signal()?;
    let mut client_opts = client_options(global);
    client_opts.gc_grace = Duration::from_secs(args.gc_grace);
    let client = open(global, client_opts).await?;
    let info = client.info().await?;
    let opts = MountOptions {
        mountpoint: args.mountpoint.clone(),
        read_only: args.read_only || args.snapshot.is_some(),
        ttl: Duration::from_secs_f64(ttl),
        invalidate: remote,
        fs: FsOptions {
            read_only: args.read_only,
            spool_dir: args.spool_dir.unwrap_or_else(std::env::temp_dir),
            readahead_blocks: args.readahead_blocks,
            snapshot: args.snapshot.clone(),
            dir_cache: remote && !args.no_dir_cache,
            dir_attr_max_age: Duration::from_secs_f64(ttl),
            reader_leases: (!args.no_reader_leases).then_some(READER_LEASE_TTL),
            async_close: args.async_close,
        },
        threads: args.threads,
        fsname: format!("nokv:{}", info.volume_id),
    };
    // An embedded mount holds the volume: it drains the GC queue itself
    // (the server does it for --server mounts).
    let gc = (!remote && args.gc_interval > 0).then(|| {
        tokio::spawn(
            client
                .clone()
                .gc_worker(Duration::from_secs(args.gc_interval)),
        )
    });
    let shown = args.mountpoint.display().to_string();
    let volume = info.volume_id.clone();
    let report = nokv_fuse::serve(client.clone(), opts, stop, move || {
        println!("mounted volume {volume} at {shown}");
    })
    .await;
    if let Some(gc) = gc {
        gc.abort();
    }
    let report = report?;
    if !remote {
        if let Err(e) = client.checkpoint().await {
            tracing::warn!("checkpoint after unmount: {e}");
        }
    }
    if report.unpublished > 0 {
        return Err(Error::Io(format!(
            "{} open file(s) could not be published before the unmount",
            report.unpublished
        ))
        .into());
    }
    Ok(())
}
