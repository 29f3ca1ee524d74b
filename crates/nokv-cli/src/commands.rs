//! Runs one parsed command against the volume. Thin: every behaviour
//! lives in the SDK (`nokv-client`) and below; this file only moves
//! bytes between the terminal, local files and the SDK, and prints.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use futures::StreamExt;
use nokv_client::{
    Client, ClientOptions, Durability, Error, FileKind, InitOptions, ObjectLocation, PutOptions,
    S3Location, SetAttr, StoreCredentials,
};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::cli::{Backend, Cli, Command, DurabilityArg, Global, InitArgs, PutArgs};
use crate::output;
use crate::progress;
use crate::view::View;

pub(crate) fn home_dir(global: &Global) -> Result<PathBuf> {
    if let Some(h) = &global.home {
        return Ok(h.clone());
    }
    let home =
        std::env::var_os("HOME").ok_or_else(|| anyhow!("no --home given and $HOME is not set"))?;
    Ok(PathBuf::from(home).join(".nokv"))
}

pub(crate) fn client_options(global: &Global) -> ClientOptions {
    let credentials = StoreCredentials {
        access_key_id: global.s3.s3_access_key_id.clone(),
        secret_access_key: global.s3.s3_secret_access_key.clone(),
        session_token: None,
    }
    .or_env();
    // SAFETY: getuid/getgid cannot fail and have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    ClientOptions {
        durability: match global.durability {
            DurabilityArg::Sync => Durability::Sync,
            DurabilityArg::Async => Durability::Async,
        },
        credentials,
        uid,
        gid,
        ..ClientOptions::default()
    }
}

/// The volume: through the metadata server with `--server`, else
/// embedded in this process.
pub(crate) async fn open(global: &Global, opts: ClientOptions) -> Result<Client> {
    if let Some(url) = global.server_url() {
        return Ok(Client::connect(url, global.token.as_deref(), opts).await?);
    }
    let home = home_dir(global)?;
    Ok(Client::open(&home, opts).await?)
}

/// Commands that create or serve a volume run where the volume lives.
pub(crate) fn embedded_only(global: &Global, command: &str) -> Result<()> {
    match global.server_url() {
        Some(url) => Err(Error::InvalidArgument(format!(
            "`{command}` works on a local volume home and does not take --server \
             (got {url}); run it on the server's machine without --server"
        ))
        .into()),
        None => Ok(()),
    }
}

fn parse_mode(s: &str) -> Result<u32> {
    let mode = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| Error::InvalidArgument(format!("mode {s:?} is not octal")))?;
    if mode > 0o7777 {
        return Err(Error::InvalidArgument(format!("mode {s:?} is above 7777")).into());
    }
    Ok(mode)
}

