//! Group commit: many concurrent commands, one holt batch, one fsync.
//!
//! Callers enqueue a transaction function and wait. Whoever finds no
//! leader becomes the leader: it takes the queue, runs the functions one
//! after another (each sees the writes of those before it), drops the
//! commands whose predicates failed, and applies the rest as one batch.
//! Commands that arrive meanwhile form the next group, so under load a
//! single fsync acknowledges many commands.
//!
//! Invariants:
//! - exactly one leader at a time; transaction functions run only on
//!   the leader, serially, so each is linearizable at its turn;
//! - commit versions are assigned in execution order, +1 per command
//!   that writes, and the group's last version is written in the same
//!   batch, so versions are monotonic across restarts;
//! - a caller is answered only after its group reached holt (or failed
//!   as a whole, in which case none of it is visible);
//! - `applied` carries the commit version of the last group that wrote
//!   something, sent after that group reached holt: a reader woken by it
//!   sees the group's writes (watch streams wait on it instead of
//!   polling).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use nokv_types::{Error, Result};
use parking_lot::{Condvar, Mutex};

use crate::alloc::Allocators;
use crate::command::{MetadataCommand, Overlay, ReadCache, Txn};
use crate::engine::Engine;
use crate::keys;
use crate::records::{decode_u64, encode_u64};
use crate::snapshot::history::PreservedKeys;
use crate::snapshot::LiveSnapshots;

/// Commands taken into one group at most.
const MAX_GROUP: usize = 256;
/// Approximate bytes of mutations in one group at most.
const MAX_GROUP_BYTES: usize = 2 << 20;

