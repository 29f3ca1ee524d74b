//! Following the watch log: pages by `seq`, and a stream that waits for
//! new events. The stream yields each event once, in `seq` order; a
//! consumer that stores the `seq` of the last event it handled resumes
//! with `from = seq + 1` after any restart and misses nothing.

use futures::stream::{self, BoxStream, StreamExt};
use nokv_meta::FollowPace;
use nokv_meta::{MetaOp, MetaReply};
use nokv_types::{Result, WatchEvent, WatchPage, EVENTS_PER_COMMAND};

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
                return self.follow_log(prefix, from, FollowPace::new(vol))
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

    /// Pages of the embedded log, read at `pace`.
    fn follow_log(
        &self,
        prefix: &str,
        from: u64,
        pace: FollowPace,
    ) -> BoxStream<'static, Result<WatchEvent>> {
        struct State {
            client: Client,
            prefix: String,
            next: u64,
            buffered: std::collections::VecDeque<WatchEvent>,
            failed: bool,
            pace: FollowPace,
        }
        let state = State {
            pace,
            client: self.clone(),
            prefix: prefix.to_string(),
            next: from,
            buffered: Default::default(),
            failed: false,
        };
        stream::unfold(state, |mut st| async move {
            loop {
                if st.failed {
                    return None;
                }
                if let Some(e) = st.buffered.pop_front() {
                    return Some((Ok(e), st));
                }
                st.pace.before_read();
                match st.client.watch_page(&st.prefix, st.next, 1024).await {
                    Ok(page) => {
                        let moved = page.next != st.next;
                        st.next = page.next;
                        if !page.events.is_empty() {
                            st.pace.page_read();
                        }
                        st.buffered.extend(page.events);
                        if st.buffered.is_empty() && !moved && !st.pace.wait().await {
                            return None;
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