pub async fn run(cli: Cli) -> Result<()> {
    let global = &cli.global;
    match cli.command {
        Command::Init(args) => init(global, args).await,
        Command::Serve(args) => crate::serve::serve(global, args, home_dir(global)?).await,
        Command::Mount(args) => crate::mount::mount(global, args).await,
        Command::Put(args) => put(global, args).await,
        Command::Cat {
            snapshot,
            path,
            offset,
            length,
        } => cat(&view(global, &snapshot).await?, &path, offset, length).await,
        Command::Get {
            snapshot,
            path,
            file,
        } => get(&view(global, &snapshot).await?, &path, &file).await,
        Command::Ls {
            snapshot,
            long,
            json,
            path,
        } => ls(&view(global, &snapshot).await?, &path, long, json).await,
        Command::Stat {
            snapshot,
            json,
            path,
        } => stat(&view(global, &snapshot).await?, &path, json).await,
        Command::Snapshot(cmd) => crate::snapshot::run(global, cmd).await,
        Command::Mkdir { parents, path } => {
            let c = open(global, client_options(global)).await?;
            if parents {
                c.mkdir_all(&path, 0o755).await?;
            } else {
                c.mkdir(&path, 0o755).await?;
            }
            Ok(())
        }
        Command::Rm { recursive, path } => {
            let c = open(global, client_options(global)).await?;
            if recursive {
                c.remove_all(&path).await?;
            } else {
                c.remove(&path).await?;
            }
            Ok(())
        }
        Command::Rmdir { path } => {
            let c = open(global, client_options(global)).await?;
            Ok(c.remove_dir(&path).await?)
        }
        Command::Mv { replace, src, dst } => {
            let c = open(global, client_options(global)).await?;
            Ok(c.rename(&src, &dst, replace).await?)
        }
        Command::Ln {
            symbolic,
            target,
            path,
        } => {
            let c = open(global, client_options(global)).await?;
            if symbolic {
                c.symlink(&target, &path).await?;
            } else {
                c.link(&target, &path).await?;
            }
            Ok(())
        }
        Command::Readlink { path } => {
            let c = open(global, client_options(global)).await?;
            println!("{}", c.readlink(&path).await?);
            Ok(())
        }
        Command::Truncate { path, size } => {
            let c = open(global, client_options(global)).await?;
            c.truncate(&path, size).await?;
            Ok(())
        }
        Command::Chmod { mode, path } => {
            let mode = parse_mode(&mode)?;
            let c = open(global, client_options(global)).await?;
            c.set_attr(
                &path,
                SetAttr {
                    mode: Some(mode),
                    ..SetAttr::default()
                },
            )
            .await?;
            Ok(())
        }
        Command::Gc { json, grace } => {
            let mut opts = client_options(global);
            opts.gc_grace = std::time::Duration::from_secs(grace);
            let c = open(global, opts).await?;
            let report = c.gc().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for key in &report.deleted_keys {
                    println!("deleted {key}");
                }
                println!(
                    "gc: {} queued blocks deleted, {} expired uploads collected ({} blocks), {} history records pruned",
                    report.queued_blocks_deleted,
                    report.expired_uploads,
                    report.staged_blocks_deleted,
                    report.history_pruned
                );
                if report.grace_pending {
                    println!("gc: blocks unreachable for less than {grace} s were kept (--grace)");
                }
                if report.live_snapshots > 0 {
                    println!(
                        "gc: {} live snapshot(s): blocks they may read are kept until they retire",
                        report.live_snapshots
                    );
                }
            }
            Ok(())
        }
        Command::Watch {
            path,
            from,
            json,
            no_follow,
        } => watch(global, &path, from, json, no_follow).await,
        Command::Fsck {
            delete_leaked,
            json,
        } => fsck(global, delete_leaked, json).await,
        Command::Status { json } => {
            let c = open(global, client_options(global)).await?;
            let info = c.info().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("volume       {}", info.volume_id);
                println!("home         {}", info.home.display());
                println!("format       {}", info.format_version);
                println!("objects      {}", info.location.describe());
                println!("block size   {}", info.block_size);
                println!("commit       {}", info.commit_version);
                println!("snapshots    {}", c.snapshots().await?.len());
                match info.reader_leases_since {
                    Some(since) => println!(
                        "leases       {} reader lease(s): GC keeps blocks queued since {} UTC",
                        info.reader_leases,
                        output::time_string(since)
                    ),
                    None => println!("leases       none"),
                }
                println!("created      {} UTC", output::time_string(info.created));
            }
            Ok(())
        }
    }
}

async fn init(global: &Global, args: InitArgs) -> Result<()> {
    embedded_only(global, "init")?;
    let home = home_dir(global)?;
    let mut opts = client_options(global);
    let location = match args.object_backend {
        Backend::Local => {
            let root = match args.blocks_dir {
                Some(d) => d,
                None => home.join("blocks"),
            };
            let root = if root.is_absolute() {
                root
            } else {
                std::env::current_dir()?.join(root)
            };
            ObjectLocation::Local { root }
        }
        Backend::S3 | Backend::Rustfs => {
            let rustfs = args.object_backend == Backend::Rustfs;
            let bucket = match (args.s3_bucket, rustfs) {
                (Some(b), _) => b,
                (None, true) => "nokv".to_string(),
                (None, false) => {
                    return Err(Error::InvalidArgument(
                        "--s3-bucket is required with --object-backend s3".into(),
                    )
                    .into())
                }
            };
            let endpoint = match (args.s3_endpoint, rustfs) {
                (Some(e), _) => Some(e),
                (None, true) => Some("http://127.0.0.1:9000".to_string()),
                (None, false) => std::env::var("AWS_ENDPOINT_URL").ok(),
            };
            if rustfs {
                let creds = &mut opts.credentials;
                creds
                    .access_key_id
                    .get_or_insert_with(|| "rustfsadmin".into());
                creds
                    .secret_access_key
                    .get_or_insert_with(|| "rustfsadmin".into());
            }
            let mut prefix = args.s3_prefix.trim_start_matches('/').to_string();
            if !prefix.is_empty() && !prefix.ends_with('/') {
                prefix.push('/');
            }
            ObjectLocation::S3(S3Location {
                bucket,
                endpoint,
                region: args.s3_region.unwrap_or_else(|| "us-east-1".into()),
                prefix,
            })
        }
    };
    let mut init = InitOptions::new(location);
    init.block_size = args.block_size;
    let client = Client::init(&home, init, opts).await?;
    let info = client.info().await?;
    println!(
        "initialized volume {} at {} (blocks: {}, block size {})",
        info.volume_id,
        home.display(),
        info.location.describe(),
        info.block_size
    );
    Ok(())
}

