//! Command-line grammar of `nokv-fs` (clap derive). No behaviour here.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "nokv-fs",
    version,
    about = "NoKV: an object-backed filesystem with a built-in metadata engine",
    long_about = "NoKV keeps metadata in a built-in engine (holt) and file bytes as immutable \
                  blocks in a local directory or an S3-compatible store.\n\n\
                  Every command works on the volume at --home (or $NOKV_HOME, default ~/.nokv), \
                  opened in this process; or, with --server (or $NOKV_SERVER), through the \
                  metadata server `nokv-fs serve` runs on a volume. Create a volume first with \
                  `nokv-fs init`."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Volume home directory [default: ~/.nokv]
    #[arg(long, env = "NOKV_HOME", global = true)]
    pub home: Option<PathBuf>,
    /// sync: an acknowledged change survives a crash or power loss; async: faster, but a crash may lose the last changes
    #[arg(long, value_enum, env = "NOKV_DURABILITY", default_value_t = DurabilityArg::Sync, global = true)]
    pub durability: DurabilityArg,
    #[command(flatten)]
    pub s3: S3Credentials,
    /// Go through the metadata server at URL (`nokv-fs serve` prints it)
    #[arg(long, env = "NOKV_SERVER", global = true, value_name = "URL")]
    pub server: Option<String>,
    /// The server's access token (`<home>/TOKEN` on the server's machine)
    #[arg(long, env = "NOKV_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
}

impl Global {
    /// `--server` / `NOKV_SERVER`, an empty value meaning "not set".
    pub fn server_url(&self) -> Option<&str> {
        self.server.as_deref().filter(|s| !s.trim().is_empty())
    }
}

