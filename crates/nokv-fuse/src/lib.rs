//! The NoKV FUSE mount: existing tools (`cp`, `tar`, `rsync`, `git`,
//! Python `open()`) read and write a volume like a disk.
//!
//! Layers, top down:
//! - [`mount`]: mountpoint checks, the session thread, signal-driven
//!   shutdown (publish dirty files, then unmount);
//! - [`fuse`]: the thin adapter from kernel requests to the core, and
//!   the one error-to-errno mapping;
//! - [`invalidate`]: the watch log pushes other clients' changes out of
//!   the kernel's caches;
//! - [`core`]: the filesystem by inode over the NoKV client — handles,
//!   write spools on local temp files, readahead — with no FUSE types,
//!   so its behaviour is tested without a kernel.

pub mod core;
pub mod fuse;
pub mod invalidate;
pub mod mount;

pub use crate::core::{FsCore, FsOptions, OpenIntent};
pub use crate::mount::{check_fuse_available, check_mountpoint, serve, MountOptions, MountReport};