async fn put(global: &Global, args: PutArgs) -> Result<()> {
    let mode = parse_mode(&args.mode)?;
    let mut opts = client_options(global);
    opts.staging_ttl = std::time::Duration::from_secs(args.staging_ttl);
    let client = open(global, opts).await?;
    if args.recursive {
        return put_tree(&client, &args).await;
    }
    if args.parents {
        if let Some(parent) = nokv_client::NokvPath::parse(&args.path)?.parent() {
            client.mkdir_all(&parent.to_string(), 0o755).await?;
        }
    }
    let (reader, total): (Box<dyn tokio::io::AsyncRead + Unpin + Send>, Option<u64>) =
        if args.file == "-" {
            (Box::new(tokio::io::stdin()), None)
        } else {
            let f = tokio::fs::File::open(&args.file)
                .await
                .with_context(|| format!("cannot open {}", args.file))?;
            let len = f.metadata().await.ok().map(|m| m.len());
            (Box::new(f), len)
        };
    let bar = progress::bytes_bar(total, "put");
    let put_opts = PutOptions {
        if_generation: args.if_generation,
        mode: Some(mode),
        progress: progress::position_callback(&bar),
    };
    let result = client.put(&args.path, reader, put_opts).await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let out = result?;
    if args.json {
        let mut v = output::attr_json(&args.path, &out.attr);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("uploaded_blocks".into(), json!(out.uploaded_blocks));
            obj.insert("uploaded_bytes".into(), json!(out.uploaded_bytes));
            obj.insert("reused_blocks".into(), json!(out.reused_blocks));
            obj.insert(
                "replaced_generation_size".into(),
                json!(out.replaced.as_ref().map(|b| b.size)),
            );
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "published {} generation {} ({} bytes, blake3 {}; {} blocks uploaded, {} reused)",
            args.path,
            out.attr.generation,
            out.attr.size,
            out.attr.digest.map(hex::encode).unwrap_or_default(),
            out.uploaded_blocks,
            out.reused_blocks
        );
    }
    Ok(())
}

/// The live volume, or the snapshot named by `--snapshot`.
async fn view(global: &Global, snapshot: &Option<String>) -> Result<View> {
    let client = open(global, client_options(global)).await?;
    Ok(View::new(client, snapshot.as_deref()))
}

async fn cat(client: &View, path: &str, offset: Option<u64>, length: Option<u64>) -> Result<()> {
    let mut stream = match (offset, length) {
        (None, None) => client.read_stream(path).await?.1,
        (o, l) => {
            client
                .read_range_stream(path, o.unwrap_or(0), l.unwrap_or(u64::MAX))
                .await?
        }
    };
    let mut stdout = tokio::io::stdout();
    while let Some(chunk) = stream.next().await {
        stdout.write_all(&chunk?).await?;
    }
    stdout.flush().await?;
    Ok(())
}