#[derive(Debug, Args, Clone, Default)]
pub struct S3Credentials {
    /// S3 access key id [env: AWS_ACCESS_KEY_ID]
    #[arg(long, global = true)]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key [env: AWS_SECRET_ACCESS_KEY]
    #[arg(long, global = true, hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    Sync,
    Async,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Blocks in a local directory (default: <home>/blocks)
    Local,
    /// Blocks in an S3-compatible bucket
    S3,
    /// A local RustFS server: http://127.0.0.1:9000, bucket `nokv`, dev credentials
    Rustfs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a volume at --home
    Init(InitArgs),
    /// Publish a local file (or stdin with `-`) as <path>, atomically
    #[command(alias = "put-artifact")]
    Put(PutArgs),
    /// Write a file's bytes to stdout
    Cat {
        /// Read at this snapshot (paths are relative to its root)
        #[arg(long, value_name = "NAME")]
        snapshot: Option<String>,
        path: String,
        /// Start at this byte offset
        #[arg(long)]
        offset: Option<u64>,
        /// Read at most this many bytes
        #[arg(long)]
        length: Option<u64>,
    },
    /// Copy a file out of the volume to a local file
    Get {
        /// Read at this snapshot (paths are relative to its root)
        #[arg(long, value_name = "NAME")]
        snapshot: Option<String>,
        path: String,
        file: PathBuf,
    },
    /// List a directory
    Ls {
        /// List at this snapshot (paths are relative to its root)
        #[arg(long, value_name = "NAME")]
        snapshot: Option<String>,
        /// Long format: type, mode, links, owner, size, time, name
        #[arg(short = 'l')]
        long: bool,
        #[arg(long)]
        json: bool,
        #[arg(default_value = "/")]
        path: String,
    },
    /// Show attributes of a path (does not follow a final symlink)
    Stat {
        /// Stat at this snapshot (paths are relative to its root)
        #[arg(long, value_name = "NAME")]
        snapshot: Option<String>,
        #[arg(long)]
        json: bool,
        path: String,
    },
    /// Create a directory
    Mkdir {
        /// Create missing parents; an existing directory is fine
        #[arg(short = 'p', long)]
        parents: bool,
        path: String,
    },
    /// Remove a file or symlink (with -r, a whole tree)
    Rm {
        #[arg(short = 'r', long)]
        recursive: bool,
        path: String,
    },
    /// Remove an empty directory
    Rmdir { path: String },
    /// Rename <src> to exactly <dst> (like rename(2) / `mv -T`)
    Mv {
        /// Replace an existing <dst> (a file, or an empty directory)
        #[arg(long)]
        replace: bool,
        src: String,
        dst: String,
    },
    /// Make a link: `ln -s <target> <path>` (symlink) or `ln <existing> <path>` (hard link)
    Ln {
        #[arg(short = 's', long)]
        symbolic: bool,
        target: String,
        path: String,
    },
    /// Print a symlink's target
    Readlink { path: String },
    /// Set a file's size (shrink keeps the prefix, grow appends zeros)
    Truncate { path: String, size: u64 },
    /// Change permission bits (octal)
    Chmod { mode: String, path: String },
    /// Delete blocks nothing references (GC queue up to the oldest live
    /// snapshot, expired uploads) and prune snapshot history
    Gc {
        #[arg(long)]
        json: bool,
        /// Keep blocks that became unreachable less than SECS ago (for
        /// readers that still have the old generation open)
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        grace: u64,
    },
    /// Follow typed change events under PATH (created, published,
    /// replaced, removed, renamed, attr_changed, snapshot_created,
    /// snapshot_retired). Prints `SEQ KIND PATH`;
    /// resume after a restart with `--from <last SEQ + 1>`.
    Watch {
        #[arg(default_value = "/")]
        path: String,
        /// First seq to show (default: only events from now on)
        #[arg(long)]
        from: Option<u64>,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
        /// Print what is there and exit instead of following
        #[arg(long)]
        no_follow: bool,
    },
    /// Check metadata against the object store: every referenced block
    /// exists with its size; list (and optionally delete) leaked objects.
    /// Exit 0 clean, 4 blocks missing or wrong, 1 leaked objects left.
    Fsck {
        /// Delete the objects nothing references
        #[arg(long)]
        delete_leaked: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show the volume's identity and state
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Serve the volume at --home to many clients (metadata server)
    Serve(ServeArgs),
    /// Pin a path at the current version (create), list or retire snapshots
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Mount the volume (embedded, or --server) at MOUNTPOINT with FUSE;
    /// runs in the foreground until unmounted (`fusermount3 -u`) or
    /// SIGTERM/SIGINT, which publish every open file, then unmount
    Mount(MountArgs),
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Snapshot <path> (a directory or a file) as it is now: O(1), durable.
    /// Read it with `--snapshot NAME` on ls, stat, cat, get and mount.
    Create {
        path: String,
        /// Name of the snapshot [default: <last path component>-<UTC time>]
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List live snapshots
    List {
        #[arg(long)]
        json: bool,
    },
    /// Retire a snapshot: GC may then reclaim what only it kept
    Retire { name: String },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// gRPC address (port 0: any free port; the address is printed)
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,
    /// HTTP address for /healthz, /readyz and /metrics
    #[arg(long, default_value = "127.0.0.1:7879")]
    pub http_listen: SocketAddr,
    /// Do not open the HTTP port
    #[arg(long)]
    pub no_http: bool,
    /// Accept requests without a token (loopback addresses only)
    #[arg(long)]
    pub no_auth: bool,
    /// Largest request message accepted, in bytes
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Most ops one batch request may carry
    #[arg(long, default_value_t = 10_000)]
    pub max_batch_ops: usize,
    /// Seconds between background GC passes (0: no background GC). The
    /// worker uses this process's object-store credentials.
    #[arg(long, default_value_t = 60)]
    pub gc_interval: u64,
    /// Seconds background GC keeps the blocks of a replaced or removed
    /// generation, for clients still reading the generation they opened
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub gc_grace: u64,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[arg(long, value_enum, default_value_t = Backend::Local)]
    pub object_backend: Backend,
    /// Directory for blocks with the local backend [default: <home>/blocks]
    #[arg(long)]
    pub blocks_dir: Option<PathBuf>,
    /// Block size in bytes (64 KiB ..= 64 MiB)
    #[arg(long, default_value_t = nokv_client::DEFAULT_BLOCK_SIZE)]
    pub block_size: u32,
    #[arg(long)]
    pub s3_bucket: Option<String>,
    /// Endpoint URL of a non-AWS store (path-style addressing)
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    #[arg(long, env = "AWS_REGION")]
    pub s3_region: Option<String>,
    /// Key prefix, so several volumes can share a bucket
    #[arg(long, default_value = "")]
    pub s3_prefix: String,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// Destination path in the volume
    #[arg(value_name = "PATH")]
    pub path: String,
    /// Local file, or `-` for stdin (with -r: the local directory)
    #[arg(value_name = "FILE")]
    pub file: String,
    /// Publish a whole local directory atomically: `put -r <path>
    /// <local-dir>` (the older order `put -r <local-dir> <path>` works
    /// too: whichever argument is an existing local directory is the
    /// source). Readers see the complete old tree or the complete new one.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Create missing parent directories first
    #[arg(short = 'p', long)]
    pub parents: bool,
    /// Publish only if the current generation is N (0: only if new)
    #[arg(long)]
    pub if_generation: Option<u64>,
    /// Permission bits of a new file (octal)
    #[arg(long, default_value = "644")]
    pub mode: String,
    #[arg(long)]
    pub json: bool,
    /// Seconds an upload may stay unpublished before GC may collect it
    #[arg(long, env = "NOKV_STAGING_TTL", default_value_t = 3600, hide = true)]
    pub staging_ttl: u64,
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// An existing, empty directory to mount on
    pub mountpoint: PathBuf,
    /// Mount read-only
    #[arg(long)]
    pub read_only: bool,
    /// Seconds the kernel caches attributes and names [default: 60
    /// embedded (no other process can change the volume), 1 with --server]
    #[arg(long)]
    pub attr_ttl: Option<f64>,
    /// Directory for write spools (one temp file per file open for writing)
    #[arg(long, env = "NOKV_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Blocks fetched ahead of a sequential reader
    #[arg(long, default_value_t = 16)]
    pub readahead_blocks: usize,
    /// Kernel request reader threads
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Mount this snapshot, read-only (its pinned directory is the root)
    #[arg(long, value_name = "NAME")]
    pub snapshot: Option<String>,
    /// Seconds between background GC passes of an embedded mount (0:
    /// none; with --server, the server collects garbage)
    #[arg(long, default_value_t = 60)]
    pub gc_interval: u64,
    /// Seconds background GC keeps the blocks of a replaced or removed
    /// generation, for files still open on the generation they opened
    /// (beyond it, the mount's reader lease keeps them while such a
    /// file stays open; the grace covers the moment until the lease is
    /// taken)
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub gc_grace: u64,
    /// Do not hold a reader lease: a file open for reading while another
    /// writer replaces or removes it keeps its blocks only for the GC
    /// grace (by default the mount holds a lease, renewed every 150 s
    /// and expiring 600 s after the mount stops renewing it, while such
    /// a file is open)
    #[arg(long)]
    pub no_reader_leases: bool,
    /// With --server: ask the server about every name and every
    /// directory's attributes (by default lookups of absent names in
    /// directories this mount made, and the attributes of directories
    /// it knows, are answered locally, from the watch log and its own
    /// changes)
    #[arg(long)]
    pub no_dir_cache: bool,
    /// Let close return before the file is published: the publish runs
    /// in the background (up to 32 at once), so writing many small files
    /// does not wait for the object store once per file. Until it ends,
    /// the new bytes are visible in this mount only, and a crash of the
    /// mount loses them; fsync still waits, and an unmount publishes
    /// everything first
    #[arg(long)]
    pub async_close: bool,
}