type TxnFn = Box<dyn FnOnce(&mut Txn<'_>) -> bool + Send>;

struct Ticket {
    run: Mutex<Option<TxnFn>>,
    done: Mutex<Option<Result<()>>>,
}

struct Queue {
    pending: Vec<Arc<Ticket>>,
    leader: bool,
}

struct CommitState {
    version: u64,
    alloc: Allocators,
    snapshots: LiveSnapshots,
    preserved: PreservedKeys,
}

pub(crate) struct Committer {
    queue: Mutex<Queue>,
    wake: Condvar,
    state: Mutex<CommitState>,
    applied: tokio::sync::watch::Sender<u64>,
}

impl Committer {
    pub fn new(engine: &Engine) -> Result<Committer> {
        let (version, alloc) = load_state(engine)?;
        let snapshots = LiveSnapshots::load(engine)?;
        Ok(Committer {
            queue: Mutex::new(Queue {
                pending: Vec::new(),
                leader: false,
            }),
            wake: Condvar::new(),
            applied: tokio::sync::watch::Sender::new(version),
            state: Mutex::new(CommitState {
                version,
                alloc,
                snapshots,
                preserved: PreservedKeys::default(),
            }),
        })
    }

    /// Commit version of the last committed command.
    pub fn version(&self) -> u64 {
        self.state.lock().version
    }

    /// Changes after every group that wrote something (to its commit
    /// version), once the group is in holt.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// The live snapshots as of the last group.
    pub fn snapshots(&self) -> LiveSnapshots {
        self.state.lock().snapshots.clone()
    }

    /// Runs `fs` in order, each as its own command with its own result
    /// (a failing one does not stop the others), queued together so they
    /// share groups (and fsyncs) instead of committing one by one.
    pub fn run_many<T, F>(&self, engine: &Engine, fs: Vec<F>) -> Vec<Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Txn<'_>) -> Result<T> + Send + 'static,
    {
        let mut slots = Vec::with_capacity(fs.len());
        let mut tickets = Vec::with_capacity(fs.len());
        for f in fs {
            let slot: Arc<Mutex<Option<Result<T>>>> = Arc::new(Mutex::new(None));
            let out = slot.clone();
            let run: TxnFn = Box::new(move |txn| {
                let result = f(txn);
                let ok = result.is_ok();
                *out.lock() = Some(result);
                ok
            });
            slots.push(slot);
            tickets.push(Arc::new(Ticket {
                run: Mutex::new(Some(run)),
                done: Mutex::new(None),
            }));
        }
        if let Some(last) = tickets.last().cloned() {
            let mut queue = self.queue.lock();
            queue.pending.extend(tickets.iter().cloned());
            self.wait_for(engine, &last, queue);
        }
        tickets
            .iter()
            .zip(slots)
            .map(|(ticket, slot)| {
                let group = ticket.done.lock().take().unwrap_or_else(|| {
                    Err(Error::Metadata("commit finished without a result".into()))
                });
                group?;
                let result = slot.lock().take();
                result.unwrap_or_else(|| Err(Error::Metadata("command produced no result".into())))
            })
            .collect()
    }

    /// Waits until `ticket` is done, leading groups whenever no one else
    /// does. Tickets are processed in queue order.
    fn wait_for<'q>(
        &'q self,
        engine: &Engine,
        ticket: &Arc<Ticket>,
        mut queue: parking_lot::MutexGuard<'q, Queue>,
    ) {
        loop {
            if ticket.done.lock().is_some() {
                return;
            }
            if !queue.leader {
                queue.leader = true;
                let take = queue.pending.len().min(MAX_GROUP);
                let group: Vec<Arc<Ticket>> = queue.pending.drain(..take).collect();
                drop(queue);
                self.lead(engine, group);
                queue = self.queue.lock();
                queue.leader = false;
                self.wake.notify_all();
                continue;
            }
            self.wake.wait(&mut queue);
        }
    }

    /// Runs `f` at its turn and commits what it wrote. `f` returning an
    /// error means its predicates failed (or it refused): nothing it
    /// wrote is applied and the error is returned.
    pub fn run<T, F>(&self, engine: &Engine, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Txn<'_>) -> Result<T> + Send + 'static,
    {
        let slot: Arc<Mutex<Option<Result<T>>>> = Arc::new(Mutex::new(None));
        let out = slot.clone();
        let run: TxnFn = Box::new(move |txn| {
            let result = f(txn);
            let ok = result.is_ok();
            *out.lock() = Some(result);
            ok
        });
        let ticket = Arc::new(Ticket {
            run: Mutex::new(Some(run)),
            done: Mutex::new(None),
        });

        let mut queue = self.queue.lock();
        queue.pending.push(ticket.clone());
        self.wait_for(engine, &ticket, queue);

        let group_result = ticket
            .done
            .lock()
            .take()
            .unwrap_or_else(|| Err(Error::Metadata("commit finished without a result".into())));
        group_result?;
        let result = slot.lock().take();
        result.unwrap_or_else(|| Err(Error::Metadata("command produced no result".into())))
    }

    fn lead(&self, engine: &Engine, group: Vec<Arc<Ticket>>) {
        let mut state = self.state.lock();
        let state = &mut *state;
        let now = nokv_types::now_nanos();
        let mut overlay = Overlay::new();
        let reads = ReadCache::default();
        let mut commands: Vec<MetadataCommand> = Vec::new();
        let mut weight = 0usize;
        let mut deferred: Vec<Arc<Ticket>> = Vec::new();
        let mut executed: Vec<Arc<Ticket>> = Vec::new();

        for ticket in group {
            if weight >= MAX_GROUP_BYTES {
                deferred.push(ticket);
                continue;
            }
            let Some(run) = ticket.run.lock().take() else {
                continue;
            };
            // Cheap: the set is shared until a command changes it.
            let snapshots_before = state.snapshots.clone();
            let version = state.version + 1;
            let mut txn = Txn::new(
                engine,
                &overlay,
                &reads,
                version,
                now,
                &mut state.alloc,
                &mut state.snapshots,
                &mut state.preserved,
            );
            let ok = std::panic::catch_unwind(AssertUnwindSafe(|| run(&mut txn))).unwrap_or(false);
            let (command, local) = txn.finish();
            if !ok {
                // A refused command's create/retire never happened.
                state.snapshots = snapshots_before;
            }
            state.preserved.command_done(ok);
            if ok && !command.mutations.is_empty() {
                state.version = version;
                weight += command.weight();
                overlay.extend(local);
                commands.push(command);
            }
            executed.push(ticket);
        }

        let outcome = if commands.is_empty() {
            Ok(())
        } else {
            let refs: Vec<&MetadataCommand> = commands.iter().collect();
            let extra = [(
                keys::COMMIT_VERSION.to_vec(),
                encode_u64(state.version).to_vec(),
            )];
            match engine.apply(&refs, &extra) {
                Ok(true) => {
                    state.alloc.commit();
                    self.applied.send_replace(state.version);
                    Ok(())
                }
                Ok(false) => Err(Error::Metadata(
                    "a guard failed in the engine although the command saw it hold; nothing was applied"
                        .into(),
                )),
                Err(e) => Err(e),
            }
        };
        if outcome.is_err() {
            match load_state(engine) {
                Ok((version, _)) => state.version = version,
                Err(e) => tracing::error!("reloading commit state after a failed group: {e}"),
            }
            state.preserved.reset();
            match LiveSnapshots::load(engine) {
                Ok(live) => state.snapshots = live,
                Err(e) => tracing::error!("reloading snapshots after a failed group: {e}"),
            }
            state.alloc.abort();
        }
        for ticket in &executed {
            *ticket.done.lock() = Some(outcome.clone());
        }
        if !deferred.is_empty() {
            let mut queue = self.queue.lock();
            let rest = std::mem::take(&mut queue.pending);
            queue.pending = deferred;
            queue.pending.extend(rest);
        }
    }
}

fn load_state(engine: &Engine) -> Result<(u64, Allocators)> {
    let read = |key: &[u8], what: &str, default: u64| -> Result<u64> {
        match engine.get(key)? {
            Some(v) => decode_u64(what, &v),
            None => Ok(default),
        }
    };
    let version = read(keys::COMMIT_VERSION, "commit version", 0)?;
    // Inode numbers start after the root.
    let ino = read(
        keys::INO_HIGH_WATER,
        "inode high-water",
        nokv_types::ROOT_INO + 1,
    )?;
    let upload = read(keys::UPLOAD_HIGH_WATER, "upload high-water", 1)?;
    Ok((
        version,
        Allocators {
            ino: crate::alloc::Counter::new(ino),
            upload: crate::alloc::Counter::new(upload),
        },
    ))
}