async fn get(client: &View, path: &str, file: &Path) -> Result<()> {
    let (attr, mut stream) = client.read_stream(path).await?;
    let name = file
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file name", file.display()))?;
    let mut part_name = name.to_os_string();
    part_name.push(".nokv-part");
    let part = file.with_file_name(part_name);
    let bar = progress::bytes_bar(Some(attr.size), "get");
    let copied = async {
        let mut out = tokio::fs::File::create(&part)
            .await
            .with_context(|| format!("cannot create {}", part.display()))?;
        let mut done = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            out.write_all(&chunk).await?;
            done += chunk.len() as u64;
            if let Some(b) = &bar {
                b.set_position(done);
            }
        }
        out.sync_all().await?;
        Ok::<(), anyhow::Error>(())
    }
    .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Err(e) = copied {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(e);
    }
    tokio::fs::rename(&part, file).await?;
    Ok(())
}

async fn ls(client: &View, path: &str, long: bool, json: bool) -> Result<()> {
    let attr = client.stat(path).await?;
    let mut stdout = std::io::stdout().lock();
    if attr.kind != FileKind::Dir {
        let name = path.rsplit('/').next().unwrap_or(path);
        if json {
            writeln!(
                stdout,
                "{}",
                serde_json::to_string_pretty(&[output::attr_json(path, &attr)])?
            )?;
        } else if long {
            writeln!(stdout, "{}", output::long_line(name, &attr, None))?;
        } else {
            writeln!(stdout, "{name}")?;
        }
        return Ok(());
    }
    let mut after: Option<Vec<u8>> = None;
    let mut all_json = Vec::new();
    loop {
        let page = client.list_page(path, after.as_deref(), 4096).await?;
        for e in &page.entries {
            let name = String::from_utf8_lossy(&e.name);
            if json {
                all_json.push(output::entry_json(e));
            } else if long {
                let target = if e.attr.kind == FileKind::Symlink {
                    let full = format!("{}/{}", path.trim_end_matches('/'), name);
                    client.readlink(&full).await.ok()
                } else {
                    None
                };
                writeln!(
                    stdout,
                    "{}",
                    output::long_line(&name, &e.attr, target.as_deref())
                )?;
            } else {
                writeln!(stdout, "{name}")?;
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    if json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&all_json)?)?;
    }
    Ok(())
}

async fn stat(client: &View, path: &str, json: bool) -> Result<()> {
    let a = client.lstat(path).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&output::attr_json(path, &a))?
        );
        return Ok(());
    }
    println!("  path: {path}");
    println!(
        "  kind: {}   inode: {}   links: {}",
        a.kind.as_str(),
        a.ino,
        a.nlink
    );
    println!(
        "  mode: {} ({:o})   uid: {}   gid: {}",
        output::mode_string(&a),
        a.mode,
        a.uid,
        a.gid
    );
    println!("  size: {}", a.size);
    if a.kind == FileKind::File {
        println!("  generation: {}", a.generation);
        if let Some(d) = a.digest {
            println!("  blake3: {}", hex::encode(d));
        }
    }
    if a.kind == FileKind::Symlink {
        println!("  target: {}", client.readlink(path).await?);
    }
    println!("  atime: {} UTC", output::time_string(a.atime));
    println!("  mtime: {} UTC", output::time_string(a.mtime));
    println!("  ctime: {} UTC", output::time_string(a.ctime));
    Ok(())
}

async fn fsck(global: &Global, delete_leaked: bool, json: bool) -> Result<()> {
    let c = open(global, client_options(global)).await?;
    let report = c.fsck(delete_leaked).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for key in &report.missing {
            println!("missing {key}");
        }
        for (key, expected, found) in &report.wrong_size {
            println!("wrong-size {key} (expected {expected} bytes, found {found})");
        }
        for key in &report.leaked {
            if report.deleted.contains(key) {
                println!("deleted leaked {key}");
            } else {
                println!("leaked {key}");
            }
        }
        println!(
            "fsck: {} referenced blocks, {} objects; {} missing, {} wrong size, {} leaked ({} deleted); {} staged, {} queued for gc",
            report.referenced_blocks,
            report.stored_objects,
            report.missing.len(),
            report.wrong_size.len(),
            report.leaked.len(),
            report.deleted.len(),
            report.staged_objects,
            report.queued_objects
        );
    }
    if !report.missing.is_empty() || !report.wrong_size.is_empty() {
        return Err(Error::Corrupt(format!(
            "fsck: {} referenced blocks missing, {} with the wrong size",
            report.missing.len(),
            report.wrong_size.len()
        ))
        .into());
    }
    if !report.is_clean() {
        return Err(anyhow!(
            "fsck: {} leaked objects (run with --delete-leaked to remove them)",
            report.leaked.len() - report.deleted.len()
        ));
    }
    Ok(())
}

