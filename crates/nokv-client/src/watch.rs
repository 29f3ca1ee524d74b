//! Following the watch log: pages by `seq`, and a stream that waits for
//! new events. The stream yields each event once, in `seq` order; a
//! consumer that stores the `seq` of the last event it handled resumes
//! with `from = seq + 1` after any restart and misses nothing.

use futures::stream::{self, BoxStream, StreamExt};
use nokv_meta::{MetaOp, MetaReply};
use nokv_types::{Result, WatchEvent, WatchPage, EVENTS_PER_COMMAND, WATCH_PAGE_GAP};

use crate::client::{expect_reply, Client};

impl Client {
    /// Events with `seq >= from` about `prefix` or below it.
    pub async fn watch_page(&self, prefix: &str, from: u64, limit: u32) -> Result<WatchPage> {
        let reply = self
            .call(MetaOp::Watch {
                from,
                prefix: prefix.to_string(),
                limit,
            })
            .await?;
        expect_reply!(reply, "watch", MetaReply::Events(p) => p)
    }

    /// The `seq` of the next event to be written: `from` for "only what
    /// happens from now on".
    pub async fn watch_head(&self) -> Result<u64> {
        let info = self.info().await?;
        Ok((info.commit_version + 1) * EVENTS_PER_COMMAND)
    }

    /// Follows events about `prefix` from `from`, forever. Ends after the
    /// first error (e.g. `WatchCompacted` for a cursor past retention).
    /// Through a server the events are pushed (a server-streaming RPC);
    /// embedded, the stream reads the log after each commit.
    pub fn watch(&self, prefix: &str, from: u64) -> BoxStream<'static, Result<WatchEvent>> {
        let remote = match &self.inner.meta {
            crate::meta::Meta::Remote(remote) => remote,
            crate::meta::Meta::Embedded(vol) => {
                return self.follow_log(prefix, from, vol.subscribe_commits())
            }
        };
        let remote = remote.clone();
        let prefix = prefix.to_string();
        stream::once(async move { remote.watch(&prefix, from).await })
            .flat_map(|pages| match pages {
                Ok(pages) => pages
                    .flat_map(|page| match page {
                        Ok(p) => stream::iter(p.events.into_iter().map(Ok).collect::<Vec<_>>()),
                        Err(e) => stream::iter(vec![Err(e)]),
                    })
                    .boxed(),
                Err(e) => stream::once(async move { Err(e) }).boxed(),
            })
            .scan(false, |failed, item| {
                // Stop after the first error, like the embedded path.
                if *failed {
                    return futures::future::ready(None);
                }
                *failed = item.is_err();
                futures::future::ready(Some(item))
            })
            .boxed()
    }

    /// Pages of the embedded log: read, and when caught up, wait for the
    /// next commit that wrote something (under a steady stream of changes,
    /// read again one `WATCH_PAGE_GAP` after the last page instead).
    fn follow_log(
        &self,
        prefix: &str,
        from: u64,
        commits: tokio::sync::watch::Receiver<u64>,
    ) -> BoxStream<'static, Result<WatchEvent>> {
        struct State {
            client: Client,
            prefix: String,
            next: u64,
            buffered: std::collections::VecDeque<WatchEvent>,
            failed: bool,
            commits: tokio::sync::watch::Receiver<u64>,
            last_page: Option<std::time::Instant>,
        }
        let state = State {
            commits,
            client: self.clone(),
            prefix: prefix.to_string(),
            next: from,
            buffered: Default::default(),
            failed: false,
            last_page: None,
        };
        stream::unfold(state, |mut st| async move {
            loop {
                if st.failed {
                    return None;
                }
                if let Some(e) = st.buffered.pop_front() {
                    return Some((Ok(e), st));
                }
                // Marked seen before the read: a commit after it wakes us.
                st.commits.borrow_and_update();
                match st.client.watch_page(&st.prefix, st.next, 1024).await {
                    Ok(page) => {
                        let moved = page.next != st.next;
                        st.next = page.next;
                        if !page.events.is_empty() {
                            st.last_page = Some(std::time::Instant::now());
                        }
                        st.buffered.extend(page.events);
                        if st.buffered.is_empty() && !moved {
                            let gap = st
                                .last_page
                                .and_then(|t| WATCH_PAGE_GAP.checked_sub(t.elapsed()));
                            match gap {
                                Some(gap) => {
                                    tokio::time::sleep(gap).await;
                                    st.last_page = None;
                                }
                                None => {
                                    if st.commits.changed().await.is_err() {
                                        return None;
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => {
                        st.failed = true;
                        return Some((Err(e), st));
                    }
                }
            }
        })
        .boxed()
    }
}