fn event_line(e: &nokv_client::WatchEvent) -> String {
    let mut line = format!("{} {} {}", e.seq, e.kind.as_str(), e.path);
    if let Some(old) = &e.old_path {
        line.push_str(&format!(" (from {old})"));
    }
    if let Some(name) = &e.snapshot {
        line.push_str(&format!(" snapshot={name}"));
        return line;
    }
    if e.file_kind == FileKind::File && e.generation > 0 {
        line.push_str(&format!(" generation={} size={}", e.generation, e.size));
        if let Some(d) = e.digest {
            line.push_str(&format!(" blake3={}", hex::encode(d)));
        }
    }
    line
}

async fn watch(
    global: &Global,
    path: &str,
    from: Option<u64>,
    json: bool,
    no_follow: bool,
) -> Result<()> {
    let c = open(global, client_options(global)).await?;
    // Validate the path once up front: a typo should fail, not wait.
    nokv_client::NokvPath::parse(path)?;
    let from = match from {
        Some(f) => f,
        None => c.watch_head().await?,
    };
    let print = |e: &nokv_client::WatchEvent| -> Result<()> {
        let mut out = std::io::stdout().lock();
        if json {
            let mut v = serde_json::to_value(e)?;
            if let Some(obj) = v.as_object_mut() {
                obj.insert("kind".into(), json!(e.kind.as_str()));
                obj.insert("file_kind".into(), json!(e.file_kind.as_str()));
                obj.insert("digest".into(), json!(e.digest.map(hex::encode)));
            }
            writeln!(out, "{v}")?;
        } else {
            writeln!(out, "{}", event_line(e))?;
        }
        out.flush()?;
        Ok(())
    };
    if no_follow {
        let mut next = from;
        loop {
            let page = c.watch_page(path, next, 1024).await?;
            for e in &page.events {
                print(e)?;
            }
            if page.next == next {
                return Ok(());
            }
            next = page.next;
        }
    }
    let mut events = c.watch(path, from);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(e) => print(&e?)?,
                None => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// The local directory and the volume path of `put -r A B`: the one
/// argument that is an existing local directory is the source, in
/// either order (`put -r <path> <local-dir>` like `put <path> <file>`,
/// or the older `put -r <local-dir> <path>`).
fn tree_args(a: &str, b: &str) -> Result<(std::path::PathBuf, String)> {
    let is_dir = |p: &str| Path::new(p).is_dir();
    match (is_dir(a), is_dir(b)) {
        (false, true) => Ok((b.into(), a.to_string())),
        (true, false) => Ok((a.into(), b.to_string())),
        (true, true) => Err(nokv_client::Error::InvalidArgument(format!(
            "put -r: both {a} and {b} are local directories; name the volume path so that it \
             does not also exist here (e.g. run from another directory)"
        ))
        .into()),
        (false, false) => Err(nokv_client::Error::Io(format!(
            "put -r: neither {a} nor {b} is a local directory to publish"
        ))
        .into()),
    }
}

async fn put_tree(client: &Client, args: &PutArgs) -> Result<()> {
    let (local, dst) = tree_args(&args.path, &args.file)?;
    let (local, dst) = (local.as_path(), dst.as_str());
    if args.parents {
        if let Some(parent) = nokv_client::NokvPath::parse(dst)?.parent() {
            client.mkdir_all(&parent.to_string(), 0o755).await?;
        }
    }
    let out = client.put_tree(local, dst).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "published {} as {dst}: {} files ({} bytes), {} directories, {} symlinks{}",
            local.display(),
            out.files,
            out.bytes,
            out.dirs,
            out.symlinks,
            out.replaced_tree
                .as_deref()
                .map(|t| format!("; the old tree waits in {t} for gc"))
                .unwrap_or_default()
        );
    }
    Ok(())
}
